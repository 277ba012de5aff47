import { createRequire } from "node:module";
import type { Agent as UndiciAgent, Dispatcher } from "undici";
import type { GatewayConfig, Route } from "../config/types.js";
import type { Abort } from "./abort.js";
import { UpstreamBody, type BodyControls } from "./body.js";

export interface UpstreamResponse {
  readonly statusCode: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: UpstreamBody;
}

// Only undici's Agent: the package entry also loads fetch, WebSocket, cookies and
// the rest (about 9 MB of memory per process that the gateway never uses).
const load = createRequire(import.meta.url);
const Agent = load("undici/lib/dispatcher/agent.js") as typeof UndiciAgent;
type Agent = UndiciAgent;
const { parseHeaders } = load("undici/lib/core/util.js") as { parseHeaders(raw: Buffer[]): Record<string, string | string[]> };

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

/**
 * The attempt's time ran out while it still waited for a connection of the
 * gateway's own pool: every one of them was busy (UPSTREAM_MAX_CONNECTIONS),
 * so the upstream never saw the request and is not to blame for it.
 */
export class PoolWaitTimeoutError extends Error {
  override readonly name = "TimeoutError";
  readonly code = "GATEWAY_POOL_WAIT";
  constructor(
    ms: number,
    readonly connections: number,
  ) {
    super(`no free connection to the upstream within ${ms} ms: all ${connections} of the gateway's connections to it (UPSTREAM_MAX_CONNECTIONS) were in use`);
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
  /** The most connections the dispatcher opens to one origin (UPSTREAM_MAX_CONNECTIONS). */
  poolSize: number;
}

/**
 * Sends one attempt and resolves at response headers. Rejects with
 * AttemptTimeoutError when `timeoutMs` passes first, or with the network error.
 * After headers, the body stays tied to `signal`.
 */
export function sendAttempt(dispatcher: Dispatcher, request: AttemptRequest): Promise<UpstreamResponse> {
  return new Promise((resolve, reject) => {
    const handler = new AttemptHandler(resolve, reject, request.signal, request.timeoutMs, dispatcher, request.origin, request.poolSize);
    if (handler.done) return;
    dispatcher.dispatch(
      {
        origin: request.origin,
        path: request.path,
        method: request.method,
        headers: request.headers,
        body: request.body,
        bodyTimeout: request.idleMs,
      },
      handler,
    );
  });
}

/**
 * undici's dispatch handler for one attempt, on its native callback API: no
 * Readable and no promise per chunk. Until response headers, the attempt's
 * timer and the request's signal reject at once, even while the request still
 * waits for a pooled connection; after them, the signal destroys the body.
 */
class AttemptHandler implements Dispatcher.DispatchHandler, BodyControls {
  private abortUpstream: ((error?: Error) => void) | undefined;
  /** Why the attempt ended before undici handed over its abort function. */
  private reason: Error | undefined;
  private body: UpstreamBody | undefined;
  /** The promise is settled (headers came, or the attempt failed before them). */
  done = false;
  private resumeUpstream: (() => void) | undefined;
  private readonly timer: NodeJS.Timeout | undefined;
  private readonly onAbort: () => void;

  constructor(
    private readonly resolve: (response: UpstreamResponse) => void,
    private readonly reject: (error: unknown) => void,
    private readonly signal: Abort,
    timeoutMs: number,
    private readonly dispatcher: Dispatcher,
    private readonly origin: string,
    readonly poolSize: number,
  ) {
    this.onAbort = () => this.cancel(toError(signal.reason));
    if (signal.aborted) {
      this.cancel(toError(signal.reason));
      return;
    }
    signal.addEventListener("abort", this.onAbort);
    this.timer = setTimeout(timeOut, timeoutMs, this, timeoutMs);
  }

  /**
   * Whether a timeout found the request still without a connection (undici
   * calls onConnect once a connected socket takes it) while every connection
   * of the origin's pool was up: it was queued behind them, not connecting.
   */
  waitedForPool(): boolean {
    if (this.abortUpstream !== undefined) return false;
    const stats = (this.dispatcher as Partial<Agent>).stats?.[this.origin];
    if (stats === undefined) return false;
    // A pool of one connection is a Client, whose stats say connected or not.
    const connected = typeof stats.connected === "number" ? stats.connected : stats.connected ? 1 : 0;
    return connected >= this.poolSize;
  }

  /** Ends the attempt: before headers, the promise rejects; after them, the body fails. */
  cancel(error: Error): void {
    if (this.body) {
      this.body.destroy(error);
      return;
    }
    if (this.done) return;
    this.abort(error);
    this.settle();
    this.reject(error);
  }

  // BodyControls: what the body asks of the request.
  resume(): void {
    this.resumeUpstream?.();
  }

  abort(error: Error): void {
    this.release();
    if (this.abortUpstream) this.abortUpstream(error);
    else this.reason ??= error;
  }

  // undici's handler API.
  onConnect(abort: (error?: Error) => void): void {
    if (this.reason) {
      // The attempt gave up while it waited in the pool's queue. abort() would destroy the socket it is
      // being handed, a healthy keep-alive connection; a throw ends just this request (undici catches it).
      throw this.reason;
    }
    this.abortUpstream = abort;
  }

  onHeaders(statusCode: number, rawHeaders: Buffer[], resume: () => void): boolean {
    if (statusCode < 200) return true; // 1xx: the answer is still to come
    if (this.done) return false;
    this.settle();
    this.resumeUpstream = resume;
    const body = new UpstreamBody(this);
    this.body = body;
    this.resolve({ statusCode, headers: parseHeaders(rawHeaders), body });
    return true;
  }

  onData(chunk: Buffer): boolean {
    return this.body ? this.body.push(chunk) : false;
  }

  onComplete(): void {
    this.release();
    this.body?.finish();
  }

  onError(error: Error): void {
    this.release();
    if (this.body) this.body.fail(error);
    else if (!this.done) {
      this.settle();
      this.reject(error);
    }
  }

  private settle(): void {
    this.done = true;
    clearTimeout(this.timer);
  }

  /** The request's signal must not hold on to a finished attempt. */
  private release(): void {
    this.signal.removeEventListener("abort", this.onAbort);
  }
}

function timeOut(handler: AttemptHandler, ms: number): void {
  handler.cancel(handler.waitedForPool() ? new PoolWaitTimeoutError(ms, handler.poolSize) : new AttemptTimeoutError(ms));
}

function toError(reason: unknown): Error {
  return reason instanceof Error ? reason : new Error("the request was aborted");
}

/** Cuts an upstream body the gateway no longer wants. */
export function abandon(body: UpstreamBody): void {
  body.destroy();
}
