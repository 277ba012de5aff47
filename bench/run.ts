/**
 * `npm run bench`: the gateway's benchmark. See bench/README.md.
 *
 * Starts the mock upstream and the real gateway (each in its own process),
 * checks that both answer correctly, then drives every scenario with
 * autocannon, once straight at the mock (direct) and once through the gateway,
 * and prints one table with the ratios. Results also go to
 * build/bench-results.json.
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { runLoad, stopAllLoad, type LoadResult } from "./load.js";
import {
  REPO_ROOT,
  cpuTimeUs,
  killAllNow,
  memoryKb,
  procAvailable,
  startGateway,
  startMock,
  stopAll,
  type GatewayProcess,
  type MockProcess,
} from "./processes.js";
import { compare, failures, formatTable, type RunRecord } from "./report.js";
import { checkChat, checkStream, type SanityResult } from "./sanity.js";
import { SCENARIOS, chatRequest, routesYaml, type Scenario, type TargetName } from "./scenarios.js";

const USAGE = `Usage: npm run bench -- [options]

  --duration N     seconds per measured run (default 5)
  --warmup N       seconds of warm-up before each measured run (default 1)
  --quick          smoke run: --duration 1 --warmup 0.3
  --scenario IDS   comma-separated scenario ids (default: all): ${SCENARIOS.map((s) => s.id).join(", ")}
  --target NAMES   comma-separated targets (default: direct,gateway)
  --json PATH      where to write the results (default: build/bench-results.json)
  --cpu-prof       run the gateway with --cpu-prof; profiles go to build/bench-profiles/
  --prof           run the gateway with --prof; the V8 log goes to build/bench-profiles/
                   (one of the two at a time; profiling slows the gateway, so the figures are not comparable)
  --help           this text
`;

interface Options {
  durationSec: number;
  warmupSec: number;
  scenarios: Scenario[];
  targets: TargetName[];
  jsonPath: string;
  gatewayNodeArgs: string[];
  profileDir: string | undefined;
}

function parseOptions(argv: string[]): Options | undefined {
  const { values } = parseArgs({
    args: argv,
    options: {
      duration: { type: "string" },
      warmup: { type: "string" },
      quick: { type: "boolean" },
      scenario: { type: "string" },
      target: { type: "string" },
      json: { type: "string" },
      "cpu-prof": { type: "boolean" },
      prof: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.help) {
    process.stdout.write(USAGE);
    return undefined;
  }
  const seconds = (value: string | undefined, fallback: number, name: string) => {
    if (value === undefined) return fallback;
    const number = Number(value);
    if (!Number.isFinite(number) || number < 0 || number > 600) throw new Error(`--${name} must be a number of seconds (0-600), got "${value}"`);
    return number;
  };
  const durationSec = seconds(values.duration, values.quick ? 1 : 5, "duration");
  if (durationSec < 0.5) throw new Error("--duration must be at least 0.5 s");
  const warmupSec = seconds(values.warmup, values.quick ? 0.3 : 1, "warmup");

  const list = (value: string | undefined) => value?.split(",").map((item) => item.trim()).filter(Boolean);
  const scenarioIds = list(values.scenario);
  const scenarios = scenarioIds ? SCENARIOS.filter((s) => scenarioIds.includes(s.id)) : [...SCENARIOS];
  const unknown = scenarioIds?.filter((id) => !SCENARIOS.some((s) => s.id === id)) ?? [];
  if (unknown.length) throw new Error(`unknown scenario(s): ${unknown.join(", ")} (known: ${SCENARIOS.map((s) => s.id).join(", ")})`);
  const targets = (list(values.target) ?? ["direct", "gateway"]) as TargetName[];
  const badTarget = targets.find((t) => t !== "direct" && t !== "gateway");
  if (badTarget) throw new Error(`unknown target: ${badTarget} (known: direct, gateway)`);

  let profileDir: string | undefined;
  const gatewayNodeArgs: string[] = [];
  // Both use V8's sampling profiler; together, --prof records almost nothing.
  if (values["cpu-prof"] && values.prof) throw new Error("use --cpu-prof or --prof, not both");
  if (values["cpu-prof"] || values.prof) {
    profileDir = path.join(REPO_ROOT, "build", "bench-profiles");
    mkdirSync(profileDir, { recursive: true });
    if (values["cpu-prof"]) gatewayNodeArgs.push("--cpu-prof", `--cpu-prof-dir=${profileDir}`);
    if (values.prof) gatewayNodeArgs.push("--prof", "--no-logfile-per-isolate", `--logfile=${path.join(profileDir, "gateway-v8.log")}`);
  }
  return {
    durationSec,
    warmupSec,
    scenarios,
    targets,
    jsonPath: path.resolve(values.json ?? path.join(REPO_ROOT, "build", "bench-results.json")),
    gatewayNodeArgs,
    profileDir,
  };
}

const log = (message: string) => process.stderr.write(`${message}\n`);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface Target {
  readonly name: TargetName;
  readonly origin: string;
  /** The proxy process whose CPU and memory are measured (none for direct). */
  readonly proxyPid: number | undefined;
}

