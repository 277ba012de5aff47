/**
 * The results: one record per run, the comparisons (vs direct, vs nginx), the
 * printed table, the issue-5 targets met or missed, and the CI check against
 * bench/baseline.json.
 */
import type { LoadResult } from "./load.js";
import type { ScenarioKind, TargetName } from "./scenarios.js";

export interface HeldStreamsRecord {
  readonly streams: number;
  /** When every stream was open (headers received, none ended), ms after the first request; null: never. */
  readonly allOpenAfterMs: number | null;
  /** The most streams open at once (all of them, normally). */
  readonly maxOpen: number;
  /** The proxy's VmRSS just before the streams opened, kB. */
  readonly rssBeforeKb: number | null;
  /** Its highest VmRSS sampled while `maxOpen` streams were open, kB. */
  readonly rssAtMaxOpenKb: number | null;
  readonly rssMaxKb: number | null;
  readonly samplesAtMaxOpen: number;
  /** Client connections closed by the end of the run. */
  readonly closedConnections: number;
}

export interface RunRecord {
  readonly scenario: string;
  readonly title: string;
  readonly kind: ScenarioKind;
  readonly target: TargetName;
  readonly connections: number;
  readonly durationSec: number;
  readonly load: LoadResult;
  /** CPU time (user + system) of the proxy process (gateway, or nginx's worker) per response, µs; null for direct runs. */
  readonly proxyCpuUsPerReq: number | null;
  /** CPU time of the mock upstream per response, µs. */
  readonly upstreamCpuUsPerReq: number;
  /** The proxy's VmHWM / VmRSS after the run, kB; null for direct runs. */
  readonly proxyMemoryKb: { readonly peakRssKb: number; readonly rssKb: number } | null;
  /** Requests the mock upstream served (of which 429s) and TCP connections it accepted during the run. */
  readonly upstream: { readonly requests: number; readonly busy: number; readonly connections: number };
  /** Errors and non-2xx responses during the warm-up (not measured, but reported). */
  readonly warmupFailures: number;
  /** The held-streams scenario only. */
  readonly held?: HeldStreamsRecord;
}

export interface Comparison {
  readonly scenario: string;
  readonly target: TargetName;
  /** target req/s ÷ direct req/s (null without a direct run). */
  readonly throughputRatio: number | null;
  /** target p50 − direct p50, µs. */
  readonly addedP50Us: number | null;
  /** target p99 − direct p99, µs. */
  readonly addedP99Us: number | null;
  /** Gateway rows: gateway req/s ÷ nginx req/s, and CPU per request ÷ nginx's (null without an nginx run). */
  readonly nginxThroughputRatio: number | null;
  readonly nginxCpuRatio: number | null;
}

/** Connection errors (timeouts included) and non-2xx responses: must be 0. */
export function failures(load: LoadResult): number {
  return load.errors + load.non2xx;
}

const find = (runs: readonly RunRecord[], scenario: string, target: TargetName) => runs.find((run) => run.scenario === scenario && run.target === target);

export function compare(runs: readonly RunRecord[]): Comparison[] {
  const comparisons: Comparison[] = [];
  for (const run of runs) {
    if (run.target === "direct") continue;
    const base = find(runs, run.scenario, "direct");
    const nginx = run.target === "gateway" ? find(runs, run.scenario, "nginx") : undefined;
    comparisons.push({
      scenario: run.scenario,
      target: run.target,
      throughputRatio: base ? run.load.rps / base.load.rps : null,
      addedP50Us: base ? (run.load.latencyMs.p50 - base.load.latencyMs.p50) * 1000 : null,
      addedP99Us: base ? (run.load.latencyMs.p99 - base.load.latencyMs.p99) * 1000 : null,
      nginxThroughputRatio: nginx ? run.load.rps / nginx.load.rps : null,
      nginxCpuRatio: nginx && run.proxyCpuUsPerReq !== null && nginx.proxyCpuUsPerReq ? run.proxyCpuUsPerReq / nginx.proxyCpuUsPerReq : null,
    });
  }
  return comparisons;
}

