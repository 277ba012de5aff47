/**
 * The held-streams load: `streams` streaming requests opened together (in
 * batches of 100, so that no listen backlog overflows) and held until the
 * mock's slow streams end, while the proxy's resident memory is sampled.
 * Every stream must deliver its 20 chunks then [DONE]; connections are not
 * kept alive, so every one is closed at the end.
 */
import http from "node:http";
import type { LoadRequest, LoadResult } from "./load.js";
import { STREAM_CHUNKS } from "./mock-upstream.js";
import { memoryKb } from "./processes.js";

export interface HeldStreamsOptions {
  readonly origin: string;
  readonly request: LoadRequest;
  readonly streams: number;
  /** The process whose RSS is sampled (the proxy), if any. */
  readonly pid: number | undefined;
  /** Bound on the whole run; streams still open then are cut and counted as timeouts. */
  readonly timeoutMs: number;
}

export interface HeldStreamsResult {
  readonly load: LoadResult;
  /** When every stream had its response headers and none had ended yet, ms after the first request; null: never. */
  readonly allOpenAfterMs: number | null;
  /** The most streams open at once (headers received, not ended), as seen by the sampler. */
  readonly maxOpen: number;
  /** The highest VmRSS sampled while `maxOpen` streams were open, kB; null without a pid. */
  readonly rssAtMaxOpenKb: number | null;
  /** The highest VmRSS sampled during the run, kB. */
  readonly rssMaxKb: number | null;
  /** RSS samples taken while `maxOpen` streams were open. */
  readonly samplesAtMaxOpen: number;
  /** Client connections closed at the end (should be all of them). */
  readonly closedConnections: number;
}

const BATCH = 100;
const SAMPLE_MS = 50;

/** Whether an SSE body is 20 chat chunks then [DONE] (comments and other lines aside). */
function completeStream(text: string): boolean {
  const data = text
    .split("\n")
    .filter((line) => line.startsWith("data:"))
    .map((line) => line.slice(5).trim());
  return data.length === STREAM_CHUNKS + 1 && data[STREAM_CHUNKS] === "[DONE]" && data.slice(0, STREAM_CHUNKS).every((d) => d.includes('"chat.completion.chunk"'));
}

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

/** Open connections of the current run, so that Ctrl-C can cut them. */
const live = new Set<http.ClientRequest>();

export function stopHeldStreams(): void {
  for (const request of live) request.destroy();
}

