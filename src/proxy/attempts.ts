import type { IncomingHttpHeaders, ServerResponse } from "node:http";
import type { Dispatcher } from "undici";
import { AUTO_MODEL } from "../config/names.js";
import type { GatewayConfig } from "../config/types.js";
import type { Logger } from "../observe/logger.js";
import { healthOf, routeFor, type Candidate } from "../routing/plan.js";
import { decide, matchRule, retryAfterMs, type FailureFacts } from "../routing/policy.js";
import type { RoutingStore } from "../routing/store.js";
import { sendError } from "../server/errors.js";
import { Abort, sleep } from "../upstream/abort.js";
import { abandon, PoolWaitTimeoutError, sendAttempt, UpstreamClient, type UpstreamResponse } from "../upstream/client.js";
import { buildUpstreamHeaders } from "../upstream/headers.js";
import { buildNotice, type FailedAttempt } from "./notice.js";
import { topLevelValueSpan, withAssistantPrefix, withModel, withoutKey, type BodyInfo } from "./request-body.js";
import { CHAT_OUTPUT, relayChatStream, type StreamOpener } from "./chat-stream.js";
import { EventReader } from "../stream/reader.js";
import { TranslatedSource, type EventSource } from "../stream/source.js";
import { MessagesToChatStream } from "../compat/anthropic/stream.js";
import { chatToMessagesResponse, messagesToChatResponse, toAnthropicError, toOpenAIError } from "../compat/anthropic/response.js";
import { withSystemMessagesHoisted } from "../compat/anthropic/request.js";
import { isGoogleOrigin, withThoughtSignatures } from "../compat/gemini.js";
import { attempt, type Attempted } from "./attempt.js";
import { codecFor, pathFor, translateRequest, unsupported, type ClientApi, type Exchange } from "./api.js";
import { anthropicOutput } from "./anthropic-output.js";
import { relayStream } from "./native-stream.js";
import { contentKind, deliver, type ContentKind } from "./respond.js";
import type { ErrorShape } from "../server/errors.js";

export interface ProxyRequest {
  readonly method: string;
  readonly pathname: string;
  readonly search: string;
  readonly headers: IncomingHttpHeaders;
  readonly body: Buffer | undefined;
  readonly bodyInfo: BodyInfo | undefined;
  /** The model the client asked for (null when the body has none). */
  readonly requestedModel: string | null;
  /** The API the client speaks (from the path). */
  readonly api: ClientApi;
  readonly errorShape: ErrorShape;
  /** Aborted when the client goes away. */
  readonly signal: Abort;
}

/** What happened, for the request's log line. */
export interface Outcome {
  model: string | null;
  route: string | null;
  attempts: number;
  switched: boolean;
  status: number;
}

export interface Engine {
  readonly config: GatewayConfig;
  readonly upstream: UpstreamClient;
  readonly store: RoutingStore;
  readonly logger: Logger;
  /** Clock for health bookkeeping (tests may inject one). */
  readonly now: () => number;
}

export class DeadlineError extends Error {
  override readonly name = "TimeoutError";
  constructor(ms: number) {
    super(`the request's deadline of ${ms} ms passed`);
  }
}


/**
 * The attempt loop: plan → attempt → classify → decide. Each candidate is
 * tried in order; a transient failure may retry the same model after a
 * backoff, a failure another model can fix moves on to the next candidate,
 * and everything else (including the last candidate's answer) is delivered.
 * Nothing reaches the client before that decision.
 */
