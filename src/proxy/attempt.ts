import type { Dispatcher } from "undici";
import type { Candidate } from "../routing/plan.js";
import { errorFacts, matchRule, type FailureFacts } from "../routing/policy.js";
import { MessagesToChatStream } from "../compat/anthropic/stream.js";
import { statusOfErrorType, toAnthropicError } from "../compat/anthropic/response.js";
import { EventReader, StreamTimeoutError } from "../stream/reader.js";
import { TranslatedSource, type EventSource } from "../stream/source.js";
import type { SseEvent } from "../stream/sse.js";
import { ChatTranscript, isContentChunk } from "../stream/transcript.js";
import type { Abort } from "../upstream/abort.js";
import { bodyStatus, isTimeoutError, mayHideStatus, type FailureReason } from "../upstream/classify.js";
import { PoolWaitTimeoutError, sendAttempt, type UpstreamResponse } from "../upstream/client.js";
import { buildUpstreamHeaders } from "../upstream/headers.js";
import type { Exchange } from "./api.js";
import type { Engine, ProxyRequest } from "./attempts.js";
import { ANTHROPIC_PROTOCOL, GENERIC_PROTOCOL, holdStream, RESPONSES_PROTOCOL, type StreamProtocol } from "./native-stream.js";
import { collect, contentKind, INSPECT_LIMIT, joined, TRANSLATE_LIMIT, type Collected, type ContentKind } from "./respond.js";

/**
 * One attempt: send the request to one candidate and classify what comes
 * back, reading only as much of the answer as the decision needs (an error
 * body, a 2xx JSON body that may hide an error, a stream up to its first token).
 */