async function measure(scenario: Scenario, target: Target, mock: MockProcess, options: Options): Promise<RunRecord> {
  const load = { origin: target.origin, request: scenario.request, connections: scenario.connections };
  let warmupFailures = 0;
  if (options.warmupSec > 0) {
    const warm = await runLoad({ ...load, durationSec: options.warmupSec });
    warmupFailures = failures(warm);
  }
  await sleep(100);
  const proxyCpuBefore = target.proxyPid !== undefined ? cpuTimeUs(target.proxyPid) : 0;
  const mockCpuBefore = cpuTimeUs(mock.pid);
  const statsBefore = await mock.stats();
  const result: LoadResult = await runLoad({ ...load, durationSec: options.durationSec });
  const proxyCpu = target.proxyPid !== undefined ? cpuTimeUs(target.proxyPid) - proxyCpuBefore : 0;
  const mockCpu = cpuTimeUs(mock.pid) - mockCpuBefore;
  const statsAfter = await mock.stats();
  const perRequest = (us: number) => (result.requests > 0 ? us / result.requests : NaN);
  return {
    scenario: scenario.id,
    title: scenario.title,
    target: target.name,
    connections: scenario.connections,
    durationSec: options.durationSec,
    load: result,
    proxyCpuUsPerReq: target.proxyPid !== undefined ? perRequest(proxyCpu) : null,
    upstreamCpuUsPerReq: perRequest(mockCpu),
    proxyMemoryKb: target.proxyPid !== undefined ? memoryKb(target.proxyPid) : null,
    upstream: { requests: statsAfter.requests - statsBefore.requests, connections: statsAfter.connections - statsBefore.connections },
    warmupFailures,
  };
}

async function sanityChecks(mock: MockProcess, gateway: GatewayProcess | undefined): Promise<SanityResult[]> {
  const results = [await checkChat("direct", mock.origin, chatRequest(false), false), await checkStream("direct", mock.origin, chatRequest(true), false)];
  if (gateway) {
    results.push(await checkChat("gateway", gateway.origin, chatRequest(false), true));
    results.push(await checkStream("gateway", gateway.origin, chatRequest(true), true));
  }
  for (const r of results) {
    const stream = r.kind === "stream" ? `, ${r.chunks} chunks + [DONE] in ${r.reads} reads` : "";
    log(`  ok  ${r.target.padEnd(7)} ${r.kind.padEnd(6)} ${r.status}, ${r.bytes} bytes${r.modelUsed ? `, x-gateway-model-used: ${r.modelUsed}` : ""}${stream}`);
  }
  return results;
}

