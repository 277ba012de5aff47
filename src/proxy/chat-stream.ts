import type { ServerResponse } from "node:http";
import type { Logger } from "../observe/logger.js";
import type { Candidate } from "../routing/plan.js";
import { StreamTimeoutError } from "../stream/reader.js";
import type { EventSource } from "../stream/source.js";
import { ChunkShape } from "../stream/chunk-shape.js";
import type { SseEvent } from "../stream/sse.js";
import { ChatTranscript, ReplayVerifier } from "../stream/transcript.js";
import { sseError } from "./notice.js";
import { clientWriter } from "./respond.js";

/**
 * A Chat Completions stream the client has started to receive. Past this
 * point a failure can no longer be hidden by failing over; it is either
 * completed seamlessly or reported in-band, never ended as if complete.
 */
export interface CommittedStream {
  readonly reader: EventSource;
  readonly candidate: Candidate;
  /** Events read before the commit, relayed first. */
  readonly held: readonly SseEvent[];
  /** What those events said. */
  readonly transcript: ChatTranscript;
  /** Events already dropped as malformed before the commit. */
  readonly malformed: { count: number };
}

/** Opens a fresh stream for recovery; undefined when the upstream would not start one. */
export type StreamOpener = (candidate: Candidate, mode: "replay" | "prefill", partial: string) => Promise<EventSource | undefined>;

/**
 * How the relay's Chat Completions events reach the client: as they are, or
 * translated into another API's events. Each method returns the bytes to write.
 */
export interface ChatStreamOutput {
  /** A chunk; `raw` is the upstream's own bytes for it when it passes unchanged. */
  chunk(chunk: Record<string, unknown>, raw: Buffer | undefined): Buffer | string | undefined;
  /** A comment, or an event without data. */
  other(raw: Buffer): Buffer | undefined;
  /** The answer is complete. */
  done(): Buffer | string | undefined;
  /** A stream that carried no chat chunk at all ended. */
  ended(): Buffer | string | undefined;
  /** The stream failed and could not be completed. */
  error(message: string, code: string): Buffer | string;
}

export interface RecoveryOptions {
  /** Where a replay may run, in order: the same model first, then the plan's later candidates. */
  readonly candidates: readonly Candidate[];
  readonly open: StreamOpener;
  readonly idleMs: (candidate: Candidate) => number;
  /** Milliseconds left before the request's deadline. */
  readonly remainingMs: () => number;
  /** Called with each mid-stream failure, for health. */
  readonly onFailure: (candidate: Candidate) => void;
  readonly logger: Logger;
  /** Recovery attempts allowed for one request. */
  readonly maxRecoveries: number;
}

type Mode = { kind: "direct" } | { kind: "replay"; verifier: ReplayVerifier } | { kind: "continue" };

const DONE = Buffer.from("data: [DONE]\n\n");
/** Attempts to learn a chunk shape per stream: a reasoning part, the text, a tool call each have theirs. */
const MAX_SHAPE_LEARNING = 4;
const OPEN_BRACE = 0x7b;

/** The relay's events passed to a Chat Completions client as they are. */
export const CHAT_OUTPUT: ChatStreamOutput = {
  chunk: (chunk, raw) => raw ?? `data: ${JSON.stringify(chunk)}\n\n`,
  other: (raw) => raw,
  done: () => DONE,
  ended: () => undefined,
  error: (message, code) => sseError(message, code),
};

/**
 * Relays a committed stream event by event. A cut, a stall or an error event
 * triggers recovery: replay-and-verify on the same model or the next candidate
 * (its output is held until it has reproduced what was sent, then only the
 * rest is streamed), then continuation by prefill on routes that allow it.
 * When nothing recovers, the stream ends with an OpenAI-style error event.
 */
