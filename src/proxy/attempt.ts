import type { Dispatcher } from "undici";
import type { Candidate } from "../routing/plan.js";
import { errorFacts, matchRule, type FailureFacts } from "../routing/policy.js";
import { awaitFirstEvent } from "../stream/first-event.js";
import { EventReader, StreamTimeoutError } from "../stream/reader.js";
import type { SseEvent } from "../stream/sse.js";
import { ChatTranscript, isContentChunk } from "../stream/transcript.js";
import type { Abort } from "../upstream/abort.js";
import { bodyStatus, isTimeoutError, type FailureReason } from "../upstream/classify.js";
import { sendAttempt, type UpstreamResponse } from "../upstream/client.js";
import { buildUpstreamHeaders } from "../upstream/headers.js";
import { upstreamPath } from "../upstream/url.js";
import type { Engine, ProxyRequest } from "./attempts.js";
import { collect, contentKind, INSPECT_LIMIT, type Collected, type ContentKind } from "./respond.js";

/**
 * One attempt: send the request to one candidate and classify what comes
 * back, reading only as much of the answer as the decision needs (an error
 * body, a 2xx JSON body that may hide an error, a stream up to its first token).
 */

/** One attempt's result, classified. */
export interface Attempted {
  readonly response: UpstreamResponse | undefined;
  /** A Chat Completions stream read up to its first real output (the commit point). */
  readonly stream?: { readonly reader: EventReader; readonly held: SseEvent[]; readonly transcript: ChatTranscript; readonly malformed: { count: number } };
  /** An error event a stream opened with: answered as an HTTP error when no candidate is left. */
  readonly errorEvent?: { readonly status: number; readonly error: unknown };
  readonly kind: ContentKind | undefined;
  /** Body bytes already read, to relay before the rest. */
  readonly pending: Collected | undefined;
  /** Undefined: a success. */
  readonly failure: FailureFacts | undefined;
  readonly reason: FailureReason | undefined;
  readonly detail: string | undefined;
  readonly latencyMs: number;
}

const NETWORK_RESET = new Set(["ECONNRESET", "UND_ERR_SOCKET", "EPIPE", "UND_ERR_CLOSED"]);

export async function attempt(
  engine: Engine,
  request: ProxyRequest,
  candidate: Candidate,
  body: Buffer | undefined,
  signal: Abort,
  remainingMs: number,
  options: { mayInspect: boolean; firstTokenBound: boolean; chatStream: boolean },
): Promise<Attempted> {
  const { config } = engine;
  const route = candidate.route;
  const started = engine.now();
  const timeouts = route.timeouts;
  let response: UpstreamResponse;
  try {
    response = await sendAttempt(engine.upstream.dispatcher(route), {
      origin: route.origin,
      path: upstreamPath(route, request.pathname, request.search),
      method: request.method as Dispatcher.HttpMethod,
      headers: buildUpstreamHeaders(request.headers, route, {
        bodyLength: body === undefined ? undefined : body.length,
        identityEncoding: options.mayInspect,
      }),
      body,
      signal,
      timeoutMs: Math.max(1, Math.min(timeouts.headersMs, remainingMs)),
      idleMs: timeouts.idleMs,
    });
  } catch (error) {
    return thrown(error, route.apiKey !== "", engine.now() - started);
  }

  const latencyMs = engine.now() - started;
  const status = response.statusCode;
  const kind = contentKind(response.headers);
  const keyedRoute = route.apiKey !== "";
  const facts = (overrides: Partial<FailureFacts>): FailureFacts => ({
    status,
    codes: [],
    message: "",
    kind: "status",
    keyedRoute,
    inRetrySet: config.retryStatusCodes.has(status),
    ...overrides,
  });

  // Error answers: read them (bounded) for their error code, so the rules can tell a full context from a bad request.
  if (status >= 400) {
    let pending: Collected | undefined;
    let payload: unknown;
    if (request.method !== "HEAD" && !kind.encoded && !kind.sse) {
      try {
        pending = await collect(response.body, INSPECT_LIMIT);
        if (pending.complete) payload = parseJson(Buffer.concat(pending.chunks, pending.size));
      } catch (error) {
        return thrown(error, keyedRoute, latencyMs);
      }
    }
    const { codes, message } = errorFacts(payload);
    const failure = facts({ codes, message });
    const rule = matchRule(failure, config.rules);
    // A status outside every rule is the client's answer, delivered as it is.
    return { response, kind, pending, failure: rule ? failure : undefined, reason: "status", detail: message || undefined, latencyMs };
  }

  // A 2xx JSON answer may hide an error status in its body (some providers answer 200 {"error": {"code": 429}}).
  if (options.mayInspect && status < 300 && kind.json && !kind.encoded && request.method !== "HEAD") {
    let pending: Collected;
    try {
      pending = await collect(response.body, INSPECT_LIMIT);
    } catch (error) {
      return thrown(error, keyedRoute, latencyMs);
    }
    if (pending.complete) {
      const payload = parseJson(Buffer.concat(pending.chunks, pending.size));
      const hidden = bodyStatus(payload, config.retryStatusCodes);
      if (hidden !== null) {
        const { codes, message } = errorFacts(payload);
        return { response, kind, pending, failure: facts({ status: hidden, codes, message, inRetrySet: true }), reason: "body_status", detail: message || undefined, latencyMs };
      }
    }
    return { response, kind, pending, failure: undefined, reason: undefined, detail: undefined, latencyMs };
  }

  // A Chat Completions stream is held until its first real output (text, reasoning or a tool call): until then
  // an error event, a stall or a cut can still fail over invisibly.
  if (options.chatStream && kind.sse && status < 300) {
    return holdChatStream(response, kind, options.firstTokenBound ? started + Math.min(timeouts.firstTokenMs, remainingMs) : undefined, engine, facts, started);
  }

  // Other streams are held until their first event, when another candidate could take over.
  if (options.firstTokenBound && kind.sse && status < 300) {
    const waitMs = Math.max(1, Math.min(timeouts.firstTokenMs, remainingMs) - latencyMs);
    let first;
    try {
      first = await awaitFirstEvent(response.body, waitMs);
    } catch (error) {
      return thrown(error, keyedRoute, latencyMs);
    }
    const pending: Collected = { chunks: first.chunks, size: first.size, complete: false };
    if (first.timedOut) {
      return { response, kind, pending, failure: facts({ status: null, kind: "timeout" }), reason: "timeout", detail: `no first event within ${timeouts.firstTokenMs} ms`, latencyMs };
    }
    if (first.ended) {
      return { response, kind, pending, failure: facts({ status: null, kind: "reset" }), reason: "network_error", detail: "the stream ended before its first event", latencyMs };
    }
    const payload = first.data === null ? undefined : parseJson(Buffer.from(first.data));
    if (payload && typeof payload === "object" && "error" in payload && (payload as { error: unknown }).error) {
      const { codes, message } = errorFacts(payload);
      const hidden = bodyStatus(payload, ANY_STATUS) ?? 500;
      return {
        response,
        kind,
        pending,
        failure: facts({ status: hidden, codes, message, inRetrySet: config.retryStatusCodes.has(hidden) || hidden >= 500 }),
        reason: "body_status",
        detail: message || "error event before the first token",
        latencyMs,
      };
    }
    return { response, kind, pending, failure: undefined, reason: undefined, detail: undefined, latencyMs: engine.now() - started };
  }

  return { response, kind, pending: undefined, failure: undefined, reason: undefined, detail: undefined, latencyMs };
}