export async function runHeldStreams(options: HeldStreamsOptions): Promise<HeldStreamsResult> {
  const { origin, request, streams, pid } = options;
  const url = new URL(origin);
  const body = request.body === undefined ? undefined : Buffer.from(request.body);
  const agent = new http.Agent({ keepAlive: false, maxSockets: Infinity });
  const started = process.hrtime.bigint();
  const sinceStartMs = () => Number(process.hrtime.bigint() - started) / 1e6;

  const latencies: number[] = [];
  const statusCodes: Record<string, number> = {};
  let withHeaders = 0;
  let ended = 0;
  let errors = 0;
  let incomplete = 0;
  let non2xx = 0;
  let timeouts = 0;
  let bytesRead = 0;
  let closed = 0;
  let allOpenAfterMs: number | null = null;
  let maxOpen = 0;
  let rssAtMaxOpenKb: number | null = null;
  let rssMaxKb: number | null = null;
  let samplesAtMaxOpen = 0;

  const sample = () => {
    const open = withHeaders - ended;
    if (open === streams) allOpenAfterMs ??= sinceStartMs();
    let rss: number | null = null;
    try {
      if (pid !== undefined) rss = memoryKb(pid).rssKb;
    } catch {
      // gone
    }
    if (rss !== null) rssMaxKb = Math.max(rssMaxKb ?? 0, rss);
    if (open > maxOpen) {
      maxOpen = open;
      rssAtMaxOpenKb = rss;
      samplesAtMaxOpen = 1;
    } else if (open === maxOpen && open > 0) {
      if (rss !== null) rssAtMaxOpenKb = Math.max(rssAtMaxOpenKb ?? 0, rss);
      samplesAtMaxOpen++;
    }
  };
  const sampler = setInterval(sample, SAMPLE_MS);

  let settleAll: () => void = () => undefined;
  const allDone = new Promise<void>((resolve) => (settleAll = resolve));
  let finished = 0;
  const finish = () => {
    if (++finished === streams) settleAll();
  };

  const open = (): Promise<void> =>
    new Promise((connected) => {
      const t0 = process.hrtime.bigint();
      let done = false;
      const end = (kind: "ok" | "error") => {
        if (done) return;
        done = true;
        // Streams cut by the watchdog are counted as timeouts, not errors.
        if (kind === "error" && !timedOut) errors++;
        finish();
      };
      const req = http.request({
        host: url.hostname,
        port: url.port,
        method: request.method,
        path: request.path,
        headers: { ...request.headers, ...(body ? { "content-length": String(body.length) } : {}) },
        agent,
      });
      live.add(req);
      req.on("socket", (socket) => {
        socket.once("connect", () => connected());
        socket.once("close", () => {
          closed++;
          live.delete(req);
        });
      });
      req.on("error", () => {
        connected();
        end("error");
      });
      req.on("response", (res) => {
        withHeaders++;
        // With the status, in case the sampler never sees all streams open at once.
        if (withHeaders === streams) sample();
        const status = String(res.statusCode ?? 0);
        statusCodes[status] = (statusCodes[status] ?? 0) + 1;
        const parts: Buffer[] = [];
        res.on("data", (chunk: Buffer) => {
          bytesRead += chunk.length;
          parts.push(chunk);
        });
        res.on("error", () => end("error"));
        res.on("end", () => {
          ended++;
          latencies.push(Number(process.hrtime.bigint() - t0) / 1e6);
          if (!res.statusCode || res.statusCode < 200 || res.statusCode > 299) non2xx++;
          else if (!completeStream(Buffer.concat(parts).toString("utf8"))) incomplete++;
          end("ok");
        });
      });
      req.end(body);
    });

  let timedOut = false;
  const watchdog = setTimeout(() => {
    timedOut = true;
    timeouts = streams - finished;
    stopHeldStreams();
    settleAll();
  }, options.timeoutMs);
  try {
    for (let first = 0; first < streams; first += BATCH) {
      const batch: Promise<void>[] = [];
      for (let i = first; i < Math.min(streams, first + BATCH); i++) batch.push(open());
      await Promise.all(batch);
    }
    await allDone;
    // Every connection closes after its response (no keep-alive); give the last ones a moment.
    for (let wait = 0; closed < streams && wait < 40; wait++) await new Promise((resolve) => setTimeout(resolve, 50));
  } finally {
    clearTimeout(watchdog);
    clearInterval(sampler);
    stopHeldStreams();
    agent.destroy();
  }

  const elapsedSec = sinceStartMs() / 1000;
  latencies.sort((a, b) => a - b);
  const sum = latencies.reduce((total, value) => total + value, 0);
  return {
    load: {
      requests: latencies.length,
      elapsedSec,
      rps: latencies.length / elapsedSec,
      latencyMs: {
        p50: percentile(latencies, 50),
        p90: percentile(latencies, 90),
        p99: percentile(latencies, 99),
        max: latencies.length ? latencies[latencies.length - 1]! : NaN,
        mean: latencies.length ? sum / latencies.length : NaN,
      },
      bytesRead,
      // Incomplete streams (a chunk or [DONE] missing) count as errors.
      errors: errors + incomplete + timeouts,
      timeouts,
      non2xx,
      statusCodes,
    },
    allOpenAfterMs,
    maxOpen,
    rssAtMaxOpenKb,
    rssMaxKb,
    samplesAtMaxOpen,
    closedConnections: closed,
  };
}
