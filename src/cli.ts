import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, readFileSync, watch, writeFileSync, type FSWatcher } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { loadConfigIsolated } from "./config/isolated.js";
import type { LoadOptions } from "./config/load.js";
import { ConfigError } from "./config/names.js";
import { ENV_TEMPLATE, ROUTES_TEMPLATE } from "./config/template.js";
import { createDemoUpstream } from "./demo/mock-openai.js";
import { createGateway } from "./gateway.js";

const PACKAGE_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const DEMO_ROUTES = path.join(PACKAGE_ROOT, "examples", "routes.yml");

const HELP = `openclaw-autoproxy - one local OpenAI-compatible endpoint in front of many LLM providers

Usage:
  openclaw-autoproxy [gateway] start [options]   start the gateway (the default command)
  openclaw-autoproxy [gateway] dev [options]     start it, and restart on config or source changes
  openclaw-autoproxy [gateway] validate [opts]   check routes.yml and .env, print every problem
  openclaw-autoproxy [gateway] init              write a commented routes.yml and .env.example here
  openclaw-autoproxy [gateway] demo              run on examples/routes.yml with a built-in mock upstream
  openclaw-autoproxy help | --help | -h
  openclaw-autoproxy --version | -v

Options:
  --config PATH   routes file (default: ./routes.yml, or ROUTES_FILE)
  --port N        listen port (default: PORT, else 8787)
  --host H        listen address (default: HOST, else 127.0.0.1)

Files: routes.yml and .env are read from the current directory.
`;

const GATEWAY_HELP = `openclaw-autoproxy gateway - gateway commands

Usage:
  openclaw-autoproxy gateway start      start the gateway (default)
  openclaw-autoproxy gateway dev        start, restarting on changes
  openclaw-autoproxy gateway validate   check the configuration
  openclaw-autoproxy gateway init       write routes.yml and .env.example
  openclaw-autoproxy gateway demo       run the keyless demo
  openclaw-autoproxy gateway help       show this help

Options: --config PATH, --port N, --host H (see openclaw-autoproxy help)
`;

const COMMANDS = new Set(["start", "dev", "validate", "init", "demo"]);

type Action =
  | { kind: "help"; text: string }
  | { kind: "version" }
  | { kind: "error"; message: string }
  | { kind: "command"; command: string; args: string[] };

const isHelp = (value: string) => value === "help" || value === "--help" || value === "-h";
const isVersion = (value: string) => value === "version" || value === "--version" || value === "-v";

export function resolveAction(argv: readonly string[]): Action {
  const [first, ...rest] = argv;
  if (first === undefined || first.startsWith("--")) {
    if (first !== undefined && isHelp(first)) return { kind: "help", text: HELP };
    if (first !== undefined && isVersion(first)) return { kind: "version" };
    return { kind: "command", command: "start", args: [...argv] };
  }
  if (isHelp(first)) return { kind: "help", text: HELP };
  if (isVersion(first)) return { kind: "version" };
  if (first === "gateway") {
    const [sub, ...subRest] = rest;
    if (sub === undefined || sub.startsWith("--")) return { kind: "command", command: "start", args: rest };
    if (isHelp(sub)) return { kind: "help", text: GATEWAY_HELP };
    if (COMMANDS.has(sub)) return { kind: "command", command: sub, args: subRest };
    return { kind: "error", message: `Unknown gateway subcommand: ${sub}` };
  }
  if (COMMANDS.has(first)) return { kind: "command", command: first, args: rest };
  return { kind: "error", message: `Unknown command: ${first}` };
}

interface Flags {
  config?: string;
  port?: number;
  host?: string;
}

function parseFlags(args: string[]): Flags {
  const { values } = parseArgs({
    args,
    options: { config: { type: "string" }, port: { type: "string" }, host: { type: "string" } },
    strict: true,
    allowPositionals: false,
  });
  const flags: Flags = {};
  if (values.config) flags.config = values.config;
  if (values.host) flags.host = values.host;
  if (values.port !== undefined) {
    const port = Number(values.port);
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError(`--port must be a TCP port number, got "${values.port}"`);
    flags.port = port;
  }
  return flags;
}

class UsageError extends Error {}

function loadOptions(flags: Flags, routesFile?: string): LoadOptions {
  const overrides: NonNullable<LoadOptions["overrides"]> = {};
  if (flags.host) overrides.host = flags.host;
  if (flags.port !== undefined) overrides.port = flags.port;
  return { routesFile: routesFile ?? flags.config, overrides };
}

