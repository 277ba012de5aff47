/**
 * `npm run bench:ab -- --baseline DIR`: this checkout's gateway against
 * another checkout's, side by side. See bench/README.md.
 *
 * One mock upstream, both gateways started as production runs them, and the
 * scenario's load alternated between them in short slices (A B, then B A, …),
 * each slice's CPU per request read from /proc. On a machine whose speed
 * drifts by tens of percent within minutes, two bench runs one after the
 * other compare the hours as much as the builds; slices a few seconds apart
 * see the same machine. And a gateway process has a speed of its own (one
 * build against itself read 0.90× with 12 of 16 slices agreeing: JIT and heap
 * luck), so each round starts both afresh, and the verdict is the median of
 * the rounds' ratios.
 */
import { existsSync } from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";
import { runLoad, stopAllLoad, type LoadResult } from "./load.js";
import { failures } from "./report.js";
import { REPO_ROOT, cpuTimeUs, guardLifecycle, logLevel, procAvailable, removeTempDir, startGateway, startMock, stopAll, stopChild, type GatewayProcess } from "./processes.js";
import { HELD_STREAMS, SCENARIOS, requestFor, routesYaml, type Scenario } from "./scenarios.js";

const DEFAULT_SCENARIOS = ["chat-50c", "stream-50c", "fallback-50c", "agent-pinned"];

const USAGE = `Usage: npm run bench:ab -- --baseline DIR [options]

  --baseline DIR   another checkout of the gateway, built (npm ci there): the "before"
  --scenario IDS   comma-separated scenario ids (default: ${DEFAULT_SCENARIOS.join(",")});
                   any of ${SCENARIOS.filter((s) => s.kind !== "held-streams").map((s) => s.id).join(", ")}
  --rounds N       rounds per scenario, each with both gateways started afresh (default 4)
  --slices N       measured slices per gateway and round (default 6)
  --slice-sec S    seconds per slice (default 2)
  --warmup S       seconds of the scenario's load on each new gateway before its slices (default 3)
  --gateway-log-level L  both gateways' LOG_LEVEL (default warn, as in npm run bench; info: a line per request)
  --help
`;

interface Options {
  readonly baseline: string;
  readonly scenarios: readonly Scenario[];
  readonly rounds: number;
  readonly slices: number;
  readonly sliceSec: number;
  readonly warmupSec: number;
  readonly logLevel: string;
}

function parseOptions(argv: string[]): Options | undefined {
  const { values } = parseArgs({
    args: argv,
    options: {
      baseline: { type: "string" },
      scenario: { type: "string" },
      rounds: { type: "string" },
      slices: { type: "string" },
      "slice-sec": { type: "string" },
      warmup: { type: "string" },
      "gateway-log-level": { type: "string" },
      help: { type: "boolean" },
    },
    strict: true,
  });
  if (values.help) return undefined;
  if (!values.baseline) throw new Error("--baseline DIR is required: the checkout to compare this one with");
  const baseline = path.resolve(values.baseline);
  for (const file of ["bin/openclaw-autoproxy.js", "dist/cli.js"]) {
    if (!existsSync(path.join(baseline, file))) throw new Error(`--baseline ${baseline}: no ${file} (a checkout of this project, built with npm ci or npm run build)`);
  }
  const ids = (values.scenario ?? DEFAULT_SCENARIOS.join(",")).split(",").map((id) => id.trim());
  const scenarios = ids.map((id) => {
    const scenario = SCENARIOS.find((s) => s.id === id);
    if (!scenario) throw new Error(`--scenario: unknown scenario "${id}"`);
    if (scenario.kind === "held-streams") throw new Error(`--scenario ${id}: the held streams are measured by memory, not in slices`);
    return scenario;
  });
  const number = (name: string, value: string | undefined, fallback: number, min: number, max: number, integer = false) => {
    if (value === undefined) return fallback;
    const n = /^\d+(\.\d+)?$/.test(value) ? Number(value) : NaN;
    if (!Number.isFinite(n) || n < min || n > max || (integer && !Number.isInteger(n))) throw new Error(`--${name}: expected ${integer ? "an integer" : "a number"} from ${min} to ${max}, got "${value}"`);
    return n;
  };
  return {
    baseline,
    scenarios,
    rounds: number("rounds", values.rounds, 4, 1, 100, true),
    slices: number("slices", values.slices, 6, 1, 1000, true),
    sliceSec: number("slice-sec", values["slice-sec"], 2, 0.2, 60),
    warmupSec: number("warmup", values.warmup, 3, 0, 60),
    logLevel: logLevel(values["gateway-log-level"]),
  };
}

interface Side {
  readonly label: "baseline" | "this";
  readonly root: string;
  gateway?: GatewayProcess;
  cpuUs: number;
  requests: number;
}

const log = (line: string) => process.stdout.write(`${line}\n`);
const median = (values: readonly number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
};