export async function runAttempts(
  engine: Engine,
  request: ProxyRequest,
  plan: { readonly candidates: readonly Candidate[]; readonly interchangeable: boolean },
  res: ServerResponse,
  outcome: Outcome,
): Promise<void> {
  const { config, store, logger } = engine;
  const started = engine.now();
  const deadlineAt = started + config.deadlineMs;
  // One signal for the whole request: the client leaving, or the deadline passing.
  const signal = request.signal;
  const deadline = setTimeout(() => signal.abort(new DeadlineError(config.deadlineMs)), config.deadlineMs);

  const failed: FailedAttempt[] = [];
  // Candidates whose upstream cannot serve this API at all are left out before anything is tried: counted as
  // somewhere to fail over to, they would turn a real answer (a 429 the client retries) into their 501.
  const servable = (candidate: Candidate) => !unsupported(request.api, candidate.route.api);
  const candidates = plan.candidates.every(servable) || !plan.candidates.some(servable) ? plan.candidates : plan.candidates.filter(servable);
  const baseBody = request.bodyInfo?.kind === "json" && request.bodyInfo.models && request.body ? withoutKey(request.body, "models") : request.body;
  const wantsStream = request.bodyInfo?.kind === "json" && request.bodyInfo.stream === true;
  const prepare = exchanges(request, baseBody, wantsStream);
  let last: Attempted | undefined;
  let lastExchange: Exchange | undefined;
  let lastIndex = 0;
  let refused: { status: number; message: string } | undefined;

  try {
    for (let index = 0; index < candidates.length; index++) {
      const candidate = candidates[index] as Candidate;
      const health = healthOf(store, candidate);
      const later = candidates.slice(index + 1);
      // A candidate taken by another request's half-open probe is skipped, unless it is the last hope.
      if (health.admission(engine.now()) === "blocked" && later.length > 0) continue;
      const prepared = prepare(candidate);
      if (!prepared.ok) {
        // This candidate cannot take the request in its API (an untranslatable field): another may.
        refused ??= prepared;
        continue;
      }
      const exchange = prepared.exchange;
      const attemptTimes: number[] = [];
      lastIndex = index;

      for (;;) {
        const now = engine.now();
        const remainingMs = deadlineAt - now;
        if (remainingMs <= 0 || signal.aborted) break;
        outcome.attempts++;
        attemptTimes.push(now);
        health.begin(now);
        outcome.model = candidate.model;
        outcome.route = candidate.route.name;
        const alternative = later.some((next) => healthOf(store, next).admission(engine.now()) !== "blocked");

        last = await attempt(engine, request, candidate, exchange, signal, remainingMs, {
          mayInspect: candidates.length > 1,
          // A first-token timeout fails over, so it only applies when there is somewhere to fail over to.
          firstTokenBound: wantsStream && alternative,
          wantsStream,
        });
        lastExchange = exchange;
        if (signal.aborted) {
          // No outcome to judge the model by: the client left, or the deadline passed.
          health.abandon();
          if (!(signal.reason instanceof DeadlineError)) {
            if (last.response) abandon(last.response.body);
            return;
          }
          break;
        }

        const failure = last.failure;
        if (!failure) {
          health.recordSuccess(engine.now(), last.latencyMs);
          break;
        }
        const rule = matchRule(failure, config.rules);
        const retryAfter = last.response ? retryAfterMs(last.response.headers) : undefined;
        countHealth(engine, candidate, failure, rule?.action, retryAfter, last.latencyMs);
        const decision = decide({
          rule,
          status: failure.status,
          retryAfterMs: retryAfter,
          interchangeable: plan.interchangeable,
          healthyAlternative: alternative,
          attemptTimes,
          now: engine.now(),
          remainingMs: deadlineAt - engine.now(),
          policy: config.retry,
        });
        if (decision.next === "deliver") break;
        // A failure that just opened the breaker ends this model's turn: no retry into an open breaker.
        const retrySame = decision.next === "retry" && health.view(engine.now()).state !== "open";
        const next = retrySame ? candidate : later[0];
        if (!next) break;
        failed.push({ model: candidate.model, route: candidate.route.name, reason: last.reason ?? "status", status: failure.status });
        logger.warn(
          {
            event: retrySame ? "retry" : "switch",
            reason: last.reason,
            rule: rule?.name,
            trigger_status: failure.status,
            from_model: candidate.model,
            from_route: candidate.route.name,
            to_model: next.model,
            to_route: next.route.name,
            delay_ms: retrySame && decision.next === "retry" ? decision.delayMs : undefined,
            detail: last.detail,
          },
          retrySame ? "retrying model" : "switching model",
        );
        discard(last, logger);
        last = undefined;
        if (!retrySame || decision.next !== "retry") break;
        await sleep(decision.delayMs, signal);
        if (signal.aborted) break;
      }

      if (last && (!last.failure || isDeliverable(engine, last, later.length))) break;
      if (signal.aborted) break;
    }

    if (signal.aborted && !(signal.reason instanceof DeadlineError)) {
      if (last) discard(last);
      return;
    }
    if (last?.response && !(signal.reason instanceof DeadlineError)) {
      const response = last.response;
      const model = outcome.model;
      const switchedFrom = failed.filter((entry) => entry.model !== model);
      const requested = request.requestedModel;
      const pinnedModel = requested !== null && requested.toLowerCase() !== AUTO_MODEL && !config.groups.has(requested);
      if (switchedFrom.length === 0 && pinnedModel && model !== null && model !== requested) {
        // The pinned model was left out of the plan (cooling down or breaker open): still a switch for the client.
        switchedFrom.push({ model: requested, route: routeFor(config, requested)?.name ?? "", reason: "cooldown", status: null });
      }
      outcome.switched = switchedFrom.length > 0;
      outcome.status = response.statusCode;
      const gatewayHeaders: Record<string, string> = { "x-gateway-attempt-count": String(outcome.attempts) };
      if (model !== null) gatewayHeaders["x-gateway-model-used"] = model;
      if (outcome.switched) gatewayHeaders["x-gateway-switched"] = "1";
      const stream = last.stream;
      const native = last.native;
      const answering = candidates[lastIndex] as Candidate;
      const codec = lastExchange?.codec;
      const answerModel = model ?? requested ?? "";
      let relayBody: ((out: ServerResponse) => Promise<void>) | undefined;
      if (stream) {
        const output = request.api === "messages" ? anthropicOutput({ model: answerModel, stopSequences: stopSequencesOf(request) }) : CHAT_OUTPUT;
        relayBody = (out) =>
          relayChatStream(
            out,
            // Written out, not spread: a spread into a literal takes V8's slow path.
            { reader: stream.reader, held: stream.held, transcript: stream.transcript, malformed: stream.malformed, candidate: answering },
            {
              candidates: [answering, ...candidates.slice(lastIndex + 1)],
              open: streamOpener(engine, request, signal, deadlineAt, prepare, outcome),
              idleMs: (current) => current.route.timeouts.idleMs,
              remainingMs: () => deadlineAt - engine.now(),
              onFailure: (current) => healthOf(store, current).recordFailure(engine.now()),
              logger,
              maxRecoveries: 2,
            },
            output,
          );
      } else if (native) {
        relayBody = (out) =>
          relayStream(out, { reader: native.reader, held: native.held, protocol: native.protocol, idleMs: answering.route.timeouts.idleMs, logger, model: answering.model, route: answering.route.name });
      }
      await deliver(res, config, {
        upstream: response,
        kind: last.kind as ContentKind,
        pending: last.pending,
        payload: last.payload,
        gatewayHeaders,
        notice: outcome.switched ? buildNotice(switchedFrom, model, outcome.route ?? "") : undefined,
        method: request.method,
        relayBody,
        errorShape: request.errorShape,
        sseComment: request.api !== "chat" && request.api !== "other",
        translate:
          codec === "chat-from-messages"
            ? (payload, status) => (status >= 400 ? toOpenAIError(status, payload) : isMessage(payload) ? messagesToChatResponse(payload, answerModel) : undefined)
            : codec === "messages-from-chat"
              ? (payload, status) => (status >= 400 ? toAnthropicError(status, payload) : isChatCompletion(payload) ? chatToMessagesResponse(payload, answerModel, stopSequencesOf(request)) : undefined)
              : undefined,
      });
      return;
    }

    // No answer to pass on: every candidate failed without one, or the deadline passed.
    if (last) discard(last);
    if (!last && refused && !signal.aborted) {
      // No candidate could take the request in its API.
      outcome.status = refused.status;
      sendError(res, refused.status, refused.status === 501 ? "unsupported_api" : "untranslatable_request", refused.message, undefined, request.errorShape);
      return;
    }
    if (last?.errorEvent && !(signal.reason instanceof DeadlineError)) {
      // The stream opened with an error event and nothing is left to try: the client gets it as an HTTP error.
      outcome.status = last.errorEvent.status;
      outcome.switched = new Set([...failed.map((entry) => entry.model), outcome.model]).size > 1;
      const body = JSON.stringify(last.errorEvent.body);
      res.writeHead(outcome.status, {
        "content-type": "application/json; charset=utf-8",
        "content-length": Buffer.byteLength(body),
        "x-gateway-attempt-count": String(outcome.attempts),
        ...(outcome.model !== null ? { "x-gateway-model-used": outcome.model } : {}),
        ...(outcome.switched ? { "x-gateway-switched": "1" } : {}),
      });
      res.end(body);
      return;
    }
    const deadlinePassed = signal.reason instanceof DeadlineError || engine.now() >= deadlineAt;
    const timedOut = deadlinePassed || last?.reason === "timeout";
    // The last candidate's request never got one of the gateway's connections: the gateway is the bottleneck.
    const poolBusy = !deadlinePassed && last?.failure?.poolWait === true;
    const status = poolBusy ? 503 : timedOut ? 504 : 502;
    outcome.status = status;
    outcome.switched = new Set([...failed.map((entry) => entry.model), outcome.model]).size > 1;
    const tried = [...failed, ...(last?.failure ? [{ model: outcome.model, route: outcome.route, reason: last.reason }] : [])]
      .map((entry) => `${entry.model ?? "(passthrough)"} via ${entry.route}: ${entry.reason}`)
      .join("; ");
    sendError(
      res,
      status,
      poolBusy ? "gateway_connections_busy" : deadlinePassed ? "deadline_exceeded" : timedOut ? "upstream_timeout" : "upstream_unreachable",
      poolBusy
        ? `Every connection the gateway may open to the upstream (UPSTREAM_MAX_CONNECTIONS=${config.upstream.maxConnections}) stayed busy until the request's time to wait for an answer ran out: raise UPSTREAM_MAX_CONNECTIONS, or send fewer requests at once. Tried: ${tried}.`
        : deadlinePassed
          ? `The request's deadline (timeouts.deadlineMs, ${config.deadlineMs} ms) passed before an upstream answered. Tried: ${tried || "nothing"}.`
          : timedOut
            ? `No upstream answered in time. Tried: ${tried}.`
            : `No upstream could be reached. Tried: ${tried}.`,
      { "x-gateway-attempt-count": String(outcome.attempts), ...(outcome.switched ? { "x-gateway-switched": "1" } : {}) },
      request.errorShape,
    );
  } finally {
    clearTimeout(deadline);
  }
}

