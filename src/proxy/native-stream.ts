import type { ServerResponse } from "node:http";
import type { Logger } from "../observe/logger.js";
import { StreamTimeoutError } from "../stream/reader.js";
import type { EventSource } from "../stream/source.js";
import type { SseEvent } from "../stream/sse.js";
import { sseError } from "./notice.js";
import { clientWriter } from "./respond.js";

/**
 * Streams relayed in the upstream's own format (Responses, Anthropic Messages
 * to an Anthropic route, any other SSE): held until their first output so a
 * stream that opens with an error or never starts can still fail over, then
 * relayed byte for byte, and ended with the protocol's own error event when
 * they fail after that.
 */
export interface StreamProtocol {
  readonly name: "responses" | "anthropic" | "sse";
  /** Before the commit: wait for more, commit (output began), or the stream opened with an error. */
  before(name: string | undefined, payload: Record<string, unknown>): "hold" | "commit" | "error";
  /** Whether an end right after this event is a complete answer; undefined: the protocol cannot tell. */
  terminal(name: string | undefined, payload: Record<string, unknown>): boolean | undefined;
  /** The event that ends a stream which failed after the client began receiving it. */
  interrupted(message: string): Buffer;
}

const RESPONSES_PREAMBLE = new Set(["response.created", "response.in_progress", "response.queued", "response.output_item.added", "response.content_part.added"]);
const RESPONSES_END = new Set(["response.completed", "response.incomplete", "response.failed", "error"]);

/** OpenAI Responses: every event's data carries its `type`. */
export const RESPONSES_PROTOCOL: StreamProtocol = {
  name: "responses",
  before: (_name, payload) => {
    const type = payload.type;
    if (type === "error" || type === "response.failed") return "error";
    // A reasoning item is the model at work, as reasoning_content is in a chat stream: a model that thinks for a
    // while without a summary sends nothing else until its answer, and cutting it at firstTokenMs would pay twice.
    if (type === "response.output_item.added" && (payload.item as { type?: unknown } | undefined)?.type === "reasoning") return "commit";
    return typeof type === "string" && RESPONSES_PREAMBLE.has(type) ? "hold" : "commit";
  },
  terminal: (_name, payload) => typeof payload.type === "string" && RESPONSES_END.has(payload.type),
  // A Responses client needs a string `type`; the `error` object makes the openai SDK raise it in the user's loop.
  interrupted: (message) =>
    Buffer.from(
      `event: error\ndata: ${JSON.stringify({ type: "error", code: "stream_interrupted", message, param: null, error: { type: "gateway_error", code: "stream_interrupted", message } })}\n\n`,
    ),
};

const ANTHROPIC_PREAMBLE = new Set(["message_start", "content_block_start", "ping"]);

/** Anthropic Messages: the event name (or the data's `type`) says what an event is. */
export const ANTHROPIC_PROTOCOL: StreamProtocol = {
  name: "anthropic",
  before: (name, payload) => {
    const type = name ?? payload.type;
    if (type === "error") return "error";
    return typeof type === "string" && ANTHROPIC_PREAMBLE.has(type) ? "hold" : "commit";
  },
  terminal: (name, payload) => {
    const type = name ?? payload.type;
    return type === "message_stop" || type === "error";
  },
  interrupted: (message) => Buffer.from(`event: error\ndata: ${JSON.stringify({ type: "error", error: { type: "api_error", message } })}\n\n`),
};

/** Any other SSE answer (legacy completions, a provider's own stream): the first data event commits. */
export const GENERIC_PROTOCOL: StreamProtocol = {
  name: "sse",
  before: (_name, payload) => (payload.error ? "error" : "commit"),
  terminal: () => undefined,
  interrupted: (message) => sseError(message, "upstream_stream_error"),
};

export type HeldStream =
  | { readonly kind: "committed"; readonly held: SseEvent[] }
  | { readonly kind: "error"; readonly held: SseEvent[]; readonly payload: Record<string, unknown> }
  | { readonly kind: "ended" | "timeout"; readonly held: SseEvent[]; readonly detail: string };

/** Held bytes beyond which a stream is committed anyway: holding is never unbounded. */
const MAX_HELD_BYTES = 1024 * 1024;