function printProblems(error: unknown): void {
  if (error instanceof ConfigError) {
    process.stderr.write(`Configuration problems (${error.problems.length}):\n${error.problems.map((p) => `  - ${p}`).join("\n")}\n`);
  } else {
    process.stderr.write(`${(error as Error).message}\n`);
  }
}

function printWarnings(warnings: string[]): void {
  for (const warning of warnings) process.stderr.write(`warning: ${warning}\n`);
}

/** Starts the gateway; resolves with its URL, or an exit code when it could not start. */
async function start(flags: Flags, routesFile?: string): Promise<number | string> {
  let loaded;
  try {
    loaded = await loadConfigIsolated(loadOptions(flags, routesFile));
  } catch (error) {
    printProblems(error);
    return 1;
  }
  printWarnings(loaded.warnings);
  const gateway = createGateway(loaded.config);
  let address;
  try {
    address = await gateway.listen();
  } catch (error) {
    process.stderr.write(`Cannot listen on ${loaded.config.host}:${loaded.config.port}: ${(error as Error).message}\n`);
    await gateway.close();
    return 1;
  }
  // Last line of defence: one request's bug must not take every other request down with the process.
  process.on("uncaughtException", (error) => {
    gateway.logger.error({ event: "uncaught_exception", err: { message: error.message, stack: error.stack } }, "uncaught exception (the gateway keeps running)");
  });
  process.on("unhandledRejection", (reason) => {
    gateway.logger.error({ event: "unhandled_rejection", err: String(reason) }, "unhandled rejection (the gateway keeps running)");
  });
  gateway.logger.info(
    { event: "listening", url: address.url, routes_file: loaded.config.source.routesFile, models: loaded.config.autoModels.length },
    `openclaw-autoproxy listening on ${address.url}`,
  );
  // Whoever waits for the gateway to be up sees it at once, not at the next periodic flush.
  gateway.logger.flush();
  onShutdown(async () => {
    await gateway.close();
  });
  return address.url;
}

