/**
 * Checks run before any load: the target answers a chat completion correctly,
 * and a stream arrives whole (every chunk, then [DONE]). Through the gateway,
 * the answer must also carry `x-gateway-model-used`, and a fallback must show
 * that the gateway switched (`x-gateway-switched: 1`, two attempts).
 */
import type { LoadRequest } from "./load.js";
import { STREAM_CHUNKS } from "./mock-upstream.js";

/** What the gateway's answer must say about itself (nothing is expected of direct and nginx). */
export interface GatewayExpectations {
  readonly modelUsed: string;
  /** A fallback: `x-gateway-switched: 1` and `x-gateway-attempt-count: 2`. */
  readonly switched?: boolean;
}

export interface SanityResult {
  readonly scenario: string;
  readonly target: string;
  readonly kind: "chat" | "stream";
  readonly status: number;
  readonly modelUsed: string | null;
  /** x-gateway-switched and x-gateway-attempt-count, when the gateway sent them. */
  readonly switched: string | null;
  readonly attempts: string | null;
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

function checkGatewayHeaders(target: string, response: Response, text: string, expect: GatewayExpectations | undefined) {
  const modelUsed = response.headers.get("x-gateway-model-used");
  const switched = response.headers.get("x-gateway-switched");
  const attempts = response.headers.get("x-gateway-attempt-count");
  if (expect) {
    if (modelUsed !== expect.modelUsed) fail(target, `x-gateway-model-used is ${JSON.stringify(modelUsed)}, expected "${expect.modelUsed}"`, text);
    if (expect.switched && (switched !== "1" || attempts !== "2")) {
      fail(target, `expected a switch after one attempt (x-gateway-switched: 1, x-gateway-attempt-count: 2), got ${JSON.stringify(switched)} and ${JSON.stringify(attempts)}`, text);
    }
  }
  return { modelUsed, switched, attempts };
}

export async function checkChat(scenario: string, target: string, origin: string, request: LoadRequest, expect?: GatewayExpectations): Promise<SanityResult> {
  const where = `${scenario}, ${target}`;
  const { response, body } = await send(origin, request);
  const text = body.toString("utf8");
  if (response.status !== 200) fail(where, `chat completion answered ${response.status}`, text);
  const headers = checkGatewayHeaders(where, response, text, expect);
  let parsed: { choices?: { message?: { content?: unknown } }[] };
  try {
    parsed = JSON.parse(text) as typeof parsed;
  } catch {
    fail(where, "chat completion is not JSON", text);
  }
  if (typeof parsed.choices?.[0]?.message?.content !== "string") fail(where, "chat completion has no choices[0].message.content", text);
  return { scenario, target, kind: "chat", status: response.status, ...headers, bytes: body.length };
}

export async function checkStream(scenario: string, target: string, origin: string, request: LoadRequest, expect?: GatewayExpectations): Promise<SanityResult> {
  const where = `${scenario}, ${target}`;
  const { response, body, reads } = await send(origin, request);
  const text = body.toString("utf8");
  if (response.status !== 200) fail(where, `stream answered ${response.status}`, text);
  const contentType = response.headers.get("content-type") ?? "";
  if (!contentType.startsWith("text/event-stream")) fail(where, `stream content-type is ${JSON.stringify(contentType)}`, text);
  const headers = checkGatewayHeaders(where, response, text, expect);
  const data = text
    .split(/\r?\n\r?\n/)
    .flatMap((event) => event.split(/\r?\n/).filter((line) => line.startsWith("data:")))
    .map((line) => line.slice(5).trim());
  const done = data.lastIndexOf("[DONE]");
  if (done !== data.length - 1 || done === -1) fail(where, "stream does not end with data: [DONE]", text.slice(-600));
  const chunks = data.slice(0, done);
  if (chunks.length !== STREAM_CHUNKS) fail(where, `stream delivered ${chunks.length} chunks, expected ${STREAM_CHUNKS}`, text);
  for (const chunk of chunks) {
    let parsed: { object?: unknown };
    try {
      parsed = JSON.parse(chunk) as typeof parsed;
    } catch {
      fail(where, "a stream chunk is not JSON", chunk);
    }
    if (parsed.object !== "chat.completion.chunk") fail(where, "a stream chunk is not a chat.completion.chunk", chunk);
  }
  return { scenario, target, kind: "stream", status: response.status, ...headers, bytes: body.length, chunks: chunks.length, reads };
}