function checked(result: LoadResult, what: string): LoadResult {
  if (failures(result) > 0) throw new Error(`${what}: ${failures(result)} failed requests (status codes ${JSON.stringify(result.statusCodes)})`);
  if (result.requests === 0) throw new Error(`${what}: no response`);
  return result;
}

async function main(options: Options): Promise<void> {
  if (!procAvailable()) throw new Error("bench:ab reads CPU time from /proc: it runs on Linux only");
  const mock = await startMock({ slowIntervalMs: 200 });
  log(`baseline ${options.baseline}, this ${REPO_ROOT}: per scenario ${options.rounds} rounds (both gateways started afresh) of ${options.slices} slices of ${options.sliceSec} s each`);

  for (const scenario of options.scenarios) {
    const request = requestFor(scenario, "gateway");
    const ratios: number[] = [];
    const wins: number[] = [];
    const sides: Side[] = [
      { label: "baseline", root: options.baseline, cpuUs: 0, requests: 0 },
      { label: "this", root: REPO_ROOT, cpuUs: 0, requests: 0 },
    ];
    const load = (side: Side, durationSec: number) => runLoad({ origin: (side.gateway as GatewayProcess).origin, request, connections: scenario.connections, durationSec });
    for (let round = 0; round < options.rounds; round++) {
      const order = round % 2 === 0 ? sides : [...sides].reverse();
      for (const side of order) {
        side.gateway = await startGateway({
          routesYaml: routesYaml(mock),
          bin: path.join(side.root, "bin", "openclaw-autoproxy.js"),
          env: { UPSTREAM_MAX_CONNECTIONS: String(HELD_STREAMS + 100), LOG_LEVEL: options.logLevel },
        });
      }
      const gateways = sides.map((side) => side.gateway as GatewayProcess);
      mock.guard(
        gateways.map((g) => g.pid),
        gateways.map((g) => g.dir),
      );
      if (options.warmupSec > 0) for (const side of order) checked(await load(side, options.warmupSec), `${scenario.id} ${side.label} warm-up`);
      const perSlice = new Map<Side, number[]>(sides.map((side) => [side, []]));
      const cpu = new Map<Side, { us: number; requests: number }>(sides.map((side) => [side, { us: 0, requests: 0 }]));
      for (let i = 0; i < options.slices; i++) {
        // A B, B A, …: neither side always runs first after the other's load.
        for (const side of i % 2 === 0 ? order : [...order].reverse()) {
          const gateway = side.gateway as GatewayProcess;
          const before = cpuTimeUs(gateway.pid);
          const result = checked(await load(side, options.sliceSec), `${scenario.id} ${side.label} round ${round + 1} slice ${i + 1}`);
          const used = cpuTimeUs(gateway.pid) - before;
          (perSlice.get(side) as number[]).push(used / result.requests);
          const total = cpu.get(side) as { us: number; requests: number };
          total.us += used;
          total.requests += result.requests;
          side.cpuUs += used;
          side.requests += result.requests;
        }
      }
      for (const gateway of gateways) {
        await stopChild(gateway.child);
        // Now, not at the end: the mock's guard (for a SIGKILLed bench) knows only the current round's.
        removeTempDir(gateway.dir);
      }
      const [a, b] = sides as [Side, Side];
      const perReq = (side: Side) => (cpu.get(side) as { us: number; requests: number }).us / (cpu.get(side) as { us: number; requests: number }).requests;
      ratios.push(perReq(b) / perReq(a));
      const aSlices = perSlice.get(a) as number[];
      wins.push((perSlice.get(b) as number[]).filter((value, i) => value < (aSlices[i] as number)).length);
    }
    const [a, b] = sides as [Side, Side];
    log(
      `${scenario.id.padEnd(13)} this ÷ baseline ${median(ratios).toFixed(3)} (median of rounds: ${ratios.map((r) => r.toFixed(2)).join(" ")}); ` +
        `CPU per request over all slices ${(a.cpuUs / a.requests).toFixed(1)} → ${(b.cpuUs / b.requests).toFixed(1)} µs; this cheaper in ${wins.reduce((x, y) => x + y, 0)} of ${options.rounds * options.slices} paired slices`,
    );
  }
}

let options: Options | undefined;
try {
  options = parseOptions(process.argv.slice(2));
  if (!options) process.stdout.write(USAGE);
} catch (error) {
  process.stderr.write(`${(error as Error).message}\n\n${USAGE}`);
  process.exit(2);
}

if (options) {
  const opts = options;
  const lifecycle = guardLifecycle({
    name: "bench:ab",
    boundSec: 60 + opts.scenarios.length * opts.rounds * 2 * (5 + opts.warmupSec + opts.slices * (opts.sliceSec + 1)) * 1.5,
    stopLoad: stopAllLoad,
    log,
  });
  main(opts).then(
    async () => {
      await stopAll(3_000);
      process.exit(0);
    },
    async (error: unknown) => {
      if (lifecycle.stopping()) return;
      log(`\nbench:ab failed: ${(error as Error).message ?? String(error)}`);
      await stopAll(1_000);
      process.exit(1);
    },
  );
}
