import type { BodySink, UpstreamBody } from "../upstream/body.js";
import { SseParser, type SseEvent } from "./sse.js";

/** Events read ahead of the consumer before the body is paused. */
const MAX_QUEUED = 32;

export class StreamTimeoutError extends Error {
  override readonly name = "TimeoutError";
  constructor(readonly what: "first_token" | "idle", ms: number) {
    super(what === "first_token" ? `no first token within ${ms} ms` : `the stream was silent for ${ms} ms`);
  }
}

/**
 * Pulls SSE events from an upstream body one at a time, reading only as fast
 * as they are consumed (the body stays paused in between, so backpressure
 * reaches the upstream). Timeouts apply to events, not bytes: a stream that
 * trickles half events still times out (callers that should not count
 * comments as activity measure from their last data event).
 */
export class EventReader implements BodySink {
  private readonly parser = new SseParser();
  private readonly queue: SseEvent[] = [];
  private ended = false;
  private failure: Error | undefined;
  private wake: (() => void) | undefined;
  /** Every byte read from the body, in order, when recording was asked for (off by default: it would keep a whole stream). */
  readonly held: Buffer[] = [];
  private record: boolean;

  constructor(
    private readonly body: UpstreamBody,
    options: { record?: boolean } = {},
  ) {
    this.record = options.record ?? false;
    // Nothing is read before the first next().
    body.consume(this, true);
  }

  onData(chunk: Buffer): void {
    if (this.record) this.held.push(chunk);
    const events = this.parser.push(chunk);
    if (events.length > 0) {
      for (const event of events) this.queue.push(event);
      // Backpressure without a pause per event: stop reading only once a backlog builds up.
      if (this.queue.length >= MAX_QUEUED) this.body.pause();
    }
    this.wake?.();
  }

  onEnd(): void {
    this.queue.push(...this.parser.end());
    this.ended = true;
    this.wake?.();
  }

  /** The body failed, or was destroyed before its end (the gateway cut it): a waiting next() must not wait for a timeout. */
  onError(error: Error): void {
    this.failure = error;
    this.wake?.();
  }

  /** Stops keeping a copy of the raw bytes (once they have been relayed). */
  stopRecording(): void {
    this.record = false;
    this.held.length = 0;
  }

  /**
   * The next event, or null at the end of the stream. Rejects with the body's
   * error, or StreamTimeoutError when no event comes within `timeoutMs`.
   */
  async next(timeoutMs: number | undefined, what: "first_token" | "idle" = "idle"): Promise<SseEvent | null> {
    // An event already read needs no timer.
    const queued = this.queue.shift();
    if (queued) return queued;
    let timer: NodeJS.Timeout | undefined;
    let timedOut = false;
    if (timeoutMs !== undefined) {
      timer = setTimeout(() => {
        timedOut = true;
        this.wake?.();
      }, timeoutMs);
    }
    try {
      for (;;) {
        const event = this.queue.shift();
        if (event) return event;
        if (this.failure) throw this.failure;
        if (this.ended) return null;
        if (timedOut) throw new StreamTimeoutError(what, timeoutMs as number);
        await new Promise<void>((resolve) => {
          this.wake = resolve;
          if (this.body.isPaused()) this.body.resume();
        });
        this.wake = undefined;
      }
    } finally {
      clearTimeout(timer);
    }
  }

  /** Stops reading and releases the upstream request. */
  destroy(): void {
    this.body.destroy();
  }
}
