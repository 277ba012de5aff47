/**
 * A mock OpenAI upstream that fails *inside* Chat Completions streams (issue
 * 4), next to the request-level faults of faults.ts. Each request is answered
 * by a `StreamPlan` taken from a queue (`up.next([...])`, then
 * `up.otherwise(...)`): the answer (text pieces or parallel tool-call deltas)
 * and what goes wrong while it streams — a late first token, an error event,
 * a cut socket, a stall with the socket left open, a clean end without
 * finish_reason or [DONE], events that are not JSON. A mid-stream fault can
 * wait on a gate, so a test decides exactly how much the client has seen
 * before the upstream fails. The upstream also has a prefill policy: ignore a
 * trailing assistant message, reject it (400), or honour it (continue the
 * answer after the given partial text).
 *
 * Every request is recorded (its body, arrival time, when and how its exchange
 * ended, the events written), so tests assert what each upstream saw.
 * Everything listens on 127.0.0.1 and is closed by `t.after`.
 */
import assert from "node:assert/strict";
import type { ServerResponse } from "node:http";
import type { TestContext } from "node:test";
import OpenAI, { APIError } from "openai";
import type { TestGateway } from "./gateway.js";
import { sendJson, startMockUpstream, type MockUpstream, type Received } from "./mock-upstream.js";
import { sdk, useGateway } from "./sdk.js";

/** One parallel tool call an upstream streams, its arguments split into pieces. */
export interface ToolCallSpec {
  readonly id: string;
  readonly name: string;
  readonly args: readonly string[];
}

/** Where a fault strikes: after this many content events, or after the finish (and usage) chunk, before [DONE]. */
export type FaultPoint = number | "finish";

export interface MidStreamFault {
  readonly at: FaultPoint;
  /**
   * cut: the socket is destroyed (a truncated chunked body); stall: nothing more
   * is sent and the socket stays open; error: `data: {"error": …}` then a clean
   * end; end: a clean end right there (no finish_reason, no [DONE] unless at "finish").
   */
  readonly do: "cut" | "stall" | "error" | "end";
  /** The fault waits for this (bounded by `gateTimeoutMs`) after writing the events before it. */
  readonly gate?: Promise<unknown>;
  /** The error object of an `error` fault. */
  readonly error?: Record<string, unknown>;
  /** While stalled, a keep-alive comment (`: keep-alive`) every this many ms: bytes flow, events do not. */
  readonly pingMs?: number;
}

export interface StreamPlan {
  /** The answer's text, split into words (default: the upstream's text). Ignored when `tools` or `pieces` is set. */
  readonly text?: string;
  /** The answer's text as explicit pieces (one content event each). */
  readonly pieces?: readonly string[];
  /** Parallel tool calls instead of text: their deltas, in this order of [call index, piece index]. */
  readonly tools?: { readonly calls: readonly ToolCallSpec[]; readonly order: readonly (readonly [number, number])[] };
  /** Answer with this HTTP error (JSON) instead of a stream. */
  readonly status?: { readonly status: number; readonly error?: Record<string, unknown> };
  /** Headers and the role chunk go at once; the first content event only after this. */
  readonly firstTokenDelayMs?: number;
  /** Before content event i (0-based; the content count when i is past the end), `data: {not json` is sent. */
  readonly invalidAt?: readonly number[];
  /** The invalid event is a content chunk like the others but for its text, which holds a raw quote (SHAPED_INVALID_TEXT): not JSON either. */
  readonly invalidShaped?: boolean;
  /** Every chunk ends with OpenAI's `obfuscation` padding: a different string (and length) in each. */
  readonly obfuscation?: boolean;
  /** A mid-stream (or pre-first-token, `at: 0`) fault. */
  readonly fault?: MidStreamFault;
  /** Omit the finish_reason chunk (the stream ends after its content, with [DONE] unless a fault says otherwise). */
  readonly omitFinish?: boolean;
  /** Omit `data: [DONE]` (the body still ends cleanly). */
  readonly omitDone?: boolean;
}

export type PrefillPolicy =
  /** A trailing assistant message is answered like any request (from the plan). */
  | "ignore"
  /** 400 invalid_request_error, as providers without prefill answer. */
  | "reject"
  /** The plan's answer, minus the partial text the trailing assistant message already holds. */
  | "honour";

