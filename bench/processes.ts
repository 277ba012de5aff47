/**
 * Child processes of the bench (mock upstream, gateway; nginx is in
 * bench/nginx.ts), their cleanup, and what /proc says about them (CPU time,
 * peak RSS).
 */
import { execFileSync, fork, spawn, type ChildProcess } from "node:child_process";
import { createWriteStream, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const GATEWAY_BIN = path.join(REPO_ROOT, "bin", "openclaw-autoproxy.js");
const MOCK_SCRIPT = fileURLToPath(new URL("./mock-upstream.js", import.meta.url));

// ---------------------------------------------------------------- cleanup

const children = new Set<ChildProcess>();
const tempDirs = new Set<string>();
/** Grandchildren (nginx's worker): SIGKILLed by killAllNow should their parent be SIGKILLed first. */
const grandchildren = new Map<number, string>();

/** Registers a child process, stopped by stopAll and killAllNow. */
export function track(child: ChildProcess): ChildProcess {
  children.add(child);
  child.once("exit", () => children.delete(child));
  return child;
}

/** Registers a process that is not our child (its parent is): killAllNow SIGKILLs it if it still runs `marker`. */
export function trackGrandchild(pid: number, marker: string): void {
  grandchildren.set(pid, marker);
}

export const alive = (child: ChildProcess) => child.exitCode === null && child.signalCode === null;

/** Stops one child: SIGTERM, then SIGKILL after `graceMs`. */
export async function stopChild(child: ChildProcess, graceMs = 3_000): Promise<void> {
  if (!alive(child)) return;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.kill("SIGTERM");
  const timer = setTimeout(() => {
    if (alive(child)) child.kill("SIGKILL");
  }, graceMs);
  await exited;
  clearTimeout(timer);
}

/** Stops every child still running and removes temp dirs. Safe to call more than once. */
export async function stopAll(graceMs = 3_000): Promise<void> {
  await Promise.all([...children].map((child) => stopChild(child, graceMs)));
  removeTempDirs();
}

/** Last resort, synchronous (for process 'exit'): SIGKILL whatever is left. */
export function killAllNow(): void {
  for (const child of children) {
    if (alive(child)) child.kill("SIGKILL");
  }
  for (const [pid, marker] of grandchildren) {
    try {
      // Only if the pid still belongs to that process (not reused since).
      if (readFileSync(`/proc/${pid}/cmdline`, "latin1").includes(marker)) process.kill(pid, "SIGKILL");
    } catch {
      // gone
    }
  }
  grandchildren.clear();
  removeTempDirs();
}

function removeTempDirs(): void {
  for (const dir of tempDirs) {
    rmSync(dir, { recursive: true, force: true });
    tempDirs.delete(dir);
  }
}

/** Removes one temp dir now (a gateway stopped before the end: bench:ab's earlier rounds). */
export function removeTempDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
  tempDirs.delete(dir);
}

export function makeTempDir(): string {
  const dir = mkdtempSync(path.join(tmpdir(), "openclaw-bench-"));
  tempDirs.add(dir);
  return dir;
}

/** Keeps the last lines a child printed, for error messages. */
function tail(child: ChildProcess, max = 40): () => string {
  const lines: string[] = [];
  const add = (chunk: Buffer) => {
    for (const line of chunk.toString("utf8").split("\n")) {
      if (line.trim() === "") continue;
      lines.push(line);
      if (lines.length > max) lines.shift();
    }
  };
  child.stdout?.on("data", add);
  child.stderr?.on("data", add);
  return () => lines.join("\n");
}

// ---------------------------------------------------------------- mock upstream

export interface MockStats {
  /** Requests served since the mock started (429s included). */
  readonly requests: number;
  /** Of those, the 429s of the busy port and /busy/. */
  readonly busy: number;
  /** TCP connections accepted since the mock started (server 'connection' events, both ports). */
  readonly connections: number;
  /** TCP connections open now. */
  readonly open: number;
}

export interface MockProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly origin: string;
  /** The mock's second port: every request there answers 429. */
  readonly busyOrigin: string;
  /** Asks the mock to SIGTERM these pids and remove these dirs should the bench die without cleaning up. */
  guard(pids: number[], dirs: string[]): void;
  stats(): Promise<MockStats>;
}

