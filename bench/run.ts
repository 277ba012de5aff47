/**
 * `npm run bench`: the gateway's benchmark. See bench/README.md.
 *
 * Starts the mock upstream and the real gateway (and, with --compare, the
 * lean Node proxy and nginx),
 * each in its own process, checks that they answer correctly, then drives
 * every scenario once straight at the mock (direct) and once through each
 * proxy, and prints one table with the ratios, the issue-5 targets met or
 * missed and, with --check, the CI verdict. Results also go to
 * build/bench-results.json.
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { runLoad, stopAllLoad, type LoadResult } from "./load.js";
import { findNginx, startNginx, type NginxProcess } from "./nginx.js";
import {
  REPO_ROOT,
  cpuTimeUs,
  guardLifecycle,
  logLevel,
  memoryKb,
  procAvailable,
  startGateway,
  startMock,
  stopAll,
  startLeanProxy,
  stopChild,
  type GatewayProcess,
  type LeanProxyProcess,
  type MockProcess,
} from "./processes.js";
import {
  checkAgainstBaseline,
  compare,
  evaluateTargets,
  failures,
  formatSummary,
  formatTable,
  formatTargets,
  overBaseline,
  type Baseline,
  type RunRecord,
} from "./report.js";
import { checkChat, checkStream, type GatewayExpectations, type SanityResult } from "./sanity.js";
import { BENCH_MODEL, HELD_STREAMS, SCENARIOS, TARGET_NAMES, chatRequest, requestFor, routesYaml, type Scenario, type TargetName } from "./scenarios.js";
import { runHeldStreams, stopHeldStreams } from "./streams.js";

const BASELINE_FILE = path.join(REPO_ROOT, "bench", "baseline.json");

const USAGE = `Usage: npm run bench -- [options]

  --duration N       seconds per measured run (default 5)
  --warmup N         seconds of warm-up before each measured run (default 1)
  --gateway-warmup N seconds of chat load on a new gateway before its first run (default 3): its JIT
                     and heap take a few seconds to settle, which would weigh on the first scenario
  --quick            smoke run: --duration 1 --warmup 0.3, held streams of 2 s instead of 4 s
  --scenario IDS     comma-separated scenario ids (default: all): ${SCENARIOS.map((s) => s.id).join(", ")}
  --target NAMES     comma-separated targets: direct, gateway, node (the lean Node proxy), nginx
                     (default: direct,gateway; node and nginx too with --compare)
  --compare          also run the lean Node proxy (bench/lean-proxy.ts: the floor for Node) and
                     nginx (when installed) as reverse proxies, and print the gateway's ratios to nginx
  --check            CI guard: exit 1 if a gateway run costs more than 3× the CPU per request of
                     bench/baseline.json, or any request failed; never on mere noise
  --update-baseline  write this run's gateway CPU per request to bench/baseline.json
  --json PATH        where to write the results (default: build/bench-results.json)
  --cpu-prof         run the gateway with --cpu-prof; profiles go to build/bench-profiles/
  --prof             run the gateway with --prof; the V8 log goes to build/bench-profiles/
                     (one of the two at a time; profiling slows the gateway, so the figures are not comparable)
  --perf             run the gateway with --perf-basic-prof, for Linux perf to name its JIT code
                     (attach \`perf record -g -p <gateway pid>\` yourself; see bench/README.md)
  --gateway-node-flags=F  more node flags for the gateway, e.g. --gateway-node-flags="--trace-gc --heapsnapshot-signal=SIGUSR2"
  --gateway-log PATH more of the gateway's standard output (its log, --trace-gc's lines), appended to PATH
  --gateway-log-level L  the gateway's LOG_LEVEL (default warn, so no line per request; info: a line per
                     request, as a gateway started without LOG_LEVEL writes)
  --help             this text
`;

interface Options {
  durationSec: number;
  warmupSec: number;
  gatewayWarmupSec: number;
  /** The mock's interval between the events of a held stream (20 events). */
  slowIntervalMs: number;
  scenarios: Scenario[];
  targets: TargetName[];
  check: boolean;
  updateBaseline: boolean;
  jsonPath: string;
  gatewayNodeArgs: string[];
  gatewayLog: string | undefined;
  gatewayLogLevel: string;
  profileDir: string | undefined;
}