/** Reads a stream up to its commit point (its first output), an opening error, its end or `waitMs`. */
export async function holdStream(reader: EventSource, protocol: StreamProtocol, waitMs: () => number | undefined): Promise<HeldStream> {
  const held: SseEvent[] = [];
  let size = 0;
  for (;;) {
    let event: SseEvent | null;
    try {
      event = await reader.next(waitMs(), "first_token");
    } catch (error) {
      if (error instanceof StreamTimeoutError) return { kind: "timeout", held, detail: error.message };
      throw error;
    }
    if (event === null) return { kind: "ended", held, detail: "the stream ended before its first output" };
    held.push(event);
    size += event.raw.length;
    if (event.data === undefined) continue;
    const payload = parseObject(event.data);
    if (payload === undefined) {
      // Not JSON: not ours to judge (`[DONE]`, a provider's own format); the client gets it as it is.
      return { kind: "committed", held };
    }
    const verdict = protocol.before(event.event, payload);
    if (verdict === "error") return { kind: "error", held, payload };
    if (verdict === "commit" || size > MAX_HELD_BYTES) return { kind: "committed", held };
  }
}

/**
 * Relays a committed stream byte for byte. A cut, a stall (no event within the
 * idle timeout) or an end before the protocol's terminal event ends the stream
 * with the protocol's error event, never as if it were complete.
 */
export async function relayStream(
  res: ServerResponse,
  stream: { reader: EventSource; held: readonly SseEvent[]; protocol: StreamProtocol; idleMs: number; logger: Logger; model: string | null; route: string },
): Promise<void> {
  const { reader, protocol } = stream;
  let complete: boolean | undefined;
  const note = (event: SseEvent) => {
    if (event.data === undefined) return;
    // Only the last event decides whether an end is clean; parse just the ones that could say so.
    if (protocol.name === "sse") return;
    // Both protocols say it in the event's name or its `type`, which leads the data as providers write it: no parse needed.
    const payload = event.event !== undefined && protocol.name === "anthropic" ? NO_PAYLOAD : typeOnly(event.data) ?? parseObject(event.data);
    complete = payload ? protocol.terminal(event.event, payload) : complete;
  };
  const onClose = () => reader.destroy();
  res.on("close", onClose);
  const { write, send, end } = clientWriter(res, () => reader);
  // The steady state, synchronous from the upstream's data callback: note the event, relay its bytes.
  const step = (event: SseEvent): boolean => {
    if (res.destroyed) return false;
    note(event);
    send(event.raw);
    return true;
  };
  try {
    for (const event of stream.held) {
      note(event);
      send(event.raw);
    }
    if (!(await write(undefined))) return;
    let lastEvent = performance.now();
    for (;;) {
      if (reader.pump) {
        lastEvent = await reader.pump(step, stream.idleMs, lastEvent, true);
        if (res.destroyed) return;
      }
      let failure: string | undefined;
      let event: SseEvent | null = null;
      try {
        event = await reader.next(Math.max(1, stream.idleMs - (performance.now() - lastEvent)));
      } catch (error) {
        failure = error instanceof StreamTimeoutError ? error.message : `the upstream stream failed: ${(error as Error).message}`;
      }
      if (res.destroyed) return;
      if (!failure && event === null) {
        if (complete !== false) {
          end();
          return;
        }
        failure = "the upstream stream ended before the answer was complete";
      }
      if (failure) {
        reader.destroy();
        stream.logger.warn({ event: "stream_failure", model: stream.model, route: stream.route, detail: failure, protocol: protocol.name }, "stream failed after its first output");
        end(protocol.interrupted(`${failure}; the gateway could not complete the answer`));
        return;
      }
      const current = event as SseEvent;
      note(current);
      if (!(await write(current.raw))) return;
    }
  } finally {
    res.off("close", onClose);
  }
}

const NO_PAYLOAD: Record<string, unknown> = {};
const TYPE_PREFIX = '{"type":"';

/** `{type}` from data that opens with a plain `"type"` string, or undefined (then it is parsed). */
function typeOnly(data: string): Record<string, unknown> | undefined {
  if (!data.startsWith(TYPE_PREFIX)) return undefined;
  const end = data.indexOf('"', TYPE_PREFIX.length);
  if (end < 0) return undefined;
  const type = data.slice(TYPE_PREFIX.length, end);
  return type.includes("\\") ? undefined : { type };
}

function parseObject(data: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(data);
    return value && typeof value === "object" && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}