/** Opens a recovery stream (a replay, or a prefill continuation) for a committed Chat Completions stream. */
function streamOpener(
  engine: Engine,
  request: ProxyRequest,
  signal: Abort,
  deadlineAt: number,
  prepare: Preparer,
  outcome: Outcome,
): StreamOpener {
  const { store, logger } = engine;
  return async (next, mode, partial) => {
    const remaining = deadlineAt - engine.now();
    if (remaining <= 0) return undefined;
    const prepared = prepare(next, mode === "prefill" ? partial : undefined, true);
    // Only a Chat Completions stream (native or translated) can take over a Chat Completions relay.
    if (!prepared.ok || !prepared.exchange.chatStream) return undefined;
    const { body, path } = prepared.exchange;
    outcome.attempts++;
    let reopened: UpstreamResponse;
    try {
      reopened = await sendAttempt(engine.upstream.dispatcher(next.route), {
        origin: next.route.origin,
        path,
        method: request.method as Dispatcher.HttpMethod,
        headers: buildUpstreamHeaders(request.headers, next.route, { bodyLength: body?.length, identityEncoding: true }),
        body,
        signal,
        timeoutMs: Math.max(1, Math.min(next.route.timeouts.headersMs, remaining)),
        idleMs: next.route.timeouts.idleMs,
        poolSize: engine.config.upstream.maxConnections,
      });
    } catch (error) {
      // A wait for the gateway's own busy pool says nothing of the upstream.
      if (!(error instanceof PoolWaitTimeoutError)) healthOf(store, next).recordFailure(engine.now());
      return undefined;
    }
    if (reopened.statusCode >= 300 || !contentKind(reopened.headers).sse) {
      logger.warn({ event: "stream_recovery_refused", mode, model: next.model, route: next.route.name, status: reopened.statusCode }, "recovery attempt refused");
      abandon(reopened.body);
      return undefined;
    }
    outcome.model = next.model;
    outcome.route = next.route.name;
    const reader = new EventReader(reopened.body);
    return next.route.api === "anthropic"
      ? new TranslatedSource(reader, new MessagesToChatStream({ model: next.model ?? request.requestedModel ?? "", includeUsage: prepared.exchange.includeUsage }))
      : reader;
  };
}