export interface StreamUpstreamOptions {
  readonly prefill?: PrefillPolicy;
  /** The `model` its chunks carry for a requested model (default: the requested name). */
  readonly servedModel?: (requested: string) => string;
  /** Upper bound on a gate's wait (the fault strikes anyway after it). */
  readonly gateTimeoutMs?: number;
}

/** One request as the stream upstream saw it. */
export interface StreamRequest {
  readonly index: number;
  readonly at: number;
  readonly json: Record<string, unknown> | undefined;
  readonly received: Received;
  readonly model: unknown;
  readonly messages: readonly { role: string; content: unknown }[];
  /** The trailing assistant message's text, when the request ends with one. */
  readonly prefill: string | undefined;
  readonly plan: StreamPlan;
  /** The SSE events written, in order (raw text). */
  readonly written: string[];
  endedAt: number | undefined;
  /** The exchange closed before the response was complete (cut by us or by the gateway). */
  aborted: boolean;
  readonly ended: Promise<void>;
}

export interface StreamUpstream {
  readonly name: string;
  readonly origin: string;
  readonly requests: readonly StreamRequest[];
  readonly count: number;
  /** The text an answer carries by default. */
  readonly text: string;
  next(plans: readonly StreamPlan[]): StreamUpstream;
  otherwise(plan: StreamPlan | ((index: number) => StreamPlan)): StreamUpstream;
  prefill: PrefillPolicy;
  close(): Promise<void>;
}

export const INVALID_EVENT = "data: {not json\n\n";
/** What a shaped invalid event has where its text should be: `"content":"a"b"`. */
export const SHAPED_INVALID_TEXT = '"a"b"';

export const prefillRejection = {
  message: "This model does not support assistant message prefill: the last message must be a user message.",
  type: "invalid_request_error",
  param: "messages",
  code: "prefill_unsupported",
};

/** Words with their trailing space, as a tokenizer would cut them. */
export const words = (text: string): string[] => text.split(/(?<= )/);

