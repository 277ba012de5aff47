/**
 * A fault-injecting mock OpenAI upstream for the failover tests (issue 3). Its
 * behaviour is a per-request script: `faults.next([...])` queues one fault per
 * coming request, and once the queue is empty `faults.otherwise(...)` (default
 * `ok`) answers, either a fixed fault or a function of the request's index and
 * arrival time. Every request is recorded with its arrival time
 * (performance.now()), the fault it got, and when and how its exchange ended,
 * so tests can assert attempt counts, their spacing and that abandoned
 * attempts were really abandoned. Answers are streamed (SSE) when the request
 * asks for `stream: true`.
 *
 * Built on startMockUpstream, on 127.0.0.1. The next issue extends the `Fault`
 * union with mid-stream faults.
 */
import assert from "node:assert/strict";
import type { ServerResponse } from "node:http";
import type { TestContext } from "node:test";
import OpenAI, { APIError } from "openai";
import { chatCompletion, chatCompletionEvents } from "../../src/demo/mock-openai.js";
import type { TestGateway } from "./gateway.js";
import { sendJson, startMockUpstream, type MockUpstream, type Received } from "./mock-upstream.js";
import { sdk, useGateway } from "./sdk.js";

export type Fault =
  /** A chat completion (SSE when the request streams), saying which upstream answered. */
  | { readonly kind: "ok"; readonly text?: string }
  /** An OpenAI-shaped error answer; `retryAfter` (seconds or a date) and `retryAfterMs` become headers. */
  | {
      readonly kind: "status";
      readonly status: number;
      readonly retryAfter?: string;
      readonly retryAfterMs?: string;
      readonly code?: string;
      readonly type?: string;
      readonly message?: string;
    }
  /** 400 context_length_exceeded, as OpenAI answers a prompt over the model's window. */
  | { readonly kind: "context-length" }
  /** 400 content_policy_violation, as OpenAI answers a refused prompt. */
  | { readonly kind: "content-policy" }
  /** The socket is destroyed before any response byte. */
  | { readonly kind: "reset" }
  /** Never answers; the exchange ends only when the client (the gateway) closes it. */
  | { readonly kind: "hang" }
  /** Waits `ms` before the headers, then answers with `then` (default ok). */
  | { readonly kind: "delay"; readonly ms: number; readonly then?: Fault }
  /** Headers at once, then the first `data:` event only after `ms` (non-streamed requests: the body after `ms`). */
  | { readonly kind: "slow-first-token"; readonly ms: number; readonly text?: string }
  /** 503 while the upstream's `down` flag is set, else ok: flip the flag to end the outage. */
  | { readonly kind: "flap" };

export type Script = (index: number, at: number) => Fault;

/** One request as the faulty upstream saw it. */
export interface FaultRequest {
  /** 0-based position among the requests this upstream received. */
  readonly index: number;
  /** performance.now() when the request arrived. */
  readonly at: number;
  readonly model: unknown;
  readonly stream: boolean;
  readonly json: Record<string, unknown> | undefined;
  readonly received: Received;
  /** The fault the script chose (after resolving `flap`). */
  readonly fault: Fault;
  /** performance.now() when the exchange ended (answered or cut), once it has. */
  endedAt: number | undefined;
  /** True when the client went away before the answer was complete. */
  aborted: boolean;
  /** Resolves when the exchange ends, either way. */
  readonly ended: Promise<void>;
}

