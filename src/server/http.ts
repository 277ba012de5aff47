import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { AUTO_MODEL, WILDCARD_MODEL } from "../config/names.js";
import type { GatewayConfig } from "../config/types.js";
import type { Logger } from "../observe/logger.js";
import { DeadlineError, runAttempts, type Engine, type Outcome } from "../proxy/attempts.js";
import { Abort } from "../upstream/abort.js";
import { inspectBody, type BodyInfo } from "../proxy/request-body.js";
import { clientApiOf, speaksAnthropic, type ClientApi } from "../proxy/api.js";
import { planCandidates } from "../routing/plan.js";
import { readBody, rejectTooLarge } from "./body.js";
import { sendError, sendJson, type ErrorShape } from "./errors.js";

export type ServerDeps = Engine;

/** Request targets are parsed against a fixed base: the client can never pick the upstream host. */
const TARGET_BASE = "http://gateway.invalid";

export function createGatewayServer(deps: ServerDeps): Server {
  const server = createServer(
    {
      // Bounds on a slow or silent client: headers in 30 s, the whole request in 5 min.
      headersTimeout: 30_000,
      requestTimeout: 300_000,
      keepAliveTimeout: 65_000,
    },
    (req, res) => handle(deps, req, res),
  );
  server.on("checkContinue", (req, res) => {
    // Refuse an oversized upload before the client sends it.
    if (Number(req.headers["content-length"]) > deps.config.maxBodyBytes) {
      rejectTooLarge(req, res, deps.config.maxBodyBytes, shapeOfPath(req.url));
      return;
    }
    res.writeContinue();
    handle(deps, req, res);
  });
  server.on("clientError", (error: NodeJS.ErrnoException, socket) => {
    if (!socket.writable || error.code === "ECONNRESET") {
      socket.destroy();
      return;
    }
    const body = JSON.stringify({ error: { message: "Malformed HTTP request.", type: "invalid_request_error", code: "bad_request", param: null } });
    socket.end(`HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
  });
  return server;
}

function handle(deps: ServerDeps, req: IncomingMessage, res: ServerResponse): void {
  dispatch(deps, req, res).catch((error: unknown) => {
    deps.logger.error({ err: error instanceof Error ? { message: error.message, stack: error.stack } : String(error), path: safePath(req) }, "request failed");
    if (!res.headersSent) sendError(res, 500, "internal_error", "The gateway failed to handle this request.", undefined, shapeOfPath(req.url));
    else if (!res.writableEnded) res.destroy();
  });
}

/** Anything URL parsing could change: dot segments (plain or encoded), backslashes, `//`, or not origin-form. */
const NEEDS_URL_PARSING = /%2e|\/\.|\\|\/\//i;
const NOT_PRINTABLE = /[^\x21-\x7e]/;

/**
 * The path and query of a request target. The common case (a plain
 * origin-form path) is split by hand; anything else goes through WHATWG URL
 * parsing, which normalises dot segments and ignores an absolute-form host.
 */
function parseTarget(raw: string): { pathname: string; search: string } | undefined {
  const query = raw.indexOf("?");
  const path = query < 0 ? raw : raw.slice(0, query);
  if (raw.charCodeAt(0) === 0x2f && !NEEDS_URL_PARSING.test(path) && !NOT_PRINTABLE.test(raw)) {
    return { pathname: path, search: query < 0 ? "" : raw.slice(query) };
  }
  try {
    const url = new URL(raw, TARGET_BASE);
    return { pathname: url.pathname, search: url.search };
  } catch {
    return undefined;
  }
}

/** The error shape a client on this path reads, before the path is routed (Anthropic's paths get Anthropic's). */
function shapeOfPath(url: string | undefined): ErrorShape {
  const target = url ? parseTarget(url) : undefined;
  const api = target ? clientApiOf(target.pathname)?.api : undefined;
  return api !== undefined && speaksAnthropic(api) ? "anthropic" : "openai";
}

function safePath(req: IncomingMessage): string {
  return (req.url ?? "").split("?")[0]?.slice(0, 200) ?? "";
}

async function dispatch(deps: ServerDeps, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const { config } = deps;
  const method = req.method ?? "GET";
  const target = parseTarget(req.url ?? "/");
  if (!target) {
    sendError(res, 400, "invalid_path", "The request target is not a valid path.");
    return;
  }
  const { pathname, search } = target;
  const readOnly = method === "GET" || method === "HEAD";

  if (pathname === "/health" && readOnly) {
    sendJson(res, 200, healthBody(deps), method);
    return;
  }
  if (pathname === "/v1/models" && readOnly) {
    sendJson(res, 200, { object: "list", data: modelList(config) }, method);
    return;
  }
  if (pathname.startsWith("/v1/models/") && readOnly) {
    const id = decodeURIComponent(pathname.slice("/v1/models/".length));
    const model = modelList(config).find((entry) => entry.id === id);
    if (model) sendJson(res, 200, model, method);
    else sendError(res, 404, "model_not_found", `The model "${id}" is not configured on this gateway.`);
    return;
  }
  const client = pathname === "/v1" || pathname.startsWith("/v1/") || pathname.startsWith("/anthropic/") ? clientApiOf(pathname) : undefined;
  if (!client) {
    sendError(res, 404, "not_found", `No route for ${method} ${pathname}. The gateway serves /v1/*, /anthropic/v1/messages, /health.`);
    return;
  }

  const started = performance.now();
  const abort = new Abort();
  res.on("close", () => {
    if (!res.writableFinished) abort.abort();
  });
  const outcome: Outcome = { model: null, route: null, attempts: 0, switched: false, status: 0 };
  let requestedModel: string | null = null;
  try {
    requestedModel = await proxy(deps, req, res, method, client.pathname, search, client.api, abort, outcome);
  } finally {
    if (abort.aborted && !(abort.reason instanceof DeadlineError)) outcome.status = 499;
    else if (outcome.status === 0) outcome.status = res.statusCode;
    logRequest(deps.logger, method, pathname, requestedModel, outcome, started);
  }
}

/** Reads the body, plans the candidates and runs the attempts; returns the requested model, for the log. */
async function proxy(
  deps: ServerDeps,
  req: IncomingMessage,
  res: ServerResponse,
  method: string,
  pathname: string,
  search: string,
  api: ClientApi,
  signal: Abort,
  outcome: Outcome,
): Promise<string | null> {
  const { config } = deps;
  const errorShape: ErrorShape = speaksAnthropic(api) ? "anthropic" : "openai";
  let body: Buffer | undefined;
  const readOnly = method === "GET" || method === "HEAD";
  if (!readOnly || req.headers["content-length"] !== undefined || req.headers["transfer-encoding"] !== undefined) {
    const read = await readBody(req, config.maxBodyBytes);
    if (!read.ok) {
      if (read.reason === "too_large") rejectTooLarge(req, res, config.maxBodyBytes, errorShape);
      return null;
    }
    body = read.body;
  }

  let bodyInfo: BodyInfo | undefined;
  if (body && body.length > 0) {
    bodyInfo = inspectBody(body, req.headers["content-type"]);
    if (bodyInfo.kind === "invalid_json") {
      sendError(res, 400, "invalid_json", bodyInfo.message, undefined, errorShape);
      return null;
    }
  }
  if (readOnly && body?.length === 0) body = undefined;
  const requestedModel = bodyInfo && bodyInfo.kind !== "invalid_json" ? bodyInfo.model : null;

  const requestModels = bodyInfo?.kind === "json" ? bodyInfo.models : undefined;
  const plan = planCandidates(config, deps.store, requestedModel, requestModels, deps.now());
  if (!plan.ok) {
    sendError(res, plan.status, plan.code, plan.message, undefined, errorShape);
    return requestedModel;
  }
  await runAttempts(deps, { method, pathname, search, headers: req.headers, body, bodyInfo, requestedModel, api, errorShape, signal }, plan, res, outcome);
  return requestedModel;
}

function logRequest(logger: Logger, method: string, path: string, requested: string | null, outcome: Outcome, started: number): void {
  if (!logger.isLevelEnabled("info")) return;
  logger.info(
    {
      event: "request",
      method,
      path,
      requested_model: requested,
      model: outcome.model,
      route: outcome.route,
      attempts: outcome.attempts,
      switched: outcome.switched,
      status: outcome.status,
      duration_ms: Math.round(performance.now() - started),
    },
    outcome.status === 499 ? "client closed request" : "request",
  );
}

function healthBody({ config, store, now }: ServerDeps) {
  const at = now();
  return {
    status: "ok",
    retryStatusCodes: [...config.retryStatusCodes],
    enabledRouteCount: config.routes.length,
    models: [...config.modelRoutes].map(([model, route]) => {
      const view = store.health(route.name, model).view(at);
      return {
        model,
        route: route.name,
        state: view.state,
        cooldown_remaining_ms: view.cooldownRemainingMs,
        success_rate: view.successRate,
        p50_latency_ms: view.p50LatencyMs,
        requests: view.requests,
        consecutive_failures: view.consecutiveFailures,
      };
    }),
    groups: Object.fromEntries([...config.groups].map(([name, group]) => [name, group.models])),
  };
}

function modelList(config: GatewayConfig) {
  const models = [...config.modelRoutes].map(([id, route]) => ({ id, object: "model", created: 0, owned_by: route.name }));
  for (const id of [AUTO_MODEL, ...config.groups.keys()]) models.push({ id, object: "model", created: 0, owned_by: "openclaw-autoproxy" });
  return models.filter((model) => model.id !== WILDCARD_MODEL);
}