export async function relayChatStream(res: ServerResponse, stream: CommittedStream, options: RecoveryOptions, output: ChatStreamOutput = CHAT_OUTPUT): Promise<void> {
  const transcript = stream.transcript;
  let reader = stream.reader;
  let candidate = stream.candidate;
  // Declared wide: recover() changes it from a nested function, which narrowing cannot see.
  let mode = { kind: "direct" } as Mode;
  let malformed = stream.malformed.count;
  let recoveries = 0;
  let originalFailure: string | undefined;

  // `send` does not wait: a client that is not reading holds the upstream until it drains.
  const { write, send, end } = clientWriter(res, () => reader);
  const finish = (tail?: Buffer | string) => {
    reader.destroy();
    end(tail);
  };
  /**
   * The shape of this stream's chunks (relayed as they are, so only the
   * transcript needs their text): a chunk of that shape costs no JSON.parse.
   */
  let shape: ChunkShape | undefined;
  let learning = MAX_SHAPE_LEARNING;
  // The client leaving ends the upstream stream at once.
  const onClose = () => reader.destroy();
  res.on("close", onClose);
  /**
   * The steady state, run synchronously as events are parsed: a well-formed
   * chunk is recorded and relayed. Anything else (the end, an error event, the
   * client gone) is left to the loop below.
   */
  const directStep = (event: SseEvent): boolean => {
    if (res.destroyed) return false;
    const data = event.data;
    if (data === undefined) {
      send(output.other(event.raw));
      return true;
    }
    if (shape !== undefined) {
      const piece = shape.match(data);
      if (piece !== undefined) {
        const target = shape.target;
        transcript.append(target.choice, target.field, target.call, piece);
        send(event.raw);
        return true;
      }
    }
    // Before the parse: a JSON.parse that throws costs more than the rest of the event's relay.
    if (data.charCodeAt(0) !== OPEN_BRACE && data.trim() === "[DONE]") return false;
    let chunk: unknown;
    try {
      chunk = JSON.parse(data);
    } catch {
      malformed++; // dropped, never relayed
      return true;
    }
    if (!chunk || typeof chunk !== "object" || Array.isArray(chunk)) {
      malformed++;
      return true;
    }
    if ((chunk as { error?: unknown }).error) return false;
    transcript.apply(chunk as Record<string, unknown>);
    // A new shape is learned from a text chunk the current one missed, a bounded number of times per stream.
    if (learning > 0 && output === CHAT_OUTPUT && ChunkShape.textOnly(chunk as Record<string, unknown>)) {
      learning--;
      shape = ChunkShape.learn(data, chunk as Record<string, unknown>) ?? shape;
    }
    send(output.chunk(chunk as Record<string, unknown>, event.raw));
    return true;
  };

  try {
    // One write for what was held: it was all read before the client saw anything.
    for (const event of stream.held) send(heldBytes(event, output));
    if (!(await write(undefined))) return;

    // Idle is measured between data events: keep-alive comments do not hide a stalled answer.
    let lastData = performance.now();
    for (;;) {
      if (mode.kind === "direct" && reader.pump) {
        lastData = await reader.pump(directStep, options.idleMs(candidate), lastData);
        if (res.destroyed) return;
      }
      let failure: string | undefined;
      let event: SseEvent | null = null;
      try {
        event = await reader.next(Math.max(1, options.idleMs(candidate) - (performance.now() - lastData)));
        if (event?.data !== undefined) lastData = performance.now();
      } catch (error) {
        failure = error instanceof StreamTimeoutError ? error.message : `the upstream stream failed: ${(error as Error).message}`;
      }
      if (res.destroyed) return;

      if (!failure && event === null) {
        // A stream with no chat-shaped chunk cannot be judged complete or cut: its end is its end.
        if (transcript.choices.size === 0) {
          finish(output.ended());
          return;
        }
        if (transcript.finished()) {
          // Ended without [DONE], but the answer is complete: end promptly and properly.
          finish(output.done());
          return;
        }
        failure = "the upstream stream ended before the answer was complete";
      }

      let chunk: Record<string, unknown> | undefined;
      if (!failure && event) {
        if (event.data === undefined) {
          if (!(await write(output.other(event.raw)))) return;
          continue;
        }
        if (event.data.trim() === "[DONE]") {
          if (mode.kind === "replay" && !transcript.finished()) {
            failure = "the replay ended before reproducing what was sent";
          } else {
            finish(output.done());
            return;
          }
        } else {
          try {
            chunk = JSON.parse(event.data) as Record<string, unknown>;
          } catch {
            malformed++;
            continue;
          }
          if (!chunk || typeof chunk !== "object" || Array.isArray(chunk)) {
            malformed++;
            continue;
          }
          if ("error" in chunk && chunk.error) {
            const error = chunk.error as { message?: unknown };
            failure = `the upstream sent an error mid-stream: ${typeof error.message === "string" ? error.message : JSON.stringify(chunk.error)}`;
          }
        }
      }

      if (failure && transcript.finished()) {
        // Every choice already has its finish_reason: the answer is complete, only the end went wrong.
        finish(output.done());
        return;
      }
      if (failure) {
        originalFailure ??= failure;
        options.onFailure(candidate);
        options.logger.warn({ event: "stream_failure", model: candidate.model, route: candidate.route.name, detail: failure, mode: mode.kind }, "stream failed after its first token");
        reader.destroy();
        const recovered = recoveries < options.maxRecoveries ? await recover() : undefined;
        if (!recovered) {
          finish(output.error(`${originalFailure}; the gateway could not complete the answer`, "stream_interrupted"));
          return;
        }
        lastData = performance.now();
        continue;
      }

      const data = chunk as Record<string, unknown>;
      if (mode.kind === "direct") {
        transcript.apply(data);
        if (!(await write(output.chunk(data, (event as SseEvent).raw)))) return;
        continue;
      }
      let out: Record<string, unknown> | undefined;
      if (mode.kind === "replay") {
        const verdict = mode.verifier.feed(data);
        if (verdict.kind === "hold") continue;
        if (verdict.kind === "diverged") {
          options.logger.warn({ event: "replay_diverged", model: candidate.model, route: candidate.route.name, detail: verdict.why }, "replay diverged");
          reader.destroy();
          const recovered = recoveries < options.maxRecoveries ? await recover(true) : undefined;
          if (!recovered) {
            finish(output.error(`${originalFailure}; a second generation differed from what was already sent (${verdict.why})`, "stream_interrupted"));
            return;
          }
          lastData = performance.now();
          continue;
        }
        out = verdict.chunk;
      } else {
        out = continuation(data, transcript);
      }
      transcript.apply(out);
      if (!(await write(output.chunk(out, undefined)))) return;
    }
  } finally {
    res.off("close", onClose);
    if (malformed > 0) options.logger.warn({ event: "malformed_events", count: malformed, route: candidate.route.name }, "dropped SSE events that were not JSON");
  }

  /** Opens the next recovery stream: replays first, then prefill continuations. */
  async function recover(skipReplay = false): Promise<boolean> {
    const { text, onlyText } = transcript.plainText();
    const options_ = options;
    const steps: { candidate: Candidate; mode: "replay" | "prefill" }[] = [];
    if (!skipReplay) for (const next of options_.candidates) steps.push({ candidate: next, mode: "replay" });
    if (onlyText && text) for (const next of options_.candidates) if (next.route.prefill) steps.push({ candidate: next, mode: "prefill" });
    for (const step of steps) {
      if (recoveries >= options_.maxRecoveries || options_.remainingMs() <= 0 || res.destroyed) return false;
      recoveries++;
      const opened = await options_.open(step.candidate, step.mode, text).catch(() => undefined);
      if (!opened) continue;
      reader = opened;
      candidate = step.candidate;
      mode = step.mode === "replay" ? { kind: "replay", verifier: new ReplayVerifier(transcript) } : { kind: "continue" };
      options_.logger.warn({ event: "stream_recovery", mode: step.mode, model: step.candidate.model, route: step.candidate.route.name }, "resuming the stream");
      return true;
    }
    return false;
  }
}

/** A held event (read before the commit, so already judged well-formed) in the client's form. */
function heldBytes(event: SseEvent, output: ChatStreamOutput): Buffer | string | undefined {
  if (output === CHAT_OUTPUT) return event.raw;
  if (event.data === undefined) return output.other(event.raw);
  if (event.data.trim() === "[DONE]") return output.done();
  return output.chunk(JSON.parse(event.data) as Record<string, unknown>, event.raw);
}

/** A continuation's chunk, made to follow the original: same id, no second role. */
function continuation(chunk: Record<string, unknown>, transcript: ChatTranscript): Record<string, unknown> {
  const out: Record<string, unknown> = { ...chunk };
  if (transcript.id !== undefined && "id" in chunk) out.id = transcript.id;
  if (Array.isArray(chunk.choices)) {
    out.choices = chunk.choices.map((choice: Record<string, unknown>) => {
      const delta = { ...(choice.delta as Record<string, unknown> | undefined) };
      delete delta.role;
      return { ...choice, delta };
    });
  }
  return out;
}
