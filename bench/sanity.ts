/**
 * Checks run before any load: the target answers a chat completion correctly,
 * and a stream arrives whole (every chunk, then [DONE]). Through the gateway,
 * the answer must also carry `x-gateway-model-used`.
 */
import type { LoadRequest } from "./load.js";
import { STREAM_CHUNKS } from "./mock-upstream.js";
import { BENCH_MODEL } from "./scenarios.js";

export interface SanityResult {
  readonly target: string;
  readonly kind: "chat" | "stream";
  readonly status: number;
  readonly modelUsed: string | null;
  readonly bytes: number;
  /** Stream only: `data:` events before [DONE], and body reads it arrived in. */
  readonly chunks?: number;
  readonly reads?: number;
}

async function send(origin: string, request: LoadRequest): Promise<{ response: Response; body: Buffer; reads: number }> {
  const response = await fetch(origin + request.path, {
    method: request.method,
    headers: request.headers,
    ...(request.body !== undefined ? { body: request.body } : {}),
    signal: AbortSignal.timeout(10_000),
  });
  const parts: Buffer[] = [];
  if (response.body) {
    for await (const part of response.body) parts.push(Buffer.from(part as Uint8Array));
  }
  return { response, body: Buffer.concat(parts), reads: parts.length };
}

function fail(target: string, what: string, detail: string): never {
  throw new Error(`sanity check failed (${target}): ${what}\n  ${detail.slice(0, 600)}`);
}

export async function checkChat(target: string, origin: string, request: LoadRequest, viaGateway: boolean): Promise<SanityResult> {
  const { response, body } = await send(origin, request);
  const text = body.toString("utf8");
  if (response.status !== 200) fail(target, `chat completion answered ${response.status}`, text);
  const modelUsed = response.headers.get("x-gateway-model-used");
  if (viaGateway && modelUsed !== BENCH_MODEL) fail(target, `x-gateway-model-used is ${JSON.stringify(modelUsed)}, expected "${BENCH_MODEL}"`, text);
  let parsed: { choices?: { message?: { content?: unknown } }[] };
  try {
    parsed = JSON.parse(text) as typeof parsed;
  } catch {
    fail(target, "chat completion is not JSON", text);
  }
  if (typeof parsed.choices?.[0]?.message?.content !== "string") fail(target, "chat completion has no choices[0].message.content", text);
  return { target, kind: "chat", status: response.status, modelUsed, bytes: body.length };
}

export async function checkStream(target: string, origin: string, request: LoadRequest, viaGateway: boolean): Promise<SanityResult> {
  const { response, body, reads } = await send(origin, request);
  const text = body.toString("utf8");
  if (response.status !== 200) fail(target, `stream answered ${response.status}`, text);
  const contentType = response.headers.get("content-type") ?? "";
  if (!contentType.startsWith("text/event-stream")) fail(target, `stream content-type is ${JSON.stringify(contentType)}`, text);
  const modelUsed = response.headers.get("x-gateway-model-used");
  if (viaGateway && modelUsed !== BENCH_MODEL) fail(target, `x-gateway-model-used is ${JSON.stringify(modelUsed)}, expected "${BENCH_MODEL}"`, text);
  const data = text
    .split(/\r?\n\r?\n/)
    .flatMap((event) => event.split(/\r?\n/).filter((line) => line.startsWith("data:")))
    .map((line) => line.slice(5).trim());
  const done = data.lastIndexOf("[DONE]");
  if (done !== data.length - 1 || done === -1) fail(target, "stream does not end with data: [DONE]", text.slice(-600));
  const chunks = data.slice(0, done);
  if (chunks.length !== STREAM_CHUNKS) fail(target, `stream delivered ${chunks.length} chunks, expected ${STREAM_CHUNKS}`, text);
  for (const chunk of chunks) {
    let parsed: { object?: unknown };
    try {
      parsed = JSON.parse(chunk) as typeof parsed;
    } catch {
      fail(target, "a stream chunk is not JSON", chunk);
    }
    if (parsed.object !== "chat.completion.chunk") fail(target, "a stream chunk is not a chat.completion.chunk", chunk);
  }
  return { target, kind: "stream", status: response.status, modelUsed, bytes: body.length, chunks: chunks.length, reads };
}
