import { parentPort, workerData } from "node:worker_threads";
import { loadConfig, type LoadOptions } from "./load.js";
import { ConfigError } from "./names.js";

// Runs the loader in a worker thread: see isolated.ts.
try {
  parentPort?.postMessage({ ok: true, result: loadConfig(workerData as LoadOptions) });
} catch (error) {
  parentPort?.postMessage(
    error instanceof ConfigError ? { ok: false, problems: error.problems } : { ok: false, problems: [`cannot load the configuration: ${(error as Error).message}`] },
  );
}