export async function startStreamUpstream(name: string, options: StreamUpstreamOptions = {}): Promise<StreamUpstream> {
  const queue: StreamPlan[] = [];
  let fallback: StreamPlan | ((index: number) => StreamPlan) = {};
  const requests: StreamRequest[] = [];
  const timers = new Set<NodeJS.Timeout>();
  const intervals = new Set<NodeJS.Timeout>();
  const text = `Hello from ${name}: this answer has several words.`;
  const gateTimeoutMs = options.gateTimeoutMs ?? 5_000;
  const served = options.servedModel ?? ((requested: string) => requested);

  const later = (ms: number, fn: () => void): NodeJS.Timeout => {
    const timer = setTimeout(() => {
      timers.delete(timer);
      fn();
    }, ms);
    timers.add(timer);
    return timer;
  };
  /** Resolves when `gate` does, or after the bound, or when the response closes (false then). */
  const passGate = (gate: Promise<unknown> | undefined, res: ServerResponse): Promise<boolean> => {
    if (!gate) return Promise.resolve(!res.destroyed);
    return new Promise((resolve) => {
      const timer = later(gateTimeoutMs, () => done());
      const done = () => {
        clearTimeout(timer);
        timers.delete(timer);
        res.off("close", done);
        resolve(!res.destroyed);
      };
      res.once("close", done);
      gate.then(done, done);
    });
  };
  const write = (res: ServerResponse, entry: StreamRequest, event: string): Promise<void> =>
    new Promise((resolve) => {
      if (res.destroyed) return resolve();
      entry.written.push(event);
      res.write(event, () => resolve());
    });

  const play = async (entry: StreamRequest, res: ServerResponse): Promise<void> => {
    const plan = entry.plan;
    const requested = typeof entry.model === "string" ? entry.model : "unknown";
    if (plan.status) {
      const error = plan.status.error ?? { message: `${name} answered ${plan.status.status}`, type: "server_error", code: `status_${plan.status.status}` };
      sendJson(res, plan.status.status, { error });
      return;
    }
    if (entry.prefill !== undefined && upstream.prefill === "reject") {
      sendJson(res, 400, { error: prefillRejection });
      return;
    }
    const stream = entry.json?.stream === true;
    const id = `chatcmpl-${name}-${entry.index}`;
    const created = Math.floor(Date.now() / 1000);
    const model = served(requested);
    let padding = 0;
    const pad = () => (plan.obfuscation ? { obfuscation: `${"k8Y".slice(0, padding % 4)}${name}\\${entry.index}-${padding++}` } : {});
    const chunk = (choices: unknown[], extra: Record<string, unknown> = {}) =>
      `data: ${JSON.stringify({ id, object: "chat.completion.chunk", created, model, system_fingerprint: `fp_${name}_${entry.index}`, choices, ...extra, ...pad() })}\n\n`;
    const choice = (delta: Record<string, unknown>, finish: string | null = null) => ({ index: 0, delta, logprobs: null, finish_reason: finish });

    let content: string[];
    let roleDelta: Record<string, unknown>;
    let finishReason: string;
    let full: string;
    if (plan.tools) {
      const { calls, order } = plan.tools;
      const first = new Set<number>();
      content = order.map(([call, piece]) => {
        const spec = calls[call] as ToolCallSpec;
        const delta: Record<string, unknown> = { index: call, function: { arguments: spec.args[piece] as string } };
        if (!first.has(call)) {
          first.add(call);
          Object.assign(delta, { id: spec.id, type: "function", function: { name: spec.name, arguments: spec.args[piece] as string } });
        }
        return chunk([choice({ tool_calls: [delta] })]);
      });
      roleDelta = { role: "assistant", content: null };
      finishReason = "tool_calls";
      full = "";
    } else {
      let pieces = plan.pieces ?? words(plan.text ?? text);
      full = pieces.join("");
      if (entry.prefill !== undefined && upstream.prefill === "honour") {
        // A continuation: the rest of the answer after what the trailing assistant message already says.
        const rest = full.startsWith(entry.prefill) ? full.slice(entry.prefill.length) : full;
        pieces = words(rest).filter((piece) => piece !== "");
      }
      content = pieces.map((piece) => chunk([choice({ content: piece })]));
      roleDelta = { role: "assistant", content: "" };
      finishReason = "stop";
    }

    if (!stream) {
      sendJson(res, 200, {
        id,
        object: "chat.completion",
        created,
        model,
        choices: [{ index: 0, message: { role: "assistant", content: full, refusal: null }, logprobs: null, finish_reason: finishReason }],
        usage: { prompt_tokens: 9, completion_tokens: content.length, total_tokens: 9 + content.length },
      });
      return;
    }

    const includeUsage = (entry.json?.stream_options as { include_usage?: unknown } | undefined)?.include_usage === true;
    const tail: string[] = [];
    if (!plan.omitFinish) tail.push(chunk([choice({}, finishReason)]));
    if (includeUsage && !plan.omitFinish) {
      tail.push(chunk([], { usage: { prompt_tokens: 9, completion_tokens: content.length, total_tokens: 9 + content.length } }));
    }
    const fault = plan.fault;
    const faultAt = fault === undefined ? undefined : fault.at === "finish" ? content.length : fault.at;

    res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
    await write(res, entry, chunk([choice(roleDelta)]));
    for (let i = 0; i <= content.length; i++) {
      if (res.destroyed) return;
      if (i === 0 && plan.firstTokenDelayMs !== undefined && plan.firstTokenDelayMs > 0) {
        await new Promise<void>((resolve) => {
          const timer = later(plan.firstTokenDelayMs as number, resolve);
          res.once("close", () => {
            clearTimeout(timer);
            timers.delete(timer);
            resolve();
          });
        });
        if (res.destroyed) return;
      }
      if (plan.invalidAt?.includes(i)) await write(res, entry, plan.invalidShaped ? chunk([choice({ content: "\u0000" })]).replace('"\\u0000"', SHAPED_INVALID_TEXT) : INVALID_EVENT);
      if (fault && faultAt === i && fault.at !== "finish") {
        await strike(fault, entry, res);
        return;
      }
      if (i < content.length) await write(res, entry, content[i] as string);
    }
    for (const event of tail) await write(res, entry, event);
    if (fault?.at === "finish") {
      await strike(fault, entry, res);
      return;
    }
    if (!plan.omitDone) await write(res, entry, "data: [DONE]\n\n");
    if (!res.destroyed) res.end();
  };

  const strike = async (fault: MidStreamFault, entry: StreamRequest, res: ServerResponse): Promise<void> => {
    if (!(await passGate(fault.gate, res))) return;
    switch (fault.do) {
      case "cut":
        res.socket?.destroy();
        return;
      case "stall": {
        // The socket stays open until the gateway closes it.
        if (fault.pingMs === undefined) return;
        const ping = setInterval(() => {
          if (res.destroyed) return;
          entry.written.push(": keep-alive\n\n");
          res.write(": keep-alive\n\n");
        }, fault.pingMs);
        intervals.add(ping);
        res.once("close", () => {
          clearInterval(ping);
          intervals.delete(ping);
        });
        return;
      }
      case "error": {
        const error = fault.error ?? { message: `${name} is overloaded (mid-stream)`, type: "server_error", code: "overloaded" };
        await write(res, entry, `data: ${JSON.stringify({ error })}\n\n`);
        if (!res.destroyed) res.end();
        return;
      }
      case "end":
        if (!res.destroyed) res.end();
        return;
    }
  };

  const mock: MockUpstream = await startMockUpstream((received, res) => {
    const index = requests.length;
    const plan = queue.shift() ?? (typeof fallback === "function" ? fallback(index) : fallback);
    const messages = Array.isArray(received.json?.messages) ? (received.json.messages as { role: string; content: unknown }[]) : [];
    const last = messages[messages.length - 1];
    let settle!: () => void;
    const ended = new Promise<void>((resolve) => (settle = resolve));
    const entry: StreamRequest = {
      index,
      at: received.at,
      json: received.json,
      received,
      model: received.json?.model,
      messages,
      prefill: last?.role === "assistant" && typeof last.content === "string" ? last.content : undefined,
      plan,
      written: [],
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
    return play(entry, res);
  });

  const upstream: StreamUpstream = {
    name,
    origin: mock.origin,
    requests,
    get count() {
      return requests.length;
    },
    text,
    prefill: options.prefill ?? "ignore",
    next(plans) {
      queue.push(...plans);
      return upstream;
    },
    otherwise(plan) {
      fallback = plan;
      return upstream;
    },
    async close() {
      for (const timer of timers) clearTimeout(timer);
      timers.clear();
      for (const interval of intervals) clearInterval(interval);
      intervals.clear();
      await mock.close();
    },
  };
  return upstream;
}

// ---------------------------------------------------------------------------
// A gateway in front of one stream upstream per model, and the two ways the
// openai SDK reads a stream.

export interface StreamSetup {
  readonly gw: TestGateway;
  readonly client: OpenAI;
  readonly up: Readonly<Record<string, StreamUpstream>>;
}

export interface StreamSetupOptions {
  /** routes.yml text before `routes:`. */
  readonly yaml?: string;
  /** Extra route lines per model, indented by 4 spaces. */
  readonly routeExtra?: Readonly<Record<string, string>>;
  readonly upstream?: Readonly<Record<string, StreamUpstreamOptions>>;
}

export async function streamGateway(t: TestContext, models: readonly string[], options: StreamSetupOptions = {}): Promise<StreamSetup> {
  const up: Record<string, StreamUpstream> = {};
  let routes = "routes:\n";
  for (const model of models) {
    const upstream = await startStreamUpstream(model, options.upstream?.[model]);
    t.after(() => upstream.close());
    up[model] = upstream;
    routes += `  - name: route-${model}\n    url: ${upstream.origin}/v1\n    isBaseUrl: true\n    model: ${model}\n${options.routeExtra?.[model] ?? ""}`;
  }
  const gw = await useGateway(t, `${options.yaml ?? ""}${routes}`);
  return { gw, client: sdk(gw), up };
}

export type How = "for-await" | "finalChatCompletion";
export const HOWS: readonly How[] = ["for-await", "finalChatCompletion"];

export interface ToolCallOut {
  id: string | undefined;
  type: string | undefined;
  name: string;
  args: string;
}

/** What the client got from one streamed call. */
export interface Streamed {
  /** The assistant text received (before the error, when there is one). */
  readonly text: string;
  /** Tool calls accumulated from the deltas received. */
  readonly toolCalls: readonly ToolCallOut[];
  /** Every chunk yielded (for-await) or seen by the stream helper (finalChatCompletion). */
  readonly chunks: readonly OpenAI.ChatCompletionChunk[];
  /** finalChatCompletion's result (finalChatCompletion, success only). */
  readonly final: OpenAI.ChatCompletion | undefined;
  /** The error the SDK raised, if any (anything thrown: the test checks its class). */
  readonly error: unknown;
  readonly elapsed: number;
}

export interface StreamCallOptions {
  readonly messages?: readonly { role: "user" | "system" | "assistant"; content: string }[];
  readonly extra?: Record<string, unknown>;
  /** Called with the text and chunks so far after every chunk (to open a gate). */
  readonly onProgress?: (text: string, chunks: readonly OpenAI.ChatCompletionChunk[]) => void;
}

export const defaultMessages = [{ role: "user" as const, content: "Tell me something." }];

/** One streamed chat completion with the openai SDK, read `how`; errors are caught and returned. */
export async function streamChat(client: OpenAI, model: string, how: How, options: StreamCallOptions = {}): Promise<Streamed> {
  const started = performance.now();
  const params = { model, messages: options.messages ?? defaultMessages, stream: true, ...options.extra } as unknown as OpenAI.ChatCompletionCreateParamsStreaming;
  let text = "";
  const chunks: OpenAI.ChatCompletionChunk[] = [];
  const calls: ToolCallOut[] = [];
  const take = (chunk: OpenAI.ChatCompletionChunk) => {
    chunks.push(chunk);
    const delta = chunk.choices?.[0]?.delta;
    text += delta?.content ?? "";
    for (const call of delta?.tool_calls ?? []) {
      const out = (calls[call.index] ??= { id: undefined, type: undefined, name: "", args: "" });
      if (call.id) out.id = call.id;
      if (call.type) out.type = call.type;
      out.name += call.function?.name ?? "";
      out.args += call.function?.arguments ?? "";
    }
    options.onProgress?.(text, chunks);
  };
  let final: OpenAI.ChatCompletion | undefined;
  let error: unknown;
  try {
    if (how === "for-await") {
      for await (const chunk of await client.chat.completions.create(params)) take(chunk);
    } else {
      const runner = client.chat.completions.stream(params);
      runner.on("chunk", (chunk) => take(chunk));
      final = await runner.finalChatCompletion();
    }
  } catch (caught) {
    error = caught;
  }
  return { text, toolCalls: calls, chunks, final, error, elapsed: performance.now() - started };
}

/** Asserts a complete answer: no error, exactly `text`, and (finalChatCompletion) a final message saying the same. */
export function assertComplete(got: Streamed, text: string, how: How): void {
  if (got.error !== undefined) {
    assert.fail(`expected the complete answer, the SDK raised ${describeError(got.error)} after ${JSON.stringify(got.text)}`);
  }
  assert.equal(got.text, text, "the streamed text is not exactly the full answer");
  if (how === "finalChatCompletion") {
    assert.ok(got.final, "no final chat completion");
    assert.equal(got.final.choices.length, 1);
    assert.equal(got.final.choices[0]?.message.content, text);
    assert.equal(got.final.choices[0]?.finish_reason, "stop");
  }
}

/**
 * Asserts the stream ended with the SDK's APIError raised from an in-band
 * `data: {"error": …}` event (no HTTP status: the 200 was already sent), and
 * that what arrived before it is a prefix of `answer` (when given) — never the complete answer.
 */
export function assertInBandError(got: Streamed, answer: string | undefined, code?: string): APIError {
  assert.ok(got.error !== undefined, `expected an in-band error, the stream ended normally with ${JSON.stringify(got.text)}`);
  assert.ok(got.error instanceof APIError, `expected an APIError, got ${describeError(got.error)}`);
  assert.equal(got.error.status, undefined, "an in-band error has no HTTP status (the 200 was already sent)");
  const body = got.error.error as { message?: unknown; type?: unknown; code?: unknown } | undefined;
  assert.ok(body && typeof body.message === "string" && body.message.length > 0, `no error message: ${JSON.stringify(body)}`);
  assert.equal(typeof body.type, "string");
  if (code !== undefined) assert.equal(body.code, code);
  else assert.ok(typeof body.code === "string" && body.code.length > 0, `no error code: ${JSON.stringify(body)}`);
  if (answer !== undefined) {
    assert.ok(answer.startsWith(got.text), `the text before the error is not a prefix of the first answer: ${JSON.stringify(got.text)}`);
    assert.notEqual(got.text, answer, "the whole answer arrived, then an error");
  }
  assert.equal(got.final, undefined);
  return got.error;
}

export function describeError(error: unknown): string {
  if (error instanceof APIError) return `APIError(status ${error.status}, ${JSON.stringify(error.error)})`;
  if (error instanceof Error) return `${error.name}: ${error.message}`;
  return String(error);
}

/** A one-shot gate: `open()` lets a waiting fault strike. */
export interface Gate {
  readonly promise: Promise<void>;
  open(): void;
  readonly opened: boolean;
}

export function gate(): Gate {
  let resolve!: () => void;
  let opened = false;
  const promise = new Promise<void>((r) => (resolve = r));
  return {
    promise,
    open() {
      opened = true;
      resolve();
    },
    get opened() {
      return opened;
    },
  };
}