const fixed = (value: number | null | undefined, digits: number) => (value === null || value === undefined || !Number.isFinite(value) ? "-" : value.toFixed(digits));
const signed = (value: number | null | undefined) => (value === null || value === undefined || !Number.isFinite(value) ? "-" : `${value >= 0 ? "+" : ""}${Math.round(value)}`);
const times = (value: number | null | undefined) => (value === null || value === undefined || !Number.isFinite(value) ? "-" : `${value.toFixed(2)}×`);
const mb = (kb: number | null | undefined) => fixed(kb === null || kb === undefined ? null : kb / 1024, 1);

/** A markdown table: the first `textColumns` columns left-aligned, the others right-aligned. */
function markdownTable(header: string[], rows: string[][], textColumns: number): string {
  const all = [header, ...rows];
  const widths = header.map((_, column) => Math.max(...all.map((row) => row[column]!.length)));
  const line = (row: string[]) => `| ${row.map((cell, column) => (column < textColumns ? cell.padEnd(widths[column]!) : cell.padStart(widths[column]!))).join(" | ")} |`;
  const rule = `|${widths.map((width, column) => (column < textColumns ? `:${"-".repeat(width + 1)}` : `${"-".repeat(width + 1)}:`)).join("|")}|`;
  return [line(header), rule, ...rows.map(line)].join("\n");
}

/** The RSS a row shows: VmHWM after the run; for held streams, the highest VmRSS while all were open. */
function rowRssKb(run: RunRecord): number | null {
  if (run.held) return run.held.rssAtMaxOpenKb;
  return run.proxyMemoryKb?.peakRssKb ?? null;
}

export function formatTable(runs: readonly RunRecord[], comparisons: readonly Comparison[]): string {
  const header = [
    "scenario", "target", "req/s", "p50 ms", "p99 ms", "proxy CPU µs/req", "mock CPU µs/req", "RSS MB",
    "req/s ÷ direct", "+p50 µs", "+p99 µs", "gw ÷ nginx req/s", "gw ÷ nginx CPU", "mock conns", "errors",
  ];
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
      mb(rowRssKb(run)),
      times(cmp?.throughputRatio),
      signed(cmp?.addedP50Us),
      signed(cmp?.addedP99Us),
      times(cmp?.nginxThroughputRatio),
      times(cmp?.nginxCpuRatio),
      String(run.upstream.connections),
      String(failures(run.load) + run.warmupFailures),
    ];
  });
  return markdownTable(header, rows, 2);
}