/** One attempt's result, classified. */
export interface Attempted {
  readonly response: UpstreamResponse | undefined;
  /** A Chat Completions stream read up to its first real output (the commit point). */
  readonly stream?: { readonly reader: EventSource; readonly held: SseEvent[]; readonly transcript: ChatTranscript; readonly malformed: { count: number } };
  /** Another API's stream (or any SSE) read up to its first output, relayed as it is. */
  readonly native?: { readonly reader: EventSource; readonly held: SseEvent[]; readonly protocol: StreamProtocol };
  /** An error event a stream opened with: answered as an HTTP error (`body` in the client's API) when no candidate is left. */
  readonly errorEvent?: { readonly status: number; readonly body: Record<string, unknown> };
  readonly kind: ContentKind | undefined;
  /** Body bytes already read, to relay before the rest. */
  readonly pending: Collected | undefined;
  /** A translated exchange's whole 2xx JSON body, parsed, so that it is parsed once (undefined: not read whole, not JSON, or not translated). */
  readonly payload?: unknown;
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
  exchange: Exchange,
  signal: Abort,
  remainingMs: number,
  options: { mayInspect: boolean; firstTokenBound: boolean; wantsStream: boolean },
): Promise<Attempted> {
  const { config } = engine;
  const route = candidate.route;
  const started = engine.now();
  const timeouts = route.timeouts;
  const body = exchange.body;
  const translated = exchange.codec !== undefined;
  let response: UpstreamResponse;
  try {
    response = await sendAttempt(engine.upstream.dispatcher(route), {
      origin: route.origin,
      path: exchange.path,
      method: request.method as Dispatcher.HttpMethod,
      headers: buildUpstreamHeaders(request.headers, route, {
        bodyLength: body === undefined ? undefined : body.length,
        // A translated answer, or a stream the gateway reads event by event, must arrive uncompressed.
        identityEncoding: options.mayInspect || translated || (options.wantsStream && request.api !== "other"),
      }),
      body,
      signal,
      timeoutMs: Math.max(1, Math.min(timeouts.headersMs, remainingMs)),
      idleMs: timeouts.idleMs,
      poolSize: config.upstream.maxConnections,
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
        if (pending.complete) payload = parseJson(joined(pending));
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
  if ((options.mayInspect || translated) && status < 300 && kind.json && !kind.encoded && request.method !== "HEAD") {
    let pending: Collected;
    try {
      pending = await collect(response.body, translated ? TRANSLATE_LIMIT : INSPECT_LIMIT);
    } catch (error) {
      return thrown(error, keyedRoute, latencyMs);
    }
    let payload: unknown;
    const raw = pending.complete ? joined(pending) : undefined;
    // An answer with no key a hidden status could be in is cleared without a parse (a translation parses it anyway).
    if (raw && (translated || mayHideStatus(raw))) {
      payload = parseJson(raw);
      const hidden = bodyStatus(payload, config.retryStatusCodes);
      if (hidden !== null) {
        const { codes, message } = errorFacts(payload);
        return { response, kind, pending, failure: facts({ status: hidden, codes, message, inRetrySet: true }), reason: "body_status", detail: message || undefined, latencyMs };
      }
    }
    // Only a translation reads the parsed answer again.
    return { response, kind, pending, payload: translated ? payload : undefined, failure: undefined, reason: undefined, detail: undefined, latencyMs };
  }

  const firstTokenBy = options.firstTokenBound ? started + Math.min(timeouts.firstTokenMs, remainingMs) : undefined;
  // A Chat Completions stream (an Anthropic one translated into it included) is held until its first real output
  // (text, reasoning or a tool call): until then an error event, a stall or a cut can still fail over invisibly.
  if (exchange.chatStream && kind.sse && status < 300) {
    let reader: EventSource = new EventReader(response.body);
    if (route.api === "anthropic") {
      reader = new TranslatedSource(reader, new MessagesToChatStream({ model: candidate.model ?? request.requestedModel ?? "", includeUsage: exchange.includeUsage }));
    }
    return holdChatStream(response, reader, kind, firstTokenBy, engine, facts, started, request.api === "messages" ? "anthropic" : "openai");
  }

  // Responses and Anthropic streams are always held (their end is checked too); other streams only when another candidate could take over.
  const protocol = !kind.sse || status >= 300 ? undefined : request.api === "responses" ? RESPONSES_PROTOCOL : request.api === "messages" ? ANTHROPIC_PROTOCOL : options.firstTokenBound ? GENERIC_PROTOCOL : undefined;
  if (protocol) {
    const reader = new EventReader(response.body);
    let held;
    try {
      held = await holdStream(reader, protocol, () => (firstTokenBy === undefined ? undefined : Math.max(1, firstTokenBy - engine.now())));
    } catch (error) {
      reader.destroy();
      return thrown(error, keyedRoute, latencyMs);
    }
    const native = { reader, held: held.held, protocol };
    if (held.kind === "timeout") {
      return { response: undefined, kind, pending: undefined, native, failure: facts({ status: null, kind: "timeout" }), reason: "timeout", detail: held.detail, latencyMs };
    }
    if (held.kind === "ended") {
      return { response: undefined, kind, pending: undefined, native, failure: facts({ status: null, kind: "reset" }), reason: "network_error", detail: held.detail, latencyMs };
    }
    if (held.kind === "error") {
      const payload = held.payload.type === "response.failed" && held.payload.response ? held.payload.response : held.payload;
      const { codes, message } = errorFacts(payload);
      const hidden = errorEventStatus(payload, codes);
      const clientBody = protocol === ANTHROPIC_PROTOCOL ? held.payload : { error: openAiError(payload, message) };
      return {
        response: undefined,
        kind,
        pending: undefined,
        native,
        failure: facts({ status: hidden, codes, message, inRetrySet: config.retryStatusCodes.has(hidden) || hidden >= 500 }),
        reason: "body_status",
        detail: message || "an error event before the first output",
        latencyMs,
        errorEvent: { status: hidden >= 400 ? hidden : 502, body: clientBody },
      };
    }
    return { response, kind, pending: undefined, native, failure: undefined, reason: undefined, detail: undefined, latencyMs: engine.now() - started };
  }

  return { response, kind, pending: undefined, failure: undefined, reason: undefined, detail: undefined, latencyMs };
}

async function holdChatStream(
  response: UpstreamResponse,
  reader: EventSource,
  kind: ContentKind,
  firstTokenBy: number | undefined,
  engine: Engine,
  facts: (overrides: Partial<FailureFacts>) => FailureFacts,
  started: number,
  clientShape: "openai" | "anthropic",
): Promise<Attempted> {
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
      const hidden = errorEventStatus(record, codes);
      return fail(
        facts({ status: hidden, codes, message, inRetrySet: engine.config.retryStatusCodes.has(hidden) || hidden >= 500 }),
        "body_status",
        message || "an error event before the first token",
        {
          status: hidden >= 400 ? hidden : 502,
          body: clientShape === "anthropic" ? toAnthropicError(hidden, record) : { error: typeof record.error === "object" ? record.error : { message: String(record.error), type: "upstream_error", code: null } },
        },
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

/** The HTTP status an error event stands for: a status-like code in it, else its error type (Anthropic's and OpenAI's names). */
function errorEventStatus(payload: unknown, codes: readonly string[]): number {
  const status = bodyStatus(payload, ANY_STATUS);
  if (status !== null) return status;
  for (const code of codes) {
    const byType = statusOfErrorType(code);
    if (byType !== undefined) return byType;
  }
  return 500;
}

/** An error event's payload as an OpenAI error object. */
function openAiError(payload: unknown, message: string): Record<string, unknown> {
  const record = (payload ?? {}) as Record<string, unknown>;
  const inner = record.error && typeof record.error === "object" ? (record.error as Record<string, unknown>) : record;
  return { message: message || "the upstream stream failed", type: typeof inner.type === "string" && inner.type !== "error" ? inner.type : "upstream_error", code: inner.code ?? null };
}

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
    failure: { status: null, codes: [], message: (error as Error).message ?? "", kind, keyedRoute, inRetrySet: false, poolWait: error instanceof PoolWaitTimeoutError },
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