type Prepared = { readonly ok: true; readonly exchange: Exchange } | { readonly ok: false; readonly status: number; readonly message: string };

/** A candidate's request in its upstream's API; `prefill` adds a trailing assistant message (a continuation). */
type Preparer = (candidate: Candidate, prefill?: string, recovery?: boolean) => Prepared;

/**
 * Builds each candidate's request: the client's body as received (the model
 * spliced in when it changes) for a route that speaks the client's API, a
 * translation for one that speaks the other. The client's body is parsed
 * only when a translation needs it, once.
 */
function exchanges(request: ProxyRequest, baseBody: Buffer | undefined, wantsStream: boolean): Preparer {
  let parsed: Record<string, unknown> | null | undefined;
  const parsedBody = () => {
    if (parsed !== undefined) return parsed;
    try {
      const value: unknown = baseBody ? JSON.parse(baseBody.toString("utf8")) : null;
      parsed = value && typeof value === "object" && !Array.isArray(value) ? (value as Record<string, unknown>) : null;
    } catch {
      parsed = null;
    }
    return parsed;
  };
  const clientChat = request.api === "chat";
  return (candidate, prefill, recovery = false) => {
    const route = candidate.route;
    const refusal = unsupported(request.api, route.api);
    if (refusal) return { ok: false, ...refusal };
    const codec = codecFor(request.api, route.api);
    const path = pathFor(route, request.api, request.pathname, request.search);
    if (!codec) {
      let body =
        baseBody && request.bodyInfo && candidate.model !== null && candidate.model !== request.requestedModel
          ? (withModel(baseBody, request.bodyInfo, candidate.model) ?? baseBody)
          : baseBody;
      // The two rewrites a provider's own rules force on a native body; every other body stays as received.
      let rewritten: Record<string, unknown> | undefined;
      if (body && request.api === "chat" && isGoogleOrigin(route.origin) && body.indexOf('"tool_calls"') >= 0) {
        // A history of calls another model made (before a switch) has no thought signature, which Gemini 3 refuses.
        const client = parsedBody();
        const messages = client ? withThoughtSignatures(client.messages) : undefined;
        if (client && messages) rewritten = { ...client, messages };
      } else if (body && route.api === "anthropic" && mayHaveSystemMessages(body)) {
        // The route pins an older API version than the client's SDK writes for: what it would refuse is rewritten.
        rewritten = withSystemMessagesHoisted(parsedBody(), route.headers["anthropic-version"]);
      }
      if (rewritten) body = Buffer.from(JSON.stringify(candidate.model !== null ? { ...rewritten, model: candidate.model } : rewritten));
      if (prefill !== undefined && body) body = withAssistantPrefix(body, prefill);
      // A Messages client's stream on an Anthropic route is relayed natively; only a recovery of a translated stream reads it as chat.
      const chatStream = wantsStream && (clientChat || (request.api === "messages" && recovery));
      return { ok: true, exchange: { path, body, codec, chatStream, includeUsage: true } };
    }
    let client = parsedBody();
    if (!client) return { ok: false, status: 400, message: "The request body must be a JSON object to be translated for this model's upstream." };
    if (prefill !== undefined && Array.isArray(client.messages)) client = { ...client, messages: [...client.messages, { role: "assistant", content: prefill }] };
    const translated = translateRequest(codec, client, candidate.model ?? request.requestedModel ?? "", route);
    if (!translated.ok) {
      return { ok: false, status: 400, message: `${translated.message}${translated.param ? ` (${translated.param})` : ""} — needed to send this request to ${candidate.model ?? "the model"} on route "${route.name}" (api: ${route.api}).` };
    }
    const streamOptions = client.stream_options as { include_usage?: unknown } | undefined;
    return {
      ok: true,
      exchange: {
        path,
        body: translated.body,
        codec,
        chatStream: wantsStream,
        // An Anthropic client always gets usage; a Chat Completions client only when it asked.
        includeUsage: codec === "messages-from-chat" || streamOptions?.include_usage === true,
      },
    };
  };
}