export interface FaultUpstream {
  /** A label used in answers: "Hello from <name>." */
  readonly name: string;
  /** http://127.0.0.1:PORT */
  readonly origin: string;
  readonly requests: readonly FaultRequest[];
  /** Number of requests received so far. */
  readonly count: number;
  /** Arrival times (performance.now()) of every request so far. */
  times(): number[];
  /** The text an `ok` answer from this upstream carries. */
  readonly text: string;
  /** Queues one fault per coming request; after the queue, `otherwise` answers. */
  next(faults: readonly Fault[]): FaultUpstream;
  /** What answers once the queue is empty (default: ok). */
  otherwise(fault: Fault | Script): FaultUpstream;
  /** The flap flag: while true, a `flap` fault answers 503. */
  down: boolean;
  /** Resolves when at least `n` requests have arrived; rejects after `timeoutMs`. */
  waitForRequests(n: number, timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

export const contextLengthBody = {
  error: {
    message: "This model's maximum context length is 8192 tokens. However, your messages resulted in 9000 tokens. Please reduce the length of the messages.",
    type: "invalid_request_error",
    param: "messages",
    code: "context_length_exceeded",
  },
};

export const contentPolicyBody = {
  error: {
    message: "Your request was rejected as a result of our safety system.",
    type: "invalid_request_error",
    param: null,
    code: "content_policy_violation",
  },
};

/** The exact bytes an error fault answers with, so a test can check a pass-through is unchanged. */
export function faultBody(fault: Extract<Fault, { kind: "status" | "context-length" | "content-policy" }>): string {
  if (fault.kind === "context-length") return JSON.stringify(contextLengthBody);
  if (fault.kind === "content-policy") return JSON.stringify(contentPolicyBody);
  return JSON.stringify({
    error: {
      message: fault.message ?? `mock upstream answered ${fault.status}`,
      type: fault.type ?? (fault.status === 429 ? "rate_limit_error" : fault.status >= 500 ? "server_error" : "invalid_request_error"),
      param: null,
      code: fault.code ?? (fault.status === 429 ? "rate_limit_exceeded" : `status_${fault.status}`),
    },
  });
}

/** Starts a faulty upstream; `name` labels its answers. */
export async function startFaultUpstream(name: string): Promise<FaultUpstream> {
  const queue: Fault[] = [];
  let fallback: Fault | Script = { kind: "ok" };
  const requests: FaultRequest[] = [];
  const waiters: { n: number; resolve: () => void }[] = [];
  const text = `Hello from ${name}.`;
  const timers = new Set<NodeJS.Timeout>();
  let down = false;

  const later = (ms: number, fn: () => void) => {
    const timer = setTimeout(() => {
      timers.delete(timer);
      fn();
    }, ms);
    timers.add(timer);
    return timer;
  };
  const cancel = (timer: NodeJS.Timeout | undefined) => {
    if (timer === undefined) return;
    clearTimeout(timer);
    timers.delete(timer);
  };

  const answerOk = (entry: FaultRequest, res: ServerResponse, body = text) => {
    const model = typeof entry.model === "string" ? entry.model : "unknown";
    if (entry.stream) {
      const usage = (entry.json?.stream_options as { include_usage?: boolean } | undefined)?.include_usage === true;
      if (!res.headersSent) res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
      for (const event of chatCompletionEvents(model, body.split(/(?<= )/), `chatcmpl-${name}`, usage)) res.write(event);
      res.end();
      return;
    }
    const payload = JSON.stringify(chatCompletion(model, body, `chatcmpl-${name}`));
    if (!res.headersSent) res.writeHead(200, { "content-type": "application/json", "content-length": String(Buffer.byteLength(payload)) });
    res.end(payload);
  };

  const play = (fault: Fault, entry: FaultRequest, res: ServerResponse): void => {
    switch (fault.kind) {
      case "ok":
        answerOk(entry, res, fault.text ?? text);
        return;
      case "status": {
        const headers: Record<string, string> = {};
        if (fault.retryAfter !== undefined) headers["retry-after"] = fault.retryAfter;
        if (fault.retryAfterMs !== undefined) headers["retry-after-ms"] = fault.retryAfterMs;
        sendJson(res, fault.status, JSON.parse(faultBody(fault)), headers);
        return;
      }
      case "context-length":
        sendJson(res, 400, contextLengthBody);
        return;
      case "content-policy":
        sendJson(res, 400, contentPolicyBody);
        return;
      case "reset":
        res.socket?.destroy();
        return;
      case "hang":
        return;
      case "delay": {
        const timer = later(fault.ms, () => {
          if (!res.destroyed) play(fault.then ?? { kind: "ok" }, entry, res);
        });
        res.once("close", () => cancel(timer));
        return;
      }
      case "slow-first-token": {
        if (entry.stream) {
          res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
          res.flushHeaders();
        }
        const timer = later(fault.ms, () => {
          if (!res.destroyed) answerOk(entry, res, fault.text ?? text);
        });
        res.once("close", () => cancel(timer));
        return;
      }
      case "flap":
        // A scripted `flap` is resolved on arrival; this is a `delay` whose `then` is a flap.
        play(down ? { kind: "status", status: 503, message: `${name} is down` } : { kind: "ok" }, entry, res);
        return;
    }
  };

  const mock: MockUpstream = await startMockUpstream((received, res) => {
    const index = requests.length;
    let chosen = queue.shift() ?? (typeof fallback === "function" ? fallback(index, received.at) : fallback);
    if (chosen.kind === "flap") chosen = down ? { kind: "status", status: 503, message: `${name} is down` } : { kind: "ok" };
    let settle!: () => void;
    const ended = new Promise<void>((resolve) => (settle = resolve));
    const entry: FaultRequest = {
      index,
      at: received.at,
      model: received.json?.model,
      stream: received.json?.stream === true,
      json: received.json,
      received,
      fault: chosen,
      endedAt: undefined,
      aborted: false,
      ended,
    };
    requests.push(entry);
    res.once("close", () => {
      entry.endedAt = performance.now();
      entry.aborted = !res.writableFinished;
      settle();
    });
    for (const waiter of [...waiters]) {
      if (requests.length >= waiter.n) {
        waiters.splice(waiters.indexOf(waiter), 1);
        waiter.resolve();
      }
    }
    play(chosen, entry, res);
  });

  const upstream: FaultUpstream = {
    name,
    origin: mock.origin,
    requests,
    get count() {
      return requests.length;
    },
    times: () => requests.map((request) => request.at),
    text,
    next(faults) {
      queue.push(...faults);
      return upstream;
    },
    otherwise(fault) {
      fallback = fault;
      return upstream;
    },
    get down() {
      return down;
    },
    set down(value: boolean) {
      down = value;
    },
    waitForRequests(n, timeoutMs = 10_000) {
      if (requests.length >= n) return Promise.resolve();
      return new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.splice(waiters.indexOf(waiter), 1);
          reject(new Error(`${name}: ${requests.length} requests after ${timeoutMs} ms, waiting for ${n}`));
        }, timeoutMs);
        const waiter = {
          n,
          resolve: () => {
            clearTimeout(timer);
            resolve();
          },
        };
        waiters.push(waiter);
      });
    },
    async close() {
      for (const timer of timers) clearTimeout(timer);
      timers.clear();
      await mock.close();
    },
  };
  return upstream;
}

