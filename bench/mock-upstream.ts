/**
 * The benchmark's mock OpenAI upstream. It runs in its own process (started by
 * bench/run.ts through `child_process.fork`), so its CPU is not mixed with the
 * gateway's or the load generator's, and it is as cheap as possible: every
 * answer is a pre-built buffer.
 *
 *   POST …/chat/completions                 → 200 JSON chat completion (≈600 bytes)
 *   POST …/chat/completions  "stream": true → 200 SSE: 20 chunk events, then `data: [DONE]`
 *   the same under /slow/, "stream": true   → the same 20 events, one every `--slow-interval-ms`
 *                                             (default 200 ms): a stream held open for seconds
 *   any path under /busy/                   → 429 rate-limit error with `retry-after-ms: 0` (fallback scenarios)
 *   any path on the second, "busy" port     → the same 429 (for nginx's proxy_next_upstream, which
 *                                             fails over between servers, not paths)
 *   anything else                           → 404
 *
 * Streamed chunks are written one per event-loop turn (setImmediate), so they
 * tend to reach the gateway as separate reads, as a real provider's tokens do,
 * rather than as one coalesced write.
 *
 * Protocol with the parent (IPC): the mock sends `{ type: "ready", port, busyPort }`
 * once listening; it answers `{ type: "stats" }` with the requests it has served
 * (and of those, the 429s under /busy/), the TCP connections it has accepted
 * since it started (server 'connection' events) and those open now. The parent may send
 * `{ type: "guard", pids, dirs }`: should the parent die without cleaning up
 * (even by SIGKILL, which it cannot catch), the IPC channel closes and the mock
 * SIGTERMs those pids (the gateway) and removes those temp dirs before exiting,
 * so nothing outlives the bench.
 */
import { rmSync } from "node:fs";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";

export const STREAM_CHUNKS = 20;
export const MOCK_MODEL = "bench-model";

const CREATED = 1_700_000_000;
const ID = "chatcmpl-bench0000000000000000000000";

/** A non-streaming chat completion of about `targetBytes` bytes, as OpenAI formats it. */
export function completionBody(targetBytes = 600): Buffer {
  const make = (content: string) =>
    JSON.stringify({
      id: ID,
      object: "chat.completion",
      created: CREATED,
      model: MOCK_MODEL,
      choices: [{ index: 0, message: { role: "assistant", content, refusal: null, annotations: [] }, logprobs: null, finish_reason: "stop" }],
      usage: {
        prompt_tokens: 24,
        completion_tokens: 48,
        total_tokens: 72,
        prompt_tokens_details: { cached_tokens: 0, audio_tokens: 0 },
        completion_tokens_details: { reasoning_tokens: 0, audio_tokens: 0 },
      },
      service_tier: "default",
      system_fingerprint: "fp_bench",
    });
  const base = Buffer.byteLength(make(""));
  const words = "The quick brown fox jumps over the lazy dog while the gateway forwards every byte. ";
  let content = "";
  while (base + content.length < targetBytes) content += words;
  return Buffer.from(make(content.slice(0, Math.max(0, targetBytes - base))));
}

/** The SSE events of a streamed chat completion: `count` chunk events (role, content…, finish) then `[DONE]`. */
export function streamEvents(count = STREAM_CHUNKS): Buffer[] {
  const chunk = (delta: object, finish: string | null) =>
    `data: ${JSON.stringify({ id: ID, object: "chat.completion.chunk", created: CREATED, model: MOCK_MODEL, system_fingerprint: "fp_bench", choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }] })}\n\n`;
  const events = [chunk({ role: "assistant", content: "", refusal: null }, null)];
  for (let i = 1; i < count - 1; i++) events.push(chunk({ content: ` token${i}` }, null));
  events.push(chunk({}, "stop"));
  events.push("data: [DONE]\n\n");
  return events.map((event) => Buffer.from(event));
}

const COMPLETION = completionBody();
const EVENTS = streamEvents();
const LAST_EVENT = EVENTS.length - 1;
const RATE_LIMITED = Buffer.from(
  JSON.stringify({ error: { message: "Rate limit reached (bench mock upstream).", type: "rate_limit_error", param: null, code: "rate_limit_exceeded" } }),
);
const RETRY_NOW = { "retry-after-ms": "0" };
const NOT_FOUND = Buffer.from(JSON.stringify({ error: { message: "Not found (bench mock upstream).", type: "invalid_request_error", param: null, code: "not_found" } }));
const STREAM_TRUE = /"stream"\s*:\s*true/;