function parseOptions(argv: string[]): Options | undefined {
  const { values } = parseArgs({
    args: argv,
    options: {
      duration: { type: "string" },
      warmup: { type: "string" },
      "gateway-warmup": { type: "string" },
      quick: { type: "boolean" },
      scenario: { type: "string" },
      target: { type: "string" },
      compare: { type: "boolean" },
      check: { type: "boolean" },
      "update-baseline": { type: "boolean" },
      json: { type: "string" },
      "cpu-prof": { type: "boolean" },
      prof: { type: "boolean" },
      perf: { type: "boolean" },
      "gateway-node-flags": { type: "string" },
      "gateway-log": { type: "string" },
      "gateway-log-level": { type: "string" },
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
  const gatewayWarmupSec = seconds(values["gateway-warmup"], 3, "gateway-warmup");

  const list = (value: string | undefined) => value?.split(",").map((item) => item.trim()).filter(Boolean);
  const scenarioIds = list(values.scenario);
  const scenarios = scenarioIds ? SCENARIOS.filter((s) => scenarioIds.includes(s.id)) : [...SCENARIOS];
  const unknown = scenarioIds?.filter((id) => !SCENARIOS.some((s) => s.id === id)) ?? [];
  if (unknown.length) throw new Error(`unknown scenario(s): ${unknown.join(", ")} (known: ${SCENARIOS.map((s) => s.id).join(", ")})`);
  const targets = (list(values.target) ?? ["direct", "gateway"]) as TargetName[];
  const badTarget = targets.find((t) => !TARGET_NAMES.includes(t));
  if (badTarget) throw new Error(`unknown target: ${badTarget} (known: ${TARGET_NAMES.join(", ")})`);
  if (values.compare) for (const reference of ["node", "nginx"] as const) if (!targets.includes(reference)) targets.push(reference);
  // Always in the same order: direct first (the baseline), then the proxies.
  targets.sort((a, b) => TARGET_NAMES.indexOf(a) - TARGET_NAMES.indexOf(b));

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
  if (values.perf) gatewayNodeArgs.push("--perf-basic-prof");
  if (values["gateway-node-flags"]) gatewayNodeArgs.push(...values["gateway-node-flags"].split(/\s+/).filter(Boolean));
  if ((values.check || values["update-baseline"]) && !targets.includes("gateway")) throw new Error("--check and --update-baseline need the gateway target");
  return {
    durationSec,
    warmupSec,
    gatewayWarmupSec,
    slowIntervalMs: values.quick ? 100 : 200,
    scenarios,
    targets,
    check: values.check ?? false,
    updateBaseline: values["update-baseline"] ?? false,
    jsonPath: path.resolve(values.json ?? path.join(REPO_ROOT, "build", "bench-results.json")),
    gatewayNodeArgs,
    gatewayLog: values["gateway-log"] ? path.resolve(values["gateway-log"]) : undefined,
    gatewayLogLevel: logLevel(values["gateway-log-level"]),
    profileDir,
  };
}

const log = (message: string) => process.stderr.write(`${message}\n`);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface Target {
  readonly name: TargetName;
  readonly origin: string;
  /** The proxy process whose CPU and memory are measured (none for direct; nginx's worker). */
  readonly proxyPid: number | undefined;
}

/** Seconds a held stream lasts: 20 events, `slowIntervalMs` apart. */
const heldStreamSec = (options: Options) => (20 * options.slowIntervalMs) / 1000;

function runsOf(options: Options): { scenario: Scenario; target: TargetName }[] {
  return options.scenarios.flatMap((scenario) =>
    options.targets.filter((target) => !scenario.targets || scenario.targets.includes(target)).map((target) => ({ scenario, target })),
  );
}

async function measure(scenario: Scenario, target: Target, mock: MockProcess, options: Options): Promise<RunRecord> {
  const request = requestFor(scenario, target.name);
  const pid = target.proxyPid;
  const load = { origin: target.origin, request, connections: scenario.connections };
  let warmupFailures = 0;
  if (scenario.kind !== "held-streams" && options.warmupSec > 0) {
    const warm = await runLoad({ ...load, durationSec: options.warmupSec });
    warmupFailures = failures(warm);
  }
  await sleep(100);
  const rssBeforeKb = pid !== undefined ? memoryKb(pid).rssKb : null;
  const proxyCpuBefore = pid !== undefined ? cpuTimeUs(pid) : 0;
  const mockCpuBefore = cpuTimeUs(mock.pid);
  const statsBefore = await mock.stats();
  let result: LoadResult;
  let held: RunRecord["held"];
  if (scenario.kind === "held-streams") {
    const run = await runHeldStreams({ ...load, streams: scenario.connections, pid, timeoutMs: (heldStreamSec(options) + 20) * 1000 });
    result = run.load;
    held = {
      streams: scenario.connections,
      allOpenAfterMs: run.allOpenAfterMs,
      maxOpen: run.maxOpen,
      rssBeforeKb,
      rssAtMaxOpenKb: run.rssAtMaxOpenKb,
      rssMaxKb: run.rssMaxKb,
      samplesAtMaxOpen: run.samplesAtMaxOpen,
      closedConnections: run.closedConnections,
    };
  } else {
    result = await runLoad({ ...load, durationSec: options.durationSec });
  }
  const proxyCpu = pid !== undefined ? cpuTimeUs(pid) - proxyCpuBefore : 0;
  const mockCpu = cpuTimeUs(mock.pid) - mockCpuBefore;
  const statsAfter = await mock.stats();
  const perRequest = (us: number) => (result.requests > 0 ? us / result.requests : NaN);
  return {
    scenario: scenario.id,
    title: scenario.title,
    kind: scenario.kind,
    target: target.name,
    connections: scenario.connections,
    durationSec: held ? result.elapsedSec : options.durationSec,
    load: result,
    proxyCpuUsPerReq: pid !== undefined ? perRequest(proxyCpu) : null,
    upstreamCpuUsPerReq: perRequest(mockCpu),
    proxyMemoryKb: pid !== undefined ? memoryKb(pid) : null,
    upstream: {
      requests: statsAfter.requests - statsBefore.requests,
      busy: statsAfter.busy - statsBefore.busy,
      connections: statsAfter.connections - statsBefore.connections,
    },
    warmupFailures,
    ...(held ? { held } : {}),
  };
}

/** One request per scenario and target before any load (held streams check every stream themselves). */
async function sanityChecks(options: Options, targets: readonly Target[]): Promise<SanityResult[]> {
  const results: SanityResult[] = [];
  for (const { scenario, target: name } of runsOf(options)) {
    if (scenario.kind === "held-streams") continue;
    const target = targets.find((t) => t.name === name)!;
    const request = requestFor(scenario, name);
    const expect: GatewayExpectations | undefined = name === "gateway" ? { modelUsed: BENCH_MODEL, switched: scenario.kind === "fallback" } : undefined;
    const r =
      scenario.kind === "stream"
        ? await checkStream(scenario.id, name, target.origin, request, expect)
        : await checkChat(scenario.id, name, target.origin, request, expect);
    results.push(r);
    const stream = r.kind === "stream" ? `, ${r.chunks} chunks + [DONE] in ${r.reads} reads` : "";
    const gatewayHeaders = r.modelUsed ? `, model-used ${r.modelUsed}${r.switched ? `, switched ${r.switched}` : ""}, attempts ${r.attempts}` : "";
    log(`  ok  ${scenario.id.padEnd(12)} ${name.padEnd(7)} ${r.status}, ${r.bytes} bytes${gatewayHeaders}${stream}`);
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

function readBaseline(): Baseline {
  let parsed: Partial<Baseline>;
  try {
    parsed = JSON.parse(readFileSync(BASELINE_FILE, "utf8")) as Partial<Baseline>;
  } catch (error) {
    throw new Error(`--check needs ${path.relative(REPO_ROOT, BASELINE_FILE)}: ${(error as Error).message}`);
  }
  if (!parsed.gatewayCpuUsPerReq || typeof parsed.factor !== "number") throw new Error(`${BASELINE_FILE} needs gatewayCpuUsPerReq and factor`);
  return parsed as Baseline;
}

async function main(options: Options): Promise<number> {
  if (!procAvailable()) throw new Error("the bench reads CPU time and RSS from /proc: it runs on Linux only");
  const started = Date.now();
  const notes: string[] = [];
  const baseline = options.check ? readBaseline() : undefined;

  let nginxBin: string | undefined;
  if (options.targets.includes("nginx")) {
    nginxBin = findNginx();
    if (!nginxBin) {
      notes.push("--compare: nginx is not installed (`command -v nginx` finds nothing), so there is no nginx column; on Debian/Ubuntu: apt-get install nginx-light");
      options.targets = options.targets.filter((t) => t !== "nginx");
    }
  }
  for (const note of notes) log(`NOTE: ${note}`);

  log("starting the mock upstream, the gateway" + (nginxBin ? " and nginx" : "") + "…");
  const mock = await startMock({ slowIntervalMs: options.slowIntervalMs });
  let gateway: GatewayProcess | undefined;
  let nginx: NginxProcess | undefined;
  let lean: LeanProxyProcess | undefined;
  const guardPids: number[] = [];
  const guardDirs: string[] = [];
  const launchGateway = async () => {
    const launched = await startGateway({
      routesYaml: routesYaml(mock),
      nodeArgs: options.gatewayNodeArgs,
      logFile: options.gatewayLog,
      // The default pool (200 connections per upstream) would queue most of the held streams.
      env: { UPSTREAM_MAX_CONNECTIONS: String(HELD_STREAMS + 100), LOG_LEVEL: options.gatewayLogLevel },
    });
    guardPids.push(launched.pid);
    guardDirs.push(launched.dir);
    mock.guard(guardPids, guardDirs);
    return launched;
  };
  if (options.targets.includes("gateway")) gateway = await launchGateway();
  if (options.targets.includes("node")) {
    lean = await startLeanProxy(mock);
    guardPids.push(lean.pid);
    mock.guard(guardPids, guardDirs);
  }
  if (nginxBin) {
    try {
      nginx = await startNginx(nginxBin, mock);
      guardPids.push(nginx.masterPid, nginx.workerPid);
      guardDirs.push(nginx.dir);
      mock.guard(guardPids, guardDirs);
    } catch (error) {
      const note = `--compare: nginx (${nginxBin}) did not start, so there is no nginx column: ${(error as Error).message}`;
      notes.push(note);
      log(`NOTE: ${note}`);
      options.targets = options.targets.filter((t) => t !== "nginx");
    }
  }
  log(
    `  mock upstream ${mock.origin} (busy port ${mock.busyOrigin}, pid ${mock.pid})` +
      (gateway ? `, gateway ${gateway.origin} (pid ${gateway.pid})` : "") +
      (lean ? `, lean Node proxy ${lean.origin} (pid ${lean.pid})` : "") +
      (nginx ? `, nginx ${nginx.version} ${nginx.origin} (master ${nginx.masterPid}, worker ${nginx.workerPid})` : ""),
  );

  const targets: Target[] = options.targets.map((name) => {
    if (name === "gateway") return { name, origin: gateway!.origin, proxyPid: gateway!.pid };
    if (name === "nginx") return { name, origin: nginx!.origin, proxyPid: nginx!.workerPid };
    if (name === "node") return { name, origin: lean!.origin, proxyPid: lean!.pid };
    return { name, origin: mock.origin, proxyPid: undefined };
  });

  // Idle: after start-up, before any request (and again after the sanity checks' few requests).
  await sleep(200);
  const startupMemoryKb = gateway ? memoryKb(gateway.pid) : null;
  log("sanity checks:");
  const sanity = await sanityChecks(options, targets);
  const idleMemoryKb = gateway ? memoryKb(gateway.pid) : null;

  const plan = runsOf(options);
  const gatewayTarget = targets.find((t) => t.name === "gateway");
  // Not for the held streams alone: they run on a gateway fresh from start-up.
  const warmable = plan.some((entry) => entry.target === "gateway" && entry.scenario.kind !== "held-streams");
  if (gatewayTarget && warmable && options.gatewayWarmupSec > 0) {
    log(`warming the gateway up: ${options.gatewayWarmupSec} s of chat load, 50 connections (not measured)`);
    const warm = await runLoad({ origin: gatewayTarget.origin, request: chatRequest(false), connections: 50, durationSec: options.gatewayWarmupSec });
    if (failures(warm) > 0) throw new Error(`the gateway failed ${failures(warm)} requests while warming up (status codes ${JSON.stringify(warm.statusCodes)}):\n${gateway?.output() ?? ""}`);
  }
  // The lean Node proxy's JIT needs the same warm-up, or its first run would read several times its steady cost.
  const leanTarget = targets.find((t) => t.name === "node");
  if (leanTarget && options.gatewayWarmupSec > 0) {
    log(`warming the lean Node proxy up: ${options.gatewayWarmupSec} s of chat load (not measured)`);
    const warm = await runLoad({ origin: leanTarget.origin, request: chatRequest(false), connections: 50, durationSec: options.gatewayWarmupSec });
    if (failures(warm) > 0) throw new Error(`the lean Node proxy failed ${failures(warm)} requests while warming up:\n${lean?.output() ?? ""}`);
  }

  const runs: RunRecord[] = [];
  log(`measuring: ${plan.length} runs of ${options.durationSec} s, each after ${options.warmupSec} s of warm-up (held streams: ${heldStreamSec(options)} s)`);
  let gatewayUsed = warmable && options.gatewayWarmupSec > 0;
  /** VmHWM of the gateway replaced by a fresh one, if any. */
  let earlierPeakKb = 0;
  for (const { scenario, target: name } of plan) {
    let target = targets.find((t) => t.name === name)!;
    if (name === "gateway" && scenario.kind === "held-streams" && gatewayUsed && gateway && !options.profileDir) {
      // A fresh gateway, so that its memory with the streams open does not depend on the scenarios run before
      // (not when profiling: one gateway, one profile).
      log("  (a fresh gateway for the held streams)");
      earlierPeakKb = memoryKb(gateway.pid).peakRssKb;
      await stopChild(gateway.child);
      gateway = await launchGateway();
      target = { name, origin: gateway.origin, proxyPid: gateway.pid };
      targets[targets.findIndex((t) => t.name === name)] = target;
    }
    if (name === "gateway") gatewayUsed = true;
    const run = await measure(scenario, target, mock, options);
    runs.push(run);
    const bad = failures(run.load) + run.warmupFailures;
    log(
      `  ${scenario.id.padEnd(12)} ${target.name.padEnd(7)} ${run.load.rps.toFixed(0).padStart(6)} req/s  p50 ${run.load.latencyMs.p50.toFixed(3)} ms  p99 ${run.load.latencyMs.p99.toFixed(3)} ms` +
        (run.proxyCpuUsPerReq !== null ? `  ${run.proxyCpuUsPerReq.toFixed(0)} µs CPU/req` : "") +
        (run.held ? `  ${run.held.maxOpen} open at once` : "") +
        (run.held?.rssAtMaxOpenKb ? `, ${(run.held.rssAtMaxOpenKb / 1024).toFixed(1)} MB RSS` : "") +
        (bad ? `  ${bad} FAILED` : ""),
    );
  }

  // --check: a gateway run over the limit is measured once more before the verdict.
  const again: RunRecord[] = [];
  if (baseline) {
    for (const over of overBaseline(runs, baseline)) {
      if (failures(over.load) + over.warmupFailures > 0) continue;
      const { scenario } = plan.find((entry) => entry.scenario.id === over.scenario && entry.target === "gateway")!;
      log(`  ${scenario.id.padEnd(12)} gateway over the --check limit (${over.proxyCpuUsPerReq?.toFixed(0)} µs CPU/req): measuring it again`);
      const run = await measure(scenario, targets.find((t) => t.name === "gateway")!, mock, options);
      again.push(run);
      log(`  ${scenario.id.padEnd(12)} gateway ${run.proxyCpuUsPerReq?.toFixed(0)} µs CPU/req`);
    }
  }

  const finalMemoryKb = gateway ? memoryKb(gateway.pid) : null;
  const gatewayOutput = gateway?.output() ?? "";
  const nginxErrors = nginx?.errorLog() ?? "";
  log("stopping…");
  await stopAll(options.profileDir ? 20_000 : 3_000);

  const comparisons = compare(runs);
  const verdicts = evaluateTargets(runs, comparisons, startupMemoryKb?.rssKb ?? null);
  const idle = { startupKb: startupMemoryKb?.rssKb ?? null, afterSanityKb: idleMemoryKb?.rssKb ?? null };
  process.stdout.write(`\n${formatTable(runs, comparisons)}\n\n${formatSummary(runs, idle)}\n`);
  if (finalMemoryKb) {
    const peak = Math.max(earlierPeakKb, finalMemoryKb.peakRssKb);
    process.stdout.write(
      `gateway peak RSS (VmHWM) over the whole bench: ${(peak / 1024).toFixed(1)} MB` +
        (earlierPeakKb ? ` (${(earlierPeakKb / 1024).toFixed(1)} MB before the held streams, which ran on a fresh gateway)` : "") +
        "\n",
    );
  }
  process.stdout.write(`\n${formatTargets(verdicts)}\n`);
  for (const note of notes) process.stdout.write(`\nNOTE: ${note}\n`);

  const cpus = os.cpus();
  const meta = {
    date: new Date().toISOString(),
    node: process.version,
    nginx: nginx?.version ?? null,
    platform: `${os.type()} ${os.release()} ${os.arch()}`,
    cpu: cpus[0]?.model ?? "unknown",
    cpuCount: cpus.length,
    git: gitRevision(),
    durationSec: options.durationSec,
    warmupSec: options.warmupSec,
    gatewayWarmupSec: options.gatewayWarmupSec,
    heldStreamSec: heldStreamSec(options),
    argv: process.argv.slice(2),
    wallClockSec: (Date.now() - started) / 1000,
  };
  process.stdout.write(
    `\n${meta.cpuCount} × ${meta.cpu}, node ${meta.node}${nginx ? `, nginx ${nginx.version}` : ""}, ${options.durationSec} s per run after ${options.warmupSec} s warm-up, git ${meta.git ?? "?"}; bench took ${meta.wallClockSec.toFixed(0)} s\n`,
  );

  let checkOk = true;
  let checkLines: string[] = [];
  if (baseline) {
    ({ ok: checkOk, lines: checkLines } = checkAgainstBaseline(runs, baseline, again));
    process.stdout.write(`\n--check against ${path.relative(REPO_ROOT, BASELINE_FILE)} (fails only on > ${baseline.factor}× the baseline CPU, scaled to this machine's speed, or a failed request):\n${checkLines.join("\n")}\n`);
    process.stdout.write(checkOk ? "check passed\n" : "CHECK FAILED\n");
  }

  mkdirSync(path.dirname(options.jsonPath), { recursive: true });
  writeFileSync(
    options.jsonPath,
    `${JSON.stringify({ meta, notes, sanity, gateway: { startupMemoryKb, idleMemoryKb, finalMemoryKb }, runs, comparisons, targets: verdicts, check: baseline ? { ok: checkOk, lines: checkLines, measuredAgain: again } : null }, null, 2)}\n`,
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
      ...(nginxErrors.trim() ? ["end of nginx's error log:", ...nginxErrors.split("\n").slice(-10)] : []),
    ]);
    return 1;
  }
  if (options.updateBaseline) writeBaseline(runs, meta);
  return checkOk ? 0 : 1;
}

function writeBaseline(runs: readonly RunRecord[], meta: { date: string; node: string; cpu: string; cpuCount: number; git: string | null; argv: string[] }): void {
  const gatewayCpuUsPerReq: Record<string, number> = {};
  const directMockCpuUsPerReq: Record<string, number> = {};
  for (const run of runs) {
    if (run.target === "gateway" && run.proxyCpuUsPerReq !== null && Number.isFinite(run.proxyCpuUsPerReq)) gatewayCpuUsPerReq[run.scenario] = Math.round(run.proxyCpuUsPerReq);
    if (run.target === "direct" && Number.isFinite(run.upstreamCpuUsPerReq)) directMockCpuUsPerReq[run.scenario] = Math.round(run.upstreamCpuUsPerReq);
  }
  let previous: Record<string, unknown> = {};
  try {
    previous = JSON.parse(readFileSync(BASELINE_FILE, "utf8")) as Record<string, unknown>;
  } catch {
    // a first baseline
  }
  const baseline = {
    _comment:
      "Gateway CPU µs per request by scenario, from a full `npm run bench` (see source). `npm run bench -- --check` (CI) fails above factor × these. Refresh with `npm run bench -- --update-baseline` after a deliberate change of the hot path.",
    source: { date: meta.date, git: meta.git, machine: `${meta.cpuCount} × ${meta.cpu}`, node: meta.node, command: `npm run bench -- ${meta.argv.join(" ")}`.trim() },
    factor: typeof previous.factor === "number" ? previous.factor : 3,
    gatewayCpuUsPerReq: { ...((previous.gatewayCpuUsPerReq as Record<string, number> | undefined) ?? {}), ...gatewayCpuUsPerReq },
    directMockCpuUsPerReq: { ...((previous.directMockCpuUsPerReq as Record<string, number> | undefined) ?? {}), ...directMockCpuUsPerReq },
  };
  writeFileSync(BASELINE_FILE, `${JSON.stringify(baseline, null, 2)}\n`);
  process.stdout.write(`baseline written: ${path.relative(process.cwd(), BASELINE_FILE)}\n`);
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
  // A hard bound on the whole bench: start-up, every run, and shutdown.
  const runSec = runsOf(opts).reduce(
    (total, { scenario }) => total + (scenario.kind === "held-streams" ? heldStreamSec(opts) + 5 : opts.durationSec + opts.warmupSec + 2),
    0,
  );
  const lifecycle = guardLifecycle({
    name: "the bench",
    boundSec: 60 + (runSec + opts.gatewayWarmupSec) * 1.5,
    stopLoad: () => {
      stopAllLoad();
      stopHeldStreams();
    },
    log,
  });

  main(opts).then(
    (code) => finish(code),
    async (error: unknown) => {
      // Once aborting, the runs in progress fail as their processes go: abort() owns the exit.
      if (lifecycle.stopping()) return;
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