/** The lines under the table: agent vs small CPU, what the fallback cost upstream, held-stream memory. */
export function formatSummary(runs: readonly RunRecord[], idle: { startupKb: number | null; afterSanityKb: number | null }): string {
  const lines: string[] = [];
  const agent = find(runs, "agent-pinned", "gateway");
  const small = find(runs, "chat-50c", "gateway");
  if (agent?.proxyCpuUsPerReq && small?.proxyCpuUsPerReq) {
    const nginxAgent = find(runs, "agent-pinned", "nginx");
    const nginxSmall = find(runs, "chat-50c", "nginx");
    lines.push(
      `agent-pinned: gateway CPU ${agent.proxyCpuUsPerReq.toFixed(0)} µs/req for the 60 KB body = ${(agent.proxyCpuUsPerReq / small.proxyCpuUsPerReq).toFixed(2)}× chat-50c's ${small.proxyCpuUsPerReq.toFixed(0)} µs/req (target ≤ 1.5×)` +
        (nginxAgent?.proxyCpuUsPerReq && nginxSmall?.proxyCpuUsPerReq ? `; nginx ${(nginxAgent.proxyCpuUsPerReq / nginxSmall.proxyCpuUsPerReq).toFixed(2)}×` : ""),
    );
  }
  // The floor for Node: what the lean proxy costs, and how far above it the gateway is.
  const floor: string[] = [];
  for (const lean of runs.filter((r) => r.target === "node" && r.proxyCpuUsPerReq)) {
    const gateway = find(runs, lean.scenario, "gateway");
    const direct = find(runs, lean.scenario, "direct");
    const added = (run: RunRecord | undefined) => (run && direct && lean.kind !== "held-streams" ? ` +${((run.load.latencyMs.p50 - direct.load.latencyMs.p50) * 1000).toFixed(0)} µs p50` : "");
    floor.push(
      `${lean.scenario} ${(lean.proxyCpuUsPerReq as number).toFixed(0)} µs${added(lean)}` +
        (gateway?.proxyCpuUsPerReq ? ` (gateway ${(gateway.proxyCpuUsPerReq / (lean.proxyCpuUsPerReq as number)).toFixed(2)}× its CPU${added(gateway)})` : ""),
    );
  }
  if (floor.length) lines.push(`lean Node proxy (bench/lean-proxy.ts, the floor for Node), CPU per request: ${floor.join("; ")}`);
  for (const run of runs.filter((r) => r.kind === "fallback" && r.target !== "direct")) {
    const perResponse = (n: number) => (run.load.requests ? (n / run.load.requests).toFixed(2) : "-");
    lines.push(
      `${run.scenario} ${run.target}: ${run.load.requests} responses; the mock served ${run.upstream.requests} requests (${perResponse(run.upstream.requests)} per response, ${perResponse(run.upstream.busy)} of them 429) ` +
        `and accepted ${run.upstream.connections} new TCP connections (${perResponse(run.upstream.connections)} per response): ` +
        (run.upstream.connections <= 2 * run.connections ? "the 429 connections are reused" : "a new connection for about every 429: the 429 connection is closed"),
    );
  }
  for (const run of runs.filter((r) => r.held)) {
    const held = run.held!;
    const open =
      held.allOpenAfterMs !== null
        ? `all ${held.streams} open after ${(held.allOpenAfterMs / 1000).toFixed(2)} s`
        : `NOT all open at once: at most ${held.maxOpen} (the first ended before the last began)`;
    const while_ = held.maxOpen === held.streams ? "while all were open" : `with ${held.maxOpen} open`;
    const memory =
      run.target === "direct"
        ? ""
        : `; ${run.target === "nginx" ? "nginx worker" : run.target === "node" ? "lean Node proxy" : "gateway"} RSS ${mb(held.rssBeforeKb)} MB before, ${mb(held.rssAtMaxOpenKb)} MB ${while_} (max of ${held.samplesAtMaxOpen} samples), ${mb(held.rssMaxKb)} MB at most`;
    lines.push(`${run.scenario} ${run.target}: ${run.load.requests} streams complete, ${open}${memory}; ${held.closedConnections}/${held.streams} client connections closed at the end`);
  }
  if (idle.startupKb !== null) lines.push(`gateway RSS idle: ${mb(idle.startupKb)} MB after start-up, ${mb(idle.afterSanityKb)} MB after the sanity checks' few requests`);
  return lines.join("\n");
}

// ---------------------------------------------------------------- issue-5 targets

export interface TargetVerdict {
  readonly target: string;
  readonly measured: string;
  readonly verdict: "met" | "MISSED" | "n/a";
}