/** Whether a body may hold a `role: "system"` message: the check that spares every other body a parse. */
function mayHaveSystemMessages(body: Buffer): boolean {
  return body.indexOf('"system"') >= 0 && (body.indexOf('"role":"system"') >= 0 || body.indexOf('"role": "system"') >= 0 || body.indexOf('"role" : "system"') >= 0);
}

/** A 2xx body that is an answer at all: some providers answer 200 with only an error in it. */
function isChatCompletion(payload: unknown): boolean {
  return !!payload && typeof payload === "object" && Array.isArray((payload as { choices?: unknown }).choices) && !(payload as { error?: unknown }).error;
}

function isMessage(payload: unknown): boolean {
  return !!payload && typeof payload === "object" && Array.isArray((payload as { content?: unknown }).content) && (payload as { type?: unknown }).type !== "error";
}

/** The client's `stop_sequences` (an Anthropic request), to tell a stop sequence from a natural end. */
function stopSequencesOf(request: ProxyRequest): string[] | undefined {
  if (request.api !== "messages" || !request.body) return undefined;
  const span = topLevelValueSpan(request.body, "stop_sequences");
  if (!span) return undefined;
  try {
    const value: unknown = JSON.parse(request.body.toString("utf8", span[0], span[1]));
    return Array.isArray(value) ? value.filter((entry): entry is string => typeof entry === "string") : undefined;
  } catch {
    return undefined;
  }
}