async function holdChatStream(
  response: UpstreamResponse,
  kind: ContentKind,
  firstTokenBy: number | undefined,
  engine: Engine,
  facts: (overrides: Partial<FailureFacts>) => FailureFacts,
  started: number,
): Promise<Attempted> {
  const reader = new EventReader(response.body);
  const held: SseEvent[] = [];
  const malformed = { count: 0 };
  let heldBytes = 0;
  const transcript = new ChatTranscript();
  // A stream that failed before its first token has no answer to pass on: it is never delivered.
  const fail = (failure: FailureFacts, reason: FailureReason, detail: string, errorEvent?: Attempted["errorEvent"]): Attempted => ({
    response: undefined,
    kind,
    pending: undefined,
    stream: { reader, held, transcript, malformed },
    failure,
    reason,
    detail,
    latencyMs: engine.now() - started,
    errorEvent,
  });
  for (;;) {
    let event: SseEvent | null;
    try {
      event = await reader.next(firstTokenBy === undefined ? undefined : Math.max(1, firstTokenBy - engine.now()), "first_token");
    } catch (error) {
      if (error instanceof StreamTimeoutError) return fail(facts({ status: null, kind: "timeout" }), "timeout", error.message);
      return { ...thrown(error, false, engine.now() - started), stream: { reader, held, transcript, malformed } };
    }
    if (event === null) return fail(facts({ status: null, kind: "reset" }), "network_error", "the stream ended before its first token");
    if (event.data === undefined) {
      held.push(event);
      continue;
    }
    if (event.data.trim() === "[DONE]") {
      held.push(event);
      break;
    }
    let chunk: unknown;
    try {
      chunk = JSON.parse(event.data);
    } catch {
      malformed.count++; // dropped, never relayed
      continue;
    }
    if (!chunk || typeof chunk !== "object" || Array.isArray(chunk)) {
      malformed.count++;
      continue;
    }
    const record = chunk as Record<string, unknown>;
    if (record.error) {
      const { codes, message } = errorFacts(record);
      const hidden = bodyStatus(record, ANY_STATUS) ?? 500;
      return fail(
        facts({ status: hidden, codes, message, inRetrySet: engine.config.retryStatusCodes.has(hidden) || hidden >= 500 }),
        "body_status",
        message || "an error event before the first token",
        { status: hidden >= 400 ? hidden : 502, error: record.error },
      );
    }
    held.push(event);
    heldBytes += event.raw.length;
    transcript.apply(record);
    // Commit on real output, on a finished choice, on a shape this check does not know (no `choices`),
    // or once the held bytes reach the bound: holding is never unbounded.
    if (!Array.isArray(record.choices) || isContentChunk(record) || transcript.finishedAny() || heldBytes > MAX_HELD_BYTES) break;
  }
  return { response, kind, pending: undefined, stream: { reader, held, transcript, malformed }, failure: undefined, reason: undefined, detail: undefined, latencyMs: engine.now() - started };
}

const MAX_HELD_BYTES = 1024 * 1024;

const ANY_STATUS: ReadonlySet<number> = new Set(Array.from({ length: 500 }, (_, i) => i + 100));

function thrown(error: unknown, keyedRoute: boolean, latencyMs: number): Attempted {
  const code = (error as { code?: unknown } | null)?.code;
  const timeout = isTimeoutError(error);
  const reset = typeof code === "string" && NETWORK_RESET.has(code);
  const kind: FailureFacts["kind"] = timeout ? "timeout" : reset ? "reset" : "network";
  return {
    response: undefined,
    kind: undefined,
    pending: undefined,
    failure: { status: null, codes: [], message: (error as Error).message ?? "", kind, keyedRoute, inRetrySet: false },
    reason: timeout ? "timeout" : "network_error",
    detail: (error as Error).message,
    latencyMs,
  };
}

function parseJson(buffer: Buffer): unknown {
  try {
    return JSON.parse(buffer.toString("utf8"));
  } catch {
    return undefined;
  }
}