/** Each target of issue 5 against this run's figures ("n/a" when the run lacks the scenario or nginx). */
export function evaluateTargets(runs: readonly RunRecord[], comparisons: readonly Comparison[], idleRssKb: number | null): TargetVerdict[] {
  const cmp = (scenario: string) => comparisons.find((c) => c.scenario === scenario && c.target === "gateway");
  const gw = (scenario: string) => find(runs, scenario, "gateway");
  const verdicts: TargetVerdict[] = [];
  const add = (target: string, value: number | null | undefined, limit: number, direction: "max" | "min", format: (v: number) => string, missing = "not measured") => {
    if (value === null || value === undefined || !Number.isFinite(value)) {
      verdicts.push({ target, measured: missing, verdict: "n/a" });
      return;
    }
    const met = direction === "max" ? value <= limit : value >= limit;
    verdicts.push({ target, measured: format(value), verdict: met ? "met" : "MISSED" });
  };
  const us = (v: number) => `${v.toFixed(0)} µs`;
  const plusUs = (v: number) => `${v >= 0 ? "+" : ""}${v.toFixed(0)} µs`;
  const ratio = (v: number) => `${v.toFixed(2)}×`;
  const megabytes = (v: number) => `${(v / 1024).toFixed(1)} MB`;
  const ran = (scenario: string, target: TargetName) => find(runs, scenario, target) !== undefined;
  const noNginx = (scenario: string) => (!ran(scenario, "gateway") ? "not measured" : "no nginx run (--compare)");

  add("chat, 50 conn: gateway CPU ≤ 120 µs/req", gw("chat-50c")?.proxyCpuUsPerReq, 120, "max", us);
  add("chat, 50 conn: throughput ≥ 0.3× nginx", cmp("chat-50c")?.nginxThroughputRatio, 0.3, "min", ratio, noNginx("chat-50c"));
  add("chat, 1 conn: added p50 ≤ 90 µs", cmp("chat-1c")?.addedP50Us, 90, "max", plusUs);
  add("chat, 1 conn: added p99 ≤ 500 µs", cmp("chat-1c")?.addedP99Us, 500, "max", plusUs);
  add("stream, 50 conn: throughput ≥ 0.95× direct", cmp("stream-50c")?.throughputRatio, 0.95, "min", ratio);
  add("stream, 50 conn: gateway CPU ≤ 300 µs/req", gw("stream-50c")?.proxyCpuUsPerReq, 300, "max", us);
  const agent = gw("agent-pinned")?.proxyCpuUsPerReq;
  const small = gw("chat-50c")?.proxyCpuUsPerReq;
  add("agent 60 KB body: CPU ≤ 1.5× small body", agent && small ? agent / small : null, 1.5, "max", ratio);
  add("fallback: throughput ≥ 0.9× nginx", cmp("fallback-50c")?.nginxThroughputRatio, 0.9, "min", ratio, noNginx("fallback-50c"));
  const fallback = gw("fallback-50c");
  if (fallback) {
    // Reused: the connections the mock accepted stay near the pool size, whatever the number of requests.
    const reused = fallback.upstream.connections <= 2 * fallback.connections;
    verdicts.push({
      target: "fallback: the 429 connection is reused",
      measured: `${fallback.upstream.connections} new upstream conns for ${fallback.upstream.busy} 429s`,
      verdict: fallback.upstream.busy === 0 ? "n/a" : reused ? "met" : "MISSED",
    });
  } else verdicts.push({ target: "fallback: the 429 connection is reused", measured: "not measured", verdict: "n/a" });
  const held = gw("streams-1000")?.held;
  const openNote = held && held.maxOpen < held.streams ? ` (only ${held.maxOpen} open at once)` : "";
  if (held && held.maxOpen < held.streams) {
    // Fewer streams open at once than the target says: the figure is not the one asked for.
    verdicts.push({ target: "1000 streams open: gateway RSS ≤ 120 MB", measured: `${megabytes(held.rssAtMaxOpenKb ?? NaN)}${openNote}`, verdict: "n/a" });
  } else add("1000 streams open: gateway RSS ≤ 120 MB", held?.rssAtMaxOpenKb, 120 * 1024, "max", megabytes);
  add("idle (after start-up): gateway RSS ≤ 60 MB", idleRssKb, 60 * 1024, "max", megabytes);
  return verdicts;
}

export function formatTargets(verdicts: readonly TargetVerdict[]): string {
  return markdownTable(["issue-5 target", "measured", "result"], verdicts.map((v) => [v.target, v.measured, v.verdict]), 2);
}

// ---------------------------------------------------------------- CI check

export interface Baseline {
  /** Gateway CPU µs per request, by scenario id. */
  readonly gatewayCpuUsPerReq: Readonly<Record<string, number>>;
  /** The mock's CPU µs per request on direct runs of the same baseline runs: the machine's speed then. */
  readonly directMockCpuUsPerReq?: Readonly<Record<string, number>>;
  /** A run fails the check above `factor` × the baseline. */
  readonly factor: number;
}