/** A failed attempt is passed to the client when no candidate is left to try and it carries an answer. */
function isDeliverable(engine: Engine, attempted: Attempted, laterCount: number): boolean {
  // A stream that opened with an error event has no response to relay, but its error is an answer all the same.
  if (!attempted.response && !attempted.errorEvent) return false;
  if (laterCount === 0) return true;
  // A failure whose rule says "final" is delivered at once.
  const rule = matchRule(attempted.failure as FailureFacts, engine.config.rules);
  return !rule || rule.action === "final";
}

function discard(attempted: Attempted, logger?: Logger): void {
  attempted.native?.reader.destroy();
  if (attempted.stream) {
    attempted.stream.reader.destroy();
    if (attempted.stream.malformed.count > 0) logger?.warn({ event: "malformed_events", count: attempted.stream.malformed.count }, "dropped SSE events that were not JSON");
  }
  const body = attempted.response?.body;
  if (!body || body.destroyed || attempted.pending?.complete) return;
  // An abandoned stream is cut at once: left to run, the model would go on generating (and billing).
  if (attempted.kind?.sse || attempted.reason === "timeout") {
    abandon(body);
    return;
  }
  // Reading the rest of a small error body lets undici keep the connection for the next request.
  body.drain(64 * 1024);
}

/** Records the failure in the model's health; failures that are the request's own do not count against the model. */
function countHealth(engine: Engine, candidate: Candidate, failure: FailureFacts, action: string | undefined, retryAfter: number | undefined, latencyMs: number): void {
  const now = engine.now();
  const health = healthOf(engine.store, candidate);
  if (failure.poolWait) {
    // The request waited for the gateway's own connections and never reached the upstream.
    health.abandon();
    return;
  }
  const modelFault =
    failure.kind !== "status" ||
    failure.status === 429 ||
    (failure.status !== null && failure.status >= 500) ||
    (action === "failover" && (failure.status === 401 || failure.status === 403));
  if (!modelFault) {
    health.recordSuccess(now, latencyMs);
    return;
  }
  health.recordFailure(now, { latencyMs, rateLimited: failure.status === 429, retryAfterMs: retryAfter });
  if (failure.kind === "network") {
    // The route cannot be reached: its other models cannot either.
    for (const model of candidate.route.models) {
      if (model !== candidate.model) engine.store.health(candidate.route.name, model).recordFailure(now, { latencyMs });
    }
  }
}