function gitRevision(): string | null {
  try {
    const rev = execFileSync("git", ["rev-parse", "--short", "HEAD"], { cwd: REPO_ROOT, encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
    const dirty = execFileSync("git", ["status", "--porcelain", "--untracked-files=no"], { cwd: REPO_ROOT, encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
    return dirty ? `${rev}-dirty` : rev;
  } catch {
    return null;
  }
}

function loudWarning(lines: string[]): void {
  const bar = "!".repeat(78);
  log(`\n${bar}\n!!! WARNING: ${lines.join("\n!!! ")}\n${bar}\n`);
}

async function main(options: Options): Promise<number> {
  if (!procAvailable()) throw new Error("the bench reads CPU time and RSS from /proc: it runs on Linux only");
  const started = Date.now();
  const wantGateway = options.targets.includes("gateway");

  log("starting the mock upstream and the gateway…");
  const mock = await startMock();
  let gateway: GatewayProcess | undefined;
  if (wantGateway) {
    gateway = await startGateway({ routesYaml: routesYaml(mock.origin), nodeArgs: options.gatewayNodeArgs });
    mock.guard([gateway.pid], [gateway.dir]);
  }
  log(`  mock upstream ${mock.origin} (pid ${mock.pid})${gateway ? `, gateway ${gateway.origin} (pid ${gateway.pid})` : ""}`);

  log("sanity checks:");
  const sanity = await sanityChecks(mock, gateway);
  const idleMemoryKb = gateway ? memoryKb(gateway.pid) : null;

  const targets: Target[] = options.targets.map((name) =>
    name === "gateway" ? { name, origin: gateway!.origin, proxyPid: gateway!.pid } : { name, origin: mock.origin, proxyPid: undefined },
  );
  const runs: RunRecord[] = [];
  const total = options.scenarios.reduce((n, s) => n + (s.targets ?? targets.map((t) => t.name)).filter((t) => options.targets.includes(t)).length, 0);
  log(`measuring: ${total} runs of ${options.durationSec} s, each after ${options.warmupSec} s of warm-up`);
  for (const scenario of options.scenarios) {
    for (const target of targets) {
      if (scenario.targets && !scenario.targets.includes(target.name)) continue;
      const run = await measure(scenario, target, mock, options);
      runs.push(run);
      const bad = failures(run.load);
      log(
        `  ${scenario.id.padEnd(11)} ${target.name.padEnd(7)} ${run.load.rps.toFixed(0).padStart(6)} req/s  p50 ${run.load.latencyMs.p50.toFixed(3)} ms  p99 ${run.load.latencyMs.p99.toFixed(3)} ms` +
          (run.proxyCpuUsPerReq !== null ? `  ${run.proxyCpuUsPerReq.toFixed(0)} µs CPU/req` : "") +
          (bad ? `  ${bad} FAILED` : ""),
      );
    }
  }

  const finalMemoryKb = gateway ? memoryKb(gateway.pid) : null;
  const gatewayOutput = gateway?.output() ?? "";
  log("stopping…");
  await stopAll(options.profileDir ? 20_000 : 3_000);

  const comparisons = compare(runs);
  process.stdout.write(`\n${formatTable(runs, comparisons)}\n`);
  if (idleMemoryKb && finalMemoryKb) {
    process.stdout.write(
      `\ngateway RSS: ${(idleMemoryKb.rssKb / 1024).toFixed(1)} MB idle (after start-up and the sanity checks), peak (VmHWM) ${(finalMemoryKb.peakRssKb / 1024).toFixed(1)} MB over the whole bench\n`,
    );
  }
  const cpus = os.cpus();
  const meta = {
    date: new Date().toISOString(),
    node: process.version,
    platform: `${os.type()} ${os.release()} ${os.arch()}`,
    cpu: cpus[0]?.model ?? "unknown",
    cpuCount: cpus.length,
    git: gitRevision(),
    durationSec: options.durationSec,
    warmupSec: options.warmupSec,
    argv: process.argv.slice(2),
    wallClockSec: (Date.now() - started) / 1000,
  };
  process.stdout.write(
    `${meta.cpuCount} × ${meta.cpu}, node ${meta.node}, ${options.durationSec} s per run after ${options.warmupSec} s warm-up, git ${meta.git ?? "?"}; bench took ${meta.wallClockSec.toFixed(0)} s\n`,
  );

  mkdirSync(path.dirname(options.jsonPath), { recursive: true });
  writeFileSync(
    options.jsonPath,
    `${JSON.stringify({ meta, sanity, gateway: { idleMemoryKb, finalMemoryKb }, runs, comparisons }, null, 2)}\n`,
  );
  process.stdout.write(`results: ${path.relative(process.cwd(), options.jsonPath) || options.jsonPath}\n`);
  if (options.profileDir) process.stdout.write(`profiles: ${options.profileDir} (see bench/README.md)\n`);

  const failed = runs.filter((run) => failures(run.load) > 0 || run.warmupFailures > 0);
  if (failed.length) {
    loudWarning([
      "some requests FAILED, so these figures are not valid:",
      ...failed.map(
        (run) =>
          `${run.scenario} ${run.target}: ${run.load.errors} errors (${run.load.timeouts} timeouts), ${run.load.non2xx} non-2xx ` +
          `(status codes ${JSON.stringify(run.load.statusCodes)}), ${run.warmupFailures} failures during warm-up`,
      ),
      ...(gatewayOutput ? ["last gateway output:", ...gatewayOutput.split("\n").slice(-10)] : []),
    ]);
    return 1;
  }
  return 0;
}

// ---------------------------------------------------------------- process lifecycle

let options: Options | undefined;
try {
  options = parseOptions(process.argv.slice(2));
} catch (error) {
  process.stderr.write(`${(error as Error).message}\n\n${USAGE}`);
  process.exit(2);
}

if (options) {
  const opts = options;
  // Children are killed whatever happens: normal end, error, Ctrl-C, or a run that overruns.
  process.on("exit", killAllNow);
  let stopping = false;
  const abort = (why: string, code: number) => {
    if (stopping) {
      killAllNow();
      process.exit(code);
    }
    stopping = true;
    log(`\n${why}: stopping the load and the child processes…`);
    stopAllLoad();
    stopAll(1_000).finally(() => process.exit(code));
  };
  process.on("SIGINT", () => abort("interrupted", 130));
  process.on("SIGTERM", () => abort("terminated", 143));
  process.on("SIGHUP", () => abort("hung up", 129));

  // A hard bound on the whole bench: start-up, every run, and shutdown.
  const runsCount = opts.scenarios.length * opts.targets.length;
  const boundSec = 60 + runsCount * (opts.durationSec + opts.warmupSec + 2) * 1.5;
  setTimeout(() => abort(`the bench did not finish within ${boundSec.toFixed(0)} s`, 1), boundSec * 1000).unref();

  main(opts).then(
    (code) => finish(code),
    async (error: unknown) => {
      log(`\nbench failed: ${(error as Error).message ?? String(error)}`);
      await stopAll(1_000);
      finish(1);
    },
  );
}

/** Exits with `code` once the event loop drains, or after 2 s should a handle linger. */
function finish(code: number): void {
  process.exitCode = code;
  setTimeout(() => process.exit(code), 2_000).unref();
}