export interface CheckResult {
  readonly ok: boolean;
  readonly lines: string[];
}

/**
 * How much slower this machine is than the baseline's, from the one fixed
 * workload every run has: the mock answering direct requests. The median of
 * the scenarios' ratios, between 0.5 and 4 (beyond that the machine is not
 * fit to judge a regression).
 */
export function machineScale(runs: readonly RunRecord[], baseline: Baseline): number {
  const base = baseline.directMockCpuUsPerReq;
  if (!base) return 1;
  const ratios = runs
    .filter((run) => run.target === "direct" && base[run.scenario] !== undefined && Number.isFinite(run.upstreamCpuUsPerReq) && run.upstreamCpuUsPerReq > 0)
    .map((run) => run.upstreamCpuUsPerReq / (base[run.scenario] as number))
    .sort((a, b) => a - b);
  if (ratios.length === 0) return 1;
  const median = ratios[Math.floor((ratios.length - 1) / 2)] as number;
  return Math.min(4, Math.max(0.5, median));
}

/** The gateway runs whose CPU per request is above factor × baseline (candidates for a second measurement). */
export function overBaseline(runs: readonly RunRecord[], baseline: Baseline): RunRecord[] {
  const scale = machineScale(runs, baseline);
  return runs.filter((run) => {
    const base = baseline.gatewayCpuUsPerReq[run.scenario];
    return run.target === "gateway" && base !== undefined && !(run.proxyCpuUsPerReq !== null && run.proxyCpuUsPerReq <= base * baseline.factor * scale);
  });
}

/**
 * Gross regressions only: gateway CPU per request above factor × baseline, or
 * any failed request. A scenario over the limit was measured a second time
 * (`again`); it fails only if both measurements are over (noise rarely
 * strikes twice, a regression does).
 */
export function checkAgainstBaseline(runs: readonly RunRecord[], baseline: Baseline, again: readonly RunRecord[] = []): CheckResult {
  const lines: string[] = [];
  let ok = true;
  const scale = machineScale(runs, baseline);
  if (baseline.directMockCpuUsPerReq) lines.push(`  machine speed: the mock's direct CPU per request is ${scale.toFixed(2)}× the baseline's (limits scaled by it, within 0.5 to 4)`);
  for (const run of runs) {
    const bad = failures(run.load) + run.warmupFailures;
    if (bad > 0) {
      ok = false;
      lines.push(`FAIL ${run.scenario} ${run.target}: ${bad} failed requests (errors, timeouts or non-2xx)`);
    }
    if (run.target !== "gateway") continue;
    const base = baseline.gatewayCpuUsPerReq[run.scenario];
    if (base === undefined) {
      lines.push(`  -  ${run.scenario}: no baseline, CPU not checked`);
      continue;
    }
    const limit = base * baseline.factor * scale;
    const first = run.proxyCpuUsPerReq ?? NaN;
    const second = again.find((other) => other.scenario === run.scenario);
    const secondCpu = second?.proxyCpuUsPerReq ?? NaN;
    const cpu = Number.isFinite(secondCpu) && !(secondCpu > first) ? secondCpu : first;
    const pass = Number.isFinite(cpu) && cpu <= limit;
    if (!pass) ok = false;
    if (second && failures(second.load) + second.warmupFailures > 0) {
      ok = false;
      lines.push(`FAIL ${run.scenario} gateway (second measurement): failed requests`);
    }
    lines.push(
      `${pass ? " ok " : "FAIL"} ${run.scenario}: gateway CPU ${fixed(first, 0)} µs/req${second ? `, measured again: ${fixed(secondCpu, 0)}` : ""}, ` +
        `limit ${limit.toFixed(0)} (${baseline.factor}× the baseline ${base.toFixed(0)}${scale !== 1 ? ` × ${scale.toFixed(2)}` : ""})`,
    );
  }
  return { ok, lines };
}