export function startMock(options: { slowIntervalMs: number }, timeoutMs = 10_000): Promise<MockProcess> {
  const args = ["--serve", "--slow-interval-ms", String(options.slowIntervalMs)];
  const child = track(fork(MOCK_SCRIPT, args, { stdio: ["ignore", "pipe", "pipe", "ipc"], execArgv: [] }));
  const output = tail(child);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => fail(new Error(`the mock upstream did not start within ${timeoutMs} ms\n${output()}`)), timeoutMs);
    const fail = (error: Error) => {
      clearTimeout(timer);
      reject(error);
    };
    child.once("error", fail);
    child.once("exit", (code, signal) => fail(new Error(`the mock upstream exited (${signal ?? code}) before it was ready\n${output()}`)));
    child.on("message", (message: { type?: string; port?: number; busyPort?: number }) => {
      if (message.type !== "ready" || typeof message.port !== "number") return;
      clearTimeout(timer);
      resolve({
        child,
        pid: child.pid!,
        origin: `http://127.0.0.1:${message.port}`,
        busyOrigin: `http://127.0.0.1:${message.busyPort}`,
        guard: (pids, dirs) => child.send({ type: "guard", pids, dirs }),
        stats: () =>
          new Promise((resolveStats, rejectStats) => {
            const onMessage = (reply: { type?: string } & Partial<MockStats>) => {
              if (reply.type !== "stats") return;
              child.off("message", onMessage);
              clearTimeout(statsTimer);
              resolveStats({ requests: reply.requests ?? 0, busy: reply.busy ?? 0, connections: reply.connections ?? 0, open: reply.open ?? 0 });
            };
            const statsTimer = setTimeout(() => {
              child.off("message", onMessage);
              rejectStats(new Error("the mock upstream did not answer a stats query"));
            }, 5_000);
            child.on("message", onMessage);
            child.send({ type: "stats" });
          }),
      });
    });
  });
}

// ---------------------------------------------------------------- gateway

export interface GatewayProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly origin: string;
  readonly routesFile: string;
  /** Its working directory (temporary, removed at the end). */
  readonly dir: string;
  /** The last lines the gateway printed. */
  output(): string;
}

export interface GatewayOptions {
  /** The routes.yml text. */
  routesYaml: string;
  /** Extra node flags for the gateway process (e.g. --cpu-prof). */
  nodeArgs?: string[];
  /** The CLI to start (default: this checkout's; bench:ab starts another checkout's too). */
  bin?: string;
  /** A file that also gets the gateway's standard output (appended: the held streams' fresh gateway adds to it). */
  logFile?: string;
  /** Extra environment variables (LOG_LEVEL defaults to warn). */
  env?: Record<string, string>;
  timeoutMs?: number;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"];

/** A `--gateway-log-level` option's value: warn unless given (no line per request, only failovers'). */
export function logLevel(value: string | undefined): string {
  if (value === undefined) return "warn";
  if (!LOG_LEVELS.includes(value)) throw new Error(`--gateway-log-level must be one of ${LOG_LEVELS.join(", ")}, got "${value}"`);
  return value;
}

/**
 * Starts the gateway as production runs it: `node bin/openclaw-autoproxy.js
 * start --config … --port … --host 127.0.0.1`, in a temp working directory (so
 * no stray .env is read) with a minimal environment. Resolves once /health
 * answers 200.
 */
export async function startGateway(options: GatewayOptions): Promise<GatewayProcess> {
  const dir = makeTempDir();
  const routesFile = path.join(dir, "routes.yml");
  writeFileSync(routesFile, options.routesYaml);
  const port = await freePort();
  const env: Record<string, string> = { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: dir, LOG_LEVEL: "warn", ...options.env };
  const args = [...(options.nodeArgs ?? []), options.bin ?? GATEWAY_BIN, "start", "--config", routesFile, "--port", String(port), "--host", "127.0.0.1"];
  const child = track(spawn(process.execPath, args, { cwd: dir, env, stdio: ["ignore", "pipe", "pipe"] }));
  const output = tail(child);
  if (options.logFile) child.stdout?.pipe(createWriteStream(options.logFile, { flags: "a" }));
  const origin = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + (options.timeoutMs ?? 15_000);
  let spawnError: Error | undefined;
  child.once("error", (error) => (spawnError = error));
  for (;;) {
    if (spawnError) throw new Error(`cannot start the gateway: ${spawnError.message}`);
    if (!alive(child)) throw new Error(`the gateway exited (${child.signalCode ?? child.exitCode}) during start-up:\n${output()}`);
    try {
      const response = await fetch(`${origin}/health`, { signal: AbortSignal.timeout(1_000) });
      await response.arrayBuffer();
      if (response.status === 200) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`the gateway did not answer ${origin}/health in time:\n${output()}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return { child, pid: child.pid!, origin, routesFile, dir, output };
}

const LEAN_PROXY_SCRIPT = fileURLToPath(new URL("./lean-proxy.js", import.meta.url));

export interface LeanProxyProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly origin: string;
  output(): string;
}

/** Starts the lean Node reverse proxy (bench/lean-proxy.ts), the `node` target; resolves once it listens. */
export async function startLeanProxy(mock: { origin: string; busyOrigin: string }, timeoutMs = 10_000): Promise<LeanProxyProcess> {
  const child = track(spawn(process.execPath, [LEAN_PROXY_SCRIPT, "--upstream", mock.origin, "--busy", mock.busyOrigin, "--port", "0"], { stdio: ["ignore", "pipe", "pipe"] }));
  const output = tail(child);
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the lean Node proxy did not start within ${timeoutMs} ms\n${output()}`)), timeoutMs);
    const onData = (chunk: Buffer) => {
      const match = /listening (\d+)/.exec(chunk.toString());
      if (!match) return;
      clearTimeout(timer);
      child.stdout?.off("data", onData);
      resolve(Number(match[1]));
    };
    child.stdout?.on("data", onData);
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`the lean Node proxy exited (${signal ?? code}) during start-up:\n${output()}`));
    });
  });
  return { child, pid: child.pid!, origin: `http://127.0.0.1:${port}`, output };
}