// ---------------------------------------------------------------------------
// Helpers for the failover end-to-end tests: a gateway in front of one faulty
// upstream per model, the openai SDK (maxRetries: 0) streaming or not, and
// the gateway's /health view of a model.

/** A faulty upstream closed when the test ends. */
export async function useFaults(t: TestContext, name: string): Promise<FaultUpstream> {
  const upstream = await startFaultUpstream(name);
  t.after(() => upstream.close());
  return upstream;
}

export interface FailoverSetup {
  readonly gw: TestGateway;
  readonly client: OpenAI;
  /** The upstream of each model, by model name. */
  readonly up: Readonly<Record<string, FaultUpstream>>;
}

export interface FailoverOptions {
  /** routes.yml text put before `routes:` (groups, fallbacks, retry, timeouts, breaker, auto…). */
  readonly yaml?: string;
  readonly env?: Record<string, string>;
  /** Extra route lines per model, indented by 4 spaces (route-level fallbacks, timeouts). */
  readonly routeExtra?: Readonly<Record<string, string>>;
}

/** One route (`route-<model>`) and one faulty upstream per model, in order, behind a real gateway. */
export async function failoverGateway(t: TestContext, models: readonly string[], options: FailoverOptions = {}): Promise<FailoverSetup> {
  const up: Record<string, FaultUpstream> = {};
  let routes = "routes:\n";
  for (const model of models) {
    const upstream = await useFaults(t, model);
    up[model] = upstream;
    routes += `  - name: route-${model}\n    url: ${upstream.origin}/v1\n    isBaseUrl: true\n    model: ${model}\n${options.routeExtra?.[model] ?? ""}`;
  }
  const gw = await useGateway(t, `${options.yaml ?? ""}${routes}`, options.env ?? {});
  return { gw, client: sdk(gw), up };
}

export interface Answer {
  /** The assistant text (concatenated deltas when streamed). */
  readonly text: string;
  /** `model` of the completion, or of every streamed chunk. */
  readonly models: readonly string[];
  readonly headers: Headers;
  /** The JSON `gateway_notice`, when there is one (non-streamed answers). */
  readonly notice: Record<string, unknown> | undefined;
  /** Milliseconds from the call to the end of the answer (the whole stream included). */
  readonly elapsed: number;
}

