import { Worker } from "node:worker_threads";
import type { LoadOptions, LoadResult } from "./load.js";
import { ConfigError } from "./names.js";

/**
 * loadConfig in a short-lived worker thread. The validated configuration is
 * plain data (maps, sets, strings, numbers) and crosses back by structured
 * clone; the loader's own dependencies (zod, yaml, dotenv: about 10 MB of
 * memory) stay in the worker and are freed with it, so a running gateway does
 * not carry them.
 */
export function loadConfigIsolated(options: LoadOptions): Promise<LoadResult> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(new URL("./load-worker.js", import.meta.url), {
      workerData: { ...options, cwd: options.cwd ?? process.cwd(), env: options.env ?? { ...process.env } },
    });
    let settled = false;
    worker.once("message", (message: { ok: true; result: LoadResult } | { ok: false; problems: string[] }) => {
      settled = true;
      void worker.terminate();
      if (message.ok) resolve(message.result);
      else reject(new ConfigError(message.problems));
    });
    worker.once("error", (error) => {
      if (!settled) reject(error);
    });
    worker.once("exit", (code) => {
      if (!settled) reject(new Error(`the configuration loader stopped (exit code ${code})`));
    });
  });
}
