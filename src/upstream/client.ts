import { createRequire } from "node:module";
import type { Agent as UndiciAgent, Dispatcher } from "undici";
import type { GatewayConfig, Route } from "../config/types.js";
import type { Abort } from "./abort.js";

export type UpstreamResponse = Dispatcher.ResponseData;

// Only undici's Agent: the package entry also loads fetch, WebSocket, cookies and
// the rest (about 9 MB of memory per process that the gateway never uses).
// The request API is added to Dispatcher.prototype by that entry, so it is called on the Agent here.
const load = createRequire(import.meta.url);
const Agent = load("undici/lib/dispatcher/agent.js") as typeof UndiciAgent;
type Agent = UndiciAgent;
const undiciRequest = load("undici/lib/api/api-request.js") as (this: Dispatcher, options: Dispatcher.RequestOptions) => Promise<UpstreamResponse>;

/**
 * Keep-alive connection pools, one per upstream origin (undici's Agent keeps a
 * Pool per origin), shared by every request of a gateway instance. A route
 * with its own connect timeout gets an Agent of its own, since undici sets that
 * timeout per Agent.
 */
export class UpstreamClient {
  private readonly agents = new Map<number, Agent>();

  constructor(private readonly config: GatewayConfig) {}

  dispatcher(route: Route): Agent {
    const connectMs = route.timeouts.connectMs;
    let agent = this.agents.get(connectMs);
    if (!agent) {
      agent = new Agent({
        connections: this.config.upstream.maxConnections,
        keepAliveTimeout: this.config.upstream.keepAliveTimeoutMs,
        keepAliveMaxTimeout: this.config.upstream.keepAliveMaxTimeoutMs,
        connect: { timeout: connectMs },
        // The attempt's own timer bounds the wait for headers (connect included).
        headersTimeout: 0,
      });
      this.agents.set(connectMs, agent);
    }
    return agent;
  }

  async close(): Promise<void> {
    await Promise.all([...this.agents.values()].map((agent) => agent.destroy()));
    this.agents.clear();
  }
}

export class AttemptTimeoutError extends Error {
  override readonly name = "TimeoutError";
  readonly code = "UND_ERR_HEADERS_TIMEOUT";
  constructor(ms: number) {
    super(`no response headers within ${ms} ms`);
  }
}

export interface AttemptRequest {
  origin: string;
  path: string;
  method: Dispatcher.HttpMethod;
  headers: Record<string, string | string[]>;
  body: Buffer | undefined;
  /** Aborted when the client goes away or the request's deadline passes. */
  signal: Abort;
  /** Bound on the wait for response headers, connect included. */
  timeoutMs: number;
  /** Bound on silence while the body streams. */
  idleMs: number;
}

/**
 * Sends one attempt and resolves at response headers. Rejects with
 * AttemptTimeoutError when `timeoutMs` passes first, or with the network error.
 * After headers, the body stays tied to `signal`.
 */
export async function sendAttempt(dispatcher: Dispatcher, request: AttemptRequest): Promise<UpstreamResponse> {
  // A child signal: the timeout ends this attempt only, the request's signal ends everything.
  const controller = request.signal.child();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    controller.abort(new AttemptTimeoutError(request.timeoutMs));
  }, request.timeoutMs);
  try {
    const response = await undiciRequest.call(dispatcher, {
      origin: request.origin,
      path: request.path,
      method: request.method,
      headers: request.headers,
      body: request.body,
      signal: controller as unknown as AbortSignal,
      bodyTimeout: request.idleMs,
    });
    // The link to the request's signal must not outlive the body.
    response.body.once("close", controller.dispose);
    return response;
  } catch (error) {
    controller.dispose();
    if (timedOut) throw controller.reason;
    throw error;
  } finally {
    clearTimeout(timer);
  }
}

const ignore = () => undefined;

/**
 * Cuts an upstream body the gateway no longer wants. undici reports a body
 * destroyed before its end as an 'error'; with no listener that would be an
 * uncaught exception, so one is attached first.
 */
export function abandon(body: { on(event: "error", listener: (error: Error) => void): unknown; destroy(): unknown; destroyed?: boolean }): void {
  body.on("error", ignore);
  if (!body.destroyed) body.destroy();
}
