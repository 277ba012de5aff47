/** The results: one record per run, the gateway/direct comparisons, the printed table. */
import type { LoadResult } from "./load.js";
import type { TargetName } from "./scenarios.js";

export interface RunRecord {
  readonly scenario: string;
  readonly title: string;
  readonly target: TargetName;
  readonly connections: number;
  readonly durationSec: number;
  readonly load: LoadResult;
  /** CPU time (user + system) of the proxy process per response, µs; null for direct runs. */
  readonly proxyCpuUsPerReq: number | null;
  /** CPU time of the mock upstream per response, µs. */
  readonly upstreamCpuUsPerReq: number;
  /** The gateway's VmHWM / VmRSS after the run, kB; null for direct runs. */
  readonly proxyMemoryKb: { readonly peakRssKb: number; readonly rssKb: number } | null;
  /** Requests the mock upstream served and TCP connections it accepted during the run. */
  readonly upstream: { readonly requests: number; readonly connections: number };
  /** Errors and non-2xx responses during the warm-up (not measured, but reported). */
  readonly warmupFailures: number;
}

export interface Comparison {
  readonly scenario: string;
  readonly target: TargetName;
  /** target req/s ÷ direct req/s. */
  readonly throughputRatio: number;
  /** target p50 − direct p50, µs. */
  readonly addedP50Us: number;
  /** target p99 − direct p99, µs. */
  readonly addedP99Us: number;
}

/** Connection errors (timeouts included) and non-2xx responses: must be 0. */
export function failures(load: LoadResult): number {
  return load.errors + load.non2xx;
}

export function compare(runs: readonly RunRecord[]): Comparison[] {
  const comparisons: Comparison[] = [];
  for (const run of runs) {
    if (run.target === "direct") continue;
    const base = runs.find((other) => other.scenario === run.scenario && other.target === "direct");
    if (!base) continue;
    comparisons.push({
      scenario: run.scenario,
      target: run.target,
      throughputRatio: run.load.rps / base.load.rps,
      addedP50Us: (run.load.latencyMs.p50 - base.load.latencyMs.p50) * 1000,
      addedP99Us: (run.load.latencyMs.p99 - base.load.latencyMs.p99) * 1000,
    });
  }
  return comparisons;
}

const fixed = (value: number | null | undefined, digits: number) => (value === null || value === undefined || !Number.isFinite(value) ? "-" : value.toFixed(digits));
const signed = (value: number | undefined) => (value === undefined || !Number.isFinite(value) ? "-" : `${value >= 0 ? "+" : ""}${Math.round(value)}`);

export function formatTable(runs: readonly RunRecord[], comparisons: readonly Comparison[]): string {
  const header = ["scenario", "target", "req/s", "p50 ms", "p99 ms", "gw CPU µs/req", "mock CPU µs/req", "gw peak RSS MB", "req/s ÷ direct", "+p50 µs", "+p99 µs", "errors"];
  const rows = runs.map((run) => {
    const cmp = comparisons.find((c) => c.scenario === run.scenario && c.target === run.target);
    return [
      run.title,
      run.target,
      fixed(run.load.rps, 0),
      fixed(run.load.latencyMs.p50, 3),
      fixed(run.load.latencyMs.p99, 3),
      fixed(run.proxyCpuUsPerReq, 0),
      fixed(run.upstreamCpuUsPerReq, 0),
      run.proxyMemoryKb ? fixed(run.proxyMemoryKb.peakRssKb / 1024, 1) : "-",
      cmp ? `${cmp.throughputRatio.toFixed(2)}×` : "-",
      cmp ? signed(cmp.addedP50Us) : "-",
      cmp ? signed(cmp.addedP99Us) : "-",
      String(failures(run.load)),
    ];
  });
  const all = [header, ...rows];
  const widths = header.map((_, column) => Math.max(...all.map((row) => row[column]!.length)));
  // Text columns left-aligned, numbers right-aligned.
  const line = (row: string[]) => `| ${row.map((cell, column) => (column < 2 ? cell.padEnd(widths[column]!) : cell.padStart(widths[column]!))).join(" | ")} |`;
  const rule = `|${widths.map((width, column) => (column < 2 ? `:${"-".repeat(width + 1)}` : `${"-".repeat(width + 1)}:`)).join("|")}|`;
  return [line(header), rule, ...rows.map(line)].join("\n");
}
