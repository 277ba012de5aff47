/**
 * The load generator: autocannon's programmatic API, with latency recorded here
 * at full resolution. (autocannon's own latency histogram stores whole
 * milliseconds, which reads 0 ms for every loopback request; its `response`
 * event carries the exact hrtime-based duration, from the request's first byte
 * written to the response's last byte read, so streams are timed to their end.)
 */
import type { EventEmitter } from "node:events";
import { createRequire } from "node:module";

export interface LoadRequest {
  readonly method: "GET" | "POST";
  readonly path: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly body?: string | Buffer;
}

export interface LoadOptions {
  readonly origin: string;
  readonly request: LoadRequest;
  readonly connections: number;
  readonly durationSec: number;
}

export interface LoadResult {
  /** Responses received (any status). */
  readonly requests: number;
  readonly elapsedSec: number;
  readonly rps: number;
  readonly latencyMs: { readonly p50: number; readonly p90: number; readonly p99: number; readonly max: number; readonly mean: number };
  readonly bytesRead: number;
  /** Connection errors (timeouts included) and non-2xx responses: both must be 0. */
  readonly errors: number;
  readonly timeouts: number;
  readonly non2xx: number;
  readonly statusCodes: Record<string, number>;
}

// autocannon ships no types; this is the part of its API the bench uses.
interface AutocannonResult {
  errors: number;
  timeouts: number;
  non2xx: number;
  statusCodeStats: Record<string, { count: number }>;
}
interface AutocannonInstance extends EventEmitter {
  stop(): void;
}
type Autocannon = (
  options: {
    url: string;
    method: string;
    headers: Record<string, string>;
    body?: string | Buffer;
    connections: number;
    duration: number;
    sampleInt: number;
    pipelining: number;
    timeout: number;
  },
  done: (error: Error | null, result: AutocannonResult) => void,
) => AutocannonInstance;

const autocannon = createRequire(import.meta.url)("autocannon") as Autocannon;

/** Runs in progress, so that Ctrl-C can stop them. */
const running = new Set<AutocannonInstance>();

export function stopAllLoad(): void {
  for (const instance of running) instance.stop();
}

class Samples {
  private values = new Float64Array(1 << 14);
  length = 0;
  push(value: number): void {
    if (this.length === this.values.length) {
      const grown = new Float64Array(this.values.length * 2);
      grown.set(this.values);
      this.values = grown;
    }
    this.values[this.length++] = value;
  }
  sorted(): Float64Array {
    return this.values.slice(0, this.length).sort();
  }
}

/** Nearest-rank percentile of sorted samples. */
function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank]!;
}

export function runLoad(options: LoadOptions): Promise<LoadResult> {
  const { origin, request, connections, durationSec } = options;
  const samples = new Samples();
  let bytesRead = 0;
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const instance = autocannon(
      {
        url: origin + request.path,
        method: request.method,
        headers: { ...request.headers },
        ...(request.body !== undefined ? { body: request.body } : {}),
        connections,
        duration: durationSec,
        // autocannon looks at its stop flag once per sample interval (1 s by default), which made a
        // 0.3 s warm-up last 1 s.
        sampleInt: 100,
        pipelining: 1,
        timeout: 10,
      },
      (error, result) => {
        running.delete(instance);
        clearTimeout(watchdog);
        if (error) {
          reject(error);
          return;
        }
        const elapsedSec = Number(process.hrtime.bigint() - started) / 1e9;
        const sorted = samples.sorted();
        let sum = 0;
        for (const value of sorted) sum += value;
        const statusCodes: Record<string, number> = {};
        for (const [code, { count }] of Object.entries(result.statusCodeStats ?? {})) statusCodes[code] = count;
        resolve({
          requests: samples.length,
          elapsedSec,
          rps: samples.length / elapsedSec,
          latencyMs: {
            p50: percentile(sorted, 50),
            p90: percentile(sorted, 90),
            p99: percentile(sorted, 99),
            max: sorted.length ? sorted[sorted.length - 1]! : NaN,
            mean: sorted.length ? sum / sorted.length : NaN,
          },
          bytesRead,
          errors: result.errors,
          timeouts: result.timeouts,
          non2xx: result.non2xx,
          statusCodes,
        });
      },
    );
    running.add(instance);
    instance.on("response", (_client: unknown, _status: number, bytes: number, responseTimeMs: number) => {
      samples.push(responseTimeMs);
      bytesRead += bytes;
    });
    // autocannon ends on its own after `duration`; this only guards against a hang.
    const watchdog = setTimeout(() => {
      instance.stop();
      reject(new Error(`load run against ${origin} did not finish within ${durationSec + 20} s`));
    }, (durationSec + 20) * 1000);
  });
}