export interface AskOptions {
  readonly stream: boolean;
  /** Extra body fields (e.g. `models`). */
  readonly extra?: Record<string, unknown>;
  readonly messages?: readonly { role: "user" | "system"; content: string }[];
}

const defaultMessages = [{ role: "user" as const, content: "Hi" }];

/** A chat completion through the gateway with the openai SDK, streamed (for await, as OpenClaw does) or not. */
export async function ask(client: OpenAI, model: string, options: AskOptions): Promise<Answer> {
  const started = performance.now();
  const messages = options.messages ?? defaultMessages;
  if (options.stream) {
    const params = { model, messages, stream: true, stream_options: { include_usage: true }, ...options.extra };
    const { data: stream, response } = await client.chat.completions
      .create(params as unknown as OpenAI.ChatCompletionCreateParamsStreaming)
      .withResponse();
    let text = "";
    const models: string[] = [];
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta?.content ?? "";
      models.push(chunk.model);
    }
    return { text, models, headers: response.headers, notice: undefined, elapsed: performance.now() - started };
  }
  const params = { model, messages, ...options.extra };
  const { data, response } = await client.chat.completions.create(params as unknown as OpenAI.ChatCompletionCreateParamsNonStreaming).withResponse();
  const notice = (data as unknown as { gateway_notice?: Record<string, unknown> }).gateway_notice;
  return { text: data.choices[0]?.message.content ?? "", models: [data.model], headers: response.headers, notice, elapsed: performance.now() - started };
}

export interface Failure {
  readonly error: APIError;
  readonly elapsed: number;
}

/** Like `ask`, for a call that must fail: resolves with the SDK's APIError (anything else fails the test). */
export async function askError(client: OpenAI, model: string, options: AskOptions): Promise<Failure> {
  const started = performance.now();
  let outcome: unknown;
  try {
    const answer = await ask(client, model, options);
    outcome = new Error(`expected an error, got an answer from ${answer.models.join(",")}: ${answer.text}`);
  } catch (error) {
    outcome = error;
  }
  if (!(outcome instanceof APIError)) throw outcome;
  return { error: outcome, elapsed: performance.now() - started };
}

/** Asserts an OpenAI-shaped error body: {error: {message, type, code}}. */
export function assertOpenAIError(error: APIError, status: number, code: string, type?: string): void {
  assert.equal(error.status, status, error.message);
  const body = error.error as { message?: unknown; type?: unknown; code?: unknown } | undefined;
  assert.ok(body && typeof body === "object", `no error object: ${JSON.stringify(error.error)}`);
  assert.equal(typeof body.message, "string");
  assert.ok((body.message as string).length > 0);
  assert.equal(typeof body.type, "string");
  if (type !== undefined) assert.equal(body.type, type);
  assert.equal(body.code, code);
}

/** One model's entry in GET /health. */
export interface ModelState {
  readonly model: string;
  readonly route: string;
  readonly state: "closed" | "open" | "half_open";
  readonly cooldown_remaining_ms: number;
  readonly success_rate: number | null;
  readonly p50_latency_ms: number | null;
  readonly requests: number;
  readonly consecutive_failures: number;
}

export async function modelHealth(gw: TestGateway, model: string): Promise<ModelState> {
  const response = await fetch(`${gw.url}/health`);
  assert.equal(response.status, 200);
  const body = (await response.json()) as { models: ModelState[] };
  const entry = body.models.find((m) => m.model === model);
  assert.ok(entry, `/health lists no ${model}: ${JSON.stringify(body.models)}`);
  return entry;
}

/** Differences between consecutive times. */
export function gaps(times: readonly number[]): number[] {
  return times.slice(1).map((time, i) => time - (times[i] as number));
}

/** Never more than 2 attempts on one model inside `windowMs` (times of one request's attempts). */
export function assertSpacing(times: readonly number[], windowMs = 1_500, slackMs = 5): void {
  for (let i = 2; i < times.length; i++) {
    const span = (times[i] as number) - (times[i - 2] as number);
    assert.ok(span >= windowMs - slackMs, `3 attempts within ${Math.round(span)} ms (< ${windowMs} ms): ${times.map(Math.round).join(", ")}`);
  }
}

/** Resolves when `promise` does; fails after `ms`. */
export async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

export const pause = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
