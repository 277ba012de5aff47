import { Agent, type Dispatcher } from "undici";
import type { GatewayConfig } from "../config/types.js";

export type UpstreamResponse = Dispatcher.ResponseData;

/**
 * One keep-alive connection pool per upstream origin (undici's Agent keeps a
 * Pool per origin), shared by every request of a gateway instance.
 */
export function createUpstreamAgent(config: GatewayConfig): Agent {
  return new Agent({
    connections: config.upstream.maxConnections,
    keepAliveTimeout: config.upstream.keepAliveTimeoutMs,
    keepAliveMaxTimeout: config.upstream.keepAliveMaxTimeoutMs,
    connect: { timeout: config.connectTimeoutMs },
    // Our own timer bounds the wait for headers (REQUEST_TIMEOUT_MS from the
    // attempt's start, connect included); undici's would start later.
    headersTimeout: 0,
    // Streams may pause while a model thinks; this only bounds a silent upstream.
    bodyTimeout: 300_000,
  });
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
  /** Aborted when the client goes away. */
  signal: AbortSignal;
  timeoutMs: number;
}

/**
 * Sends one attempt and resolves at response headers. Rejects with
 * AttemptTimeoutError when `timeoutMs` passes first, or with the network error.
 * After headers, the body stays tied to the client's signal: a client that goes
 * away aborts it.
 */
export async function sendAttempt(agent: Dispatcher, request: AttemptRequest): Promise<UpstreamResponse> {
  const controller = new AbortController();
  const onClientAbort = () => controller.abort(request.signal.reason);
  if (request.signal.aborted) onClientAbort();
  else request.signal.addEventListener("abort", onClientAbort, { once: true });
  const timeout = new AttemptTimeoutError(request.timeoutMs);
  const timer = setTimeout(() => controller.abort(timeout), request.timeoutMs);
  try {
    return await agent.request({
      origin: request.origin,
      path: request.path,
      method: request.method,
      headers: request.headers,
      body: request.body,
      signal: controller.signal,
    });
  } catch (error) {
    request.signal.removeEventListener("abort", onClientAbort);
    if (controller.signal.reason === timeout) throw timeout;
    throw error;
  } finally {
    clearTimeout(timer);
  }
}