// ---------------------------------------------------------------- /proc

let clockTicks: number | undefined;

/** Clock ticks per second (the unit of utime/stime in /proc/<pid>/stat). */
function ticksPerSecond(): number {
  if (clockTicks === undefined) {
    try {
      clockTicks = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
    } catch {
      clockTicks = 100;
    }
  }
  return clockTicks;
}

/** User + system CPU time of a process (all its threads), in microseconds. */
export function cpuTimeUs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // Fields after the command name, which may itself contain spaces or parentheses.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // Field 3 (state) is fields[0]; utime is field 14, stime field 15.
  const ticks = Number(fields[11]) + Number(fields[12]);
  return (ticks * 1e6) / ticksPerSecond();
}

/** VmHWM (peak resident set) and VmRSS of a process, in kB. */
export function memoryKb(pid: number): { peakRssKb: number; rssKb: number } {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? NaN);
  return { peakRssKb: field("VmHWM"), rssKb: field("VmRSS") };
}

export function procAvailable(): boolean {
  try {
    readFileSync("/proc/self/stat");
    return true;
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------- lifecycle of a bench entry point

/**
 * Makes sure a bench entry point leaves nothing behind: its children are
 * killed when it exits, Ctrl-C, SIGTERM and SIGHUP stop the load (`stopLoad`)
 * and the child processes, and the whole run is bounded by `boundSec`. A
 * second signal while stopping kills at once. Returns whether it is
 * stopping (then the run's own errors are the processes going, not news).
 */
export function guardLifecycle(options: { name: string; boundSec: number; stopLoad: () => void; log: (line: string) => void }): { stopping(): boolean } {
  let stopping = false;
  process.on("exit", killAllNow);
  const abort = (why: string, code: number) => {
    if (stopping) {
      killAllNow();
      process.exit(code);
    }
    stopping = true;
    options.log(`\n${why}: stopping the load and the child processes…`);
    options.stopLoad();
    stopAll(1_000).finally(() => process.exit(code));
  };
  process.on("SIGINT", () => abort("interrupted", 130));
  process.on("SIGTERM", () => abort("terminated", 143));
  process.on("SIGHUP", () => abort("hung up", 129));
  // setTimeout takes at most 2^31 - 1 ms (a longer delay fires at once).
  setTimeout(() => abort(`${options.name} did not finish within ${options.boundSec.toFixed(0)} s`, 1), Math.min(options.boundSec * 1000, 2 ** 31 - 1)).unref();
  return { stopping: () => stopping };
}