function onShutdown(close: () => Promise<void>): void {
  let closing = false;
  const stop = () => {
    if (closing) process.exit(1);
    closing = true;
    // In-flight requests get a bounded grace period.
    const force = setTimeout(() => process.exit(0), 5_000);
    force.unref();
    close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
}

async function validate(flags: Flags): Promise<number> {
  try {
    const { config, warnings } = await loadConfigIsolated(loadOptions(flags));
    printWarnings(warnings);
    const models = [...config.modelRoutes.keys()];
    process.stdout.write(
      `OK: ${config.source.routesFile}: ${config.routes.length} enabled route(s), ${models.length} model(s): ${models.join(", ") || "(none)"}\n`,
    );
    return 0;
  } catch (error) {
    printProblems(error);
    return 1;
  }
}

function init(): number {
  for (const [name, text] of [
    ["routes.yml", ROUTES_TEMPLATE],
    [".env.example", ENV_TEMPLATE],
  ] as const) {
    const target = path.resolve(name);
    if (existsSync(target)) {
      process.stdout.write(`kept ${target} (already exists)\n`);
      continue;
    }
    writeFileSync(target, text, { flag: "wx" });
    process.stdout.write(`wrote ${target}\n`);
  }
  process.stdout.write("Next: put your keys in .env (see .env.example), then run `openclaw-autoproxy validate` and `openclaw-autoproxy start`.\n");
  return 0;
}

async function demo(flags: Flags): Promise<number | undefined> {
  const upstream = createDemoUpstream();
  try {
    await new Promise<void>((resolve, reject) => {
      upstream.once("error", reject);
      upstream.listen(18787, "127.0.0.1", () => resolve());
    });
  } catch (error) {
    process.stderr.write(`The demo upstream cannot listen on 127.0.0.1:18787: ${(error as Error).message}\n`);
    return 1;
  }
  const started = await start(flags, flags.config ?? DEMO_ROUTES);
  if (typeof started === "number") {
    upstream.close();
    return started;
  }
  process.stderr.write(`
Demo running: "demo-busy" always answers 429, "demo-ok" answers. Try:

  curl -si ${started}/v1/chat/completions -H 'content-type: application/json' \\
    -d '{"model": "auto", "messages": [{"role": "user", "content": "Hi"}]}'

The first call starts on demo-busy, gets 429 and switches (see the x-gateway-* headers
and "gateway_notice"). Add "stream": true to see the notice as an SSE comment.
`);
  return undefined;
}

/**
 * `dev`: runs `start` in a child process and restarts it when routes.yml, .env
 * or the code changes. In a source checkout a change under src/ is compiled
 * first (a failed build keeps the running gateway); in an installed package
 * dist/ is watched.
 */
function dev(args: string[], flags: Flags): undefined {
  const cliPath = fileURLToPath(import.meta.url);
  const routesFile = path.resolve(flags.config ?? process.env.ROUTES_FILE ?? "routes.yml");
  const configFiles = [routesFile, path.resolve(".env")];
  const srcDir = path.join(PACKAGE_ROOT, "src");
  const tsc = path.join(PACKAGE_ROOT, "node_modules", "typescript", "bin", "tsc");
  const fromSource = existsSync(srcDir) && existsSync(tsc);
  let child: ChildProcess | undefined;
  let timer: NodeJS.Timeout | undefined;
  let pendingBuild = false;
  let stopping = false;

  const launch = () => {
    child = spawn(process.execPath, [cliPath, "start", ...args], { stdio: "inherit" });
    child.on("exit", (code, signal) => {
      if (stopping) process.exit(code ?? (signal ? 1 : 0));
    });
  };
  const relaunch = (why: string) => {
    process.stderr.write(`[dev] ${why} changed, restarting\n`);
    const old = child;
    if (old && old.exitCode === null && old.signalCode === null) {
      old.once("exit", launch);
      old.kill("SIGTERM");
    } else launch();
  };
  const schedule = (why: string, build: boolean) => {
    pendingBuild ||= build;
    clearTimeout(timer);
    timer = setTimeout(() => {
      if (!pendingBuild) return relaunch(why);
      pendingBuild = false;
      const compiler = spawn(process.execPath, [tsc, "-p", path.join(PACKAGE_ROOT, "tsconfig.json")], { stdio: "inherit" });
      compiler.on("exit", (code) => {
        if (code === 0) relaunch(why);
        else process.stderr.write("[dev] build failed; the running gateway is kept\n");
      });
    }, 200);
  };

  const watchers: FSWatcher[] = [];
  // Watch directories, not files: editors replace files on save, which ends a file watch.
  for (const dir of new Set(configFiles.map((file) => path.dirname(file)))) {
    watchers.push(
      watch(dir, (_event, name) => {
        if (name && configFiles.includes(path.join(dir, name.toString()))) schedule(name.toString(), false);
      }),
    );
  }
  const codeDir = fromSource ? srcDir : path.dirname(cliPath);
  watchers.push(watch(codeDir, { recursive: true }, (_event, name) => schedule(`${path.basename(codeDir)}/${name?.toString() ?? ""}`, fromSource)));

  const stop = () => {
    stopping = true;
    clearTimeout(timer);
    for (const watcher of watchers) watcher.close();
    if (child && child.exitCode === null) child.kill("SIGTERM");
    else process.exit(0);
  };
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
  launch();
  return undefined;
}

function version(): string {
  const pkg = JSON.parse(readFileSync(path.join(PACKAGE_ROOT, "package.json"), "utf8")) as { version?: string };
  return pkg.version ?? "unknown";
}

export async function main(argv: readonly string[]): Promise<number | undefined> {
  const action = resolveAction(argv);
  switch (action.kind) {
    case "help":
      process.stdout.write(action.text);
      return 0;
    case "version":
      process.stdout.write(`${version()}\n`);
      return 0;
    case "error":
      process.stderr.write(`${action.message}\n\n${HELP}`);
      return 1;
    case "command":
      break;
  }
  let flags: Flags;
  try {
    flags = parseFlags(action.args);
  } catch (error) {
    process.stderr.write(`${(error as Error).message}\n\n${HELP}`);
    return 1;
  }
  switch (action.command) {
    case "validate":
      return validate(flags);
    case "init":
      return init();
    case "demo":
      return demo(flags);
    case "dev":
      return dev(action.args, flags);
    default: {
      const started = await start(flags);
      return typeof started === "number" ? started : undefined;
    }
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code !== undefined) process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`openclaw-autoproxy: ${(error as Error).stack ?? String(error)}\n`);
    process.exitCode = 1;
  },
);