function sendJson(res: ServerResponse, status: number, body: Buffer, extra?: Record<string, string>): void {
  res.writeHead(status, { "content-type": "application/json", "content-length": body.length, ...extra });
  res.end(body);
}

function sendStream(res: ServerResponse): void {
  res.writeHead(200, { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache" });
  let index = 0;
  const next = () => {
    if (res.destroyed) return;
    if (index === LAST_EVENT) {
      res.end(EVENTS[index]);
      return;
    }
    res.write(EVENTS[index++]);
    setImmediate(next);
  };
  next();
}

/** One event every `intervalMs`: a stream that stays open for seconds (20 × 200 ms by default). */
function sendSlowStream(res: ServerResponse, intervalMs: number): void {
  res.writeHead(200, { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache" });
  let index = 0;
  let timer: NodeJS.Timeout | undefined;
  const next = () => {
    if (res.destroyed) return;
    if (index === LAST_EVENT) {
      res.end(EVENTS[index]);
      return;
    }
    res.write(EVENTS[index++]);
    timer = setTimeout(next, intervalMs);
  };
  res.once("close", () => clearTimeout(timer));
  next();
}

let busyAnswers = 0;

function handle(req: IncomingMessage, res: ServerResponse, body: Buffer, slowIntervalMs: number, busy: boolean): void {
  const path = req.url ?? "/";
  if (busy || path.startsWith("/busy/")) {
    // `retry-after-ms: 0`: no cooldown at all, so the gateway tries the busy model on every request
    // (its shortest configurable cooldown, 1 ms, still let requests starting in the same millisecond skip it).
    busyAnswers++;
    sendJson(res, 429, RATE_LIMITED, RETRY_NOW);
    return;
  }
  const query = path.indexOf("?");
  const pathname = query === -1 ? path : path.slice(0, query);
  if (req.method === "POST" && pathname.endsWith("/chat/completions")) {
    // A regex on the raw bytes, not JSON.parse: the mock must stay cheap.
    if (STREAM_TRUE.test(body.toString("latin1"))) {
      if (path.startsWith("/slow/")) sendSlowStream(res, slowIntervalMs);
      else sendStream(res);
    } else sendJson(res, 200, COMPLETION);
    return;
  }
  sendJson(res, 404, NOT_FOUND);
}

function serve(): void {
  const flag = process.argv.indexOf("--slow-interval-ms");
  const slowIntervalMs = flag === -1 ? 200 : Number(process.argv[flag + 1]);
  if (!Number.isFinite(slowIntervalMs) || slowIntervalMs < 1) throw new Error("--slow-interval-ms must be a number of milliseconds");
  let requests = 0;
  let connections = 0;
  let open = 0;
  const listener = (busy: boolean) => (req: IncomingMessage, res: ServerResponse) => {
    requests++;
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => handle(req, res, chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks), slowIntervalMs, busy));
  };
  const options = { keepAliveTimeout: 120_000, headersTimeout: 125_000, requestTimeout: 0 };
  const server = createServer(options, listener(false));
  // A second port where every path is busy (429): for a proxy that fails over between servers, not paths.
  const busyServer = createServer(options, listener(true));
  const onConnection = (socket: Socket) => {
    connections++;
    open++;
    socket.once("close", () => open--);
  };
  server.on("connection", onConnection);
  busyServer.on("connection", onConnection);
  let guarded: number[] = [];
  let guardedDirs: string[] = [];
  process.on("message", (message: { type?: string; pids?: number[]; dirs?: string[] }) => {
    if (message.type === "guard") {
      guarded = message.pids ?? [];
      guardedDirs = message.dirs ?? [];
    }
    else if (message.type === "stats") process.send?.({ type: "stats", requests, busy: busyAnswers, connections, open });
  });
  process.on("disconnect", () => {
    for (const pid of guarded) {
      try {
        process.kill(pid, "SIGTERM");
      } catch {
        // already gone
      }
    }
    for (const dir of guardedDirs) rmSync(dir, { recursive: true, force: true });
    process.exit(0);
  });
  // The default backlog (511) could overflow when a thousand streams open at once.
  const listen = (target: typeof server) =>
    new Promise<number>((resolve) => target.listen({ port: 0, host: "127.0.0.1", backlog: 4096 }, () => resolve((target.address() as AddressInfo).port)));
  void Promise.all([listen(server), listen(busyServer)]).then(([port, busyPort]) => process.send?.({ type: "ready", port, busyPort }));
}

if (process.send !== undefined && process.argv.includes("--serve")) serve();
