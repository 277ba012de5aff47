import type { IncomingHttpHeaders, ServerResponse } from "node:http";
import type { Dispatcher } from "undici";
import type { GatewayConfig } from "../config/types.js";
import type { Logger } from "../observe/logger.js";
import type { Candidate } from "../routing/plan.js";
import { classifyError, classifyJsonBody, classifyStatus, type Verdict } from "../upstream/classify.js";
import { sendAttempt, type UpstreamResponse } from "../upstream/client.js";
import { buildUpstreamHeaders } from "../upstream/headers.js";
import { upstreamPath } from "../upstream/url.js";
import { sendError } from "../server/errors.js";
import { buildNotice, type FailedAttempt } from "./notice.js";
import { withModel, type BodyInfo } from "./request-body.js";
import { collect, contentKind, deliver, INSPECT_LIMIT, type Collected } from "./respond.js";

export interface ProxyRequest {
  readonly method: string;
  readonly pathname: string;
  readonly search: string;
  readonly headers: IncomingHttpHeaders;
  readonly body: Buffer | undefined;
  readonly bodyInfo: BodyInfo | undefined;
  /** The model the client asked for (null when the body has none). */
  readonly requestedModel: string | null;
  /** Aborted when the client goes away. */
  readonly signal: AbortSignal;
}

/** What happened, for the request's log line. */
export interface Outcome {
  model: string | null;
  route: string | null;
  attempts: number;
  switched: boolean;
  status: number;
}

/**
 * The attempt loop: try each candidate in order; a retryable outcome (status in
 * the retry set, an error status hidden in a JSON body, a network error, a
 * timeout) moves on to the next candidate before anything reaches the client.
 * The last candidate's answer, whatever it is, is delivered.
 */
export async function runAttempts(
  config: GatewayConfig,
  agent: Dispatcher,
  logger: Logger,
  request: ProxyRequest,
  candidates: readonly Candidate[],
  res: ServerResponse,
  outcome: Outcome,
): Promise<void> {
  const failed: FailedAttempt[] = [];
  const mayInspect = candidates.length > 1;
  let lastVerdict: Verdict | undefined;

  for (let index = 0; index < candidates.length; index++) {
    const candidate = candidates[index] as Candidate;
    const hasNext = index < candidates.length - 1;
    const body =
      request.body && request.bodyInfo && candidate.model !== null && candidate.model !== request.requestedModel
        ? (withModel(request.body, request.bodyInfo, candidate.model) ?? request.body)
        : request.body;
    outcome.attempts = index + 1;
    outcome.model = candidate.model;
    outcome.route = candidate.route.name;

    let upstream: UpstreamResponse;
    try {
      upstream = await sendAttempt(agent, {
        origin: candidate.route.origin,
        path: upstreamPath(candidate.route, request.pathname, request.search),
        method: request.method as Dispatcher.HttpMethod,
        headers: buildUpstreamHeaders(request.headers, candidate.route, {
          bodyLength: body === undefined ? undefined : body.length,
          identityEncoding: mayInspect,
        }),
        body,
        signal: request.signal,
        timeoutMs: config.requestTimeoutMs,
      });
    } catch (error) {
      if (request.signal.aborted) return;
      lastVerdict = classifyError(error);
      recordFailure(logger, failed, candidate, lastVerdict, candidates[index + 1], (error as Error).message);
      continue;
    }

    let verdict = classifyStatus(upstream.statusCode, config.retryStatusCodes);
    let pending: Collected | undefined;
    const kind = contentKind(upstream.headers);
    if (verdict.kind === "ok" && hasNext && upstream.statusCode < 300 && kind.json && !kind.encoded && request.method !== "HEAD") {
      try {
        pending = await collect(upstream.body, INSPECT_LIMIT);
      } catch (error) {
        if (request.signal.aborted) return;
        lastVerdict = classifyError(error);
        recordFailure(logger, failed, candidate, lastVerdict, candidates[index + 1], (error as Error).message);
        continue;
      }
      if (pending.complete) verdict = classifyJsonBody(Buffer.concat(pending.chunks, pending.size).toString("utf8"), config.retryStatusCodes);
    }

    if (verdict.kind === "retryable" && hasNext) {
      // Reading the rest lets undici keep the connection for the next request.
      if (!pending?.complete) upstream.body.dump().catch(() => undefined);
      lastVerdict = verdict;
      recordFailure(logger, failed, candidate, verdict, candidates[index + 1]);
      continue;
    }

    if (request.signal.aborted) {
      upstream.body.destroy();
      return;
    }
    const gatewayHeaders: Record<string, string> = { "x-gateway-attempt-count": String(index + 1) };
    if (candidate.model !== null) gatewayHeaders["x-gateway-model-used"] = candidate.model;
    if (failed.length > 0) gatewayHeaders["x-gateway-switched"] = "1";
    outcome.switched = failed.length > 0;
    outcome.status = upstream.statusCode;
    await deliver(res, config, {
      upstream,
      kind,
      pending,
      gatewayHeaders,
      notice: buildNotice(failed, candidate.model, candidate.route.name),
      method: request.method,
    });
    return;
  }

  // Every candidate failed without an answer to pass on.
  const timedOut = lastVerdict?.kind === "retryable" && lastVerdict.reason === "timeout";
  const status = timedOut ? 504 : 502;
  outcome.status = status;
  outcome.switched = failed.length > 1;
  const tried = failed.map((attempt) => `${attempt.model ?? "(passthrough)"} via ${attempt.route}: ${attempt.reason}`).join("; ");
  sendError(
    res,
    status,
    timedOut ? "upstream_timeout" : "upstream_unreachable",
    timedOut
      ? `No upstream answered within REQUEST_TIMEOUT_MS (${config.requestTimeoutMs} ms). Tried: ${tried}.`
      : `No upstream could be reached. Tried: ${tried}.`,
    {
      "x-gateway-attempt-count": String(candidates.length),
      ...(failed.length > 1 ? { "x-gateway-switched": "1" } : {}),
    },
  );
}

function recordFailure(
  logger: Logger,
  failed: FailedAttempt[],
  candidate: Candidate,
  verdict: Verdict,
  next: Candidate | undefined,
  detail?: string,
): void {
  if (verdict.kind !== "retryable") return;
  failed.push({ model: candidate.model, route: candidate.route.name, reason: verdict.reason, status: verdict.status });
  logger.warn(
    {
      event: next ? "switch" : "attempt_failed",
      reason: verdict.reason,
      trigger_status: verdict.status,
      from_model: candidate.model,
      from_route: candidate.route.name,
      to_model: next?.model,
      to_route: next?.route.name,
      detail,
    },
    next ? "switching model" : "last candidate failed",
  );
}
