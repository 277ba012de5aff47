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
/** A synchronous consumer for `pump`: takes an event (true), or leaves it queued and ends the pump (false). */
export type EventStep = (event: SseEvent) => boolean;

export class EventReader implements BodySink {
  private readonly parser = new SseParser();
  private pumping: { readonly step: EventStep; readonly resolve: (lastDataAt: number) => void; readonly anyEvent: boolean } | undefined;
  private idleTimer: NodeJS.Timeout | undefined;
  private idleMs = 0;
  private lastDataAt = 0;
  private readonly queue: SseEvent[] = [];
  private ended = false;
  private failure: Error | undefined;
  private wake: (() => void) | undefined;
  /** The consumer paused the body (its client is not reading): only its resume() may restart it, not a read. */
  private consumerPaused = false;
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
    const pumping = this.pumping;
    if (pumping !== undefined && events.length > 0) {
      let i = 0;
      for (; i < events.length; i++) {
        const event = events[i] as SseEvent;
        if (pumping.anyEvent || event.data !== undefined) this.lastDataAt = performance.now();
        if (!pumping.step(event)) break;
        // The step may have ended the pump (the client left and the reader was destroyed).
        if (this.pumping !== pumping) return;
      }
      if (i === events.length) return;
      for (; i < events.length; i++) this.queue.push(events[i] as SseEvent);
      this.stopPump();
    } else if (events.length > 0) {
      for (const event of events) this.queue.push(event);
      // Backpressure without a pause per event: stop reading only once a backlog builds up.
      if (this.queue.length >= MAX_QUEUED) this.body.pause();
    }
    this.wakeUp();
  }

  onEnd(): void {
    this.queue.push(...this.parser.end());
    this.ended = true;
    this.stopPump();
    this.wakeUp();
  }

  /** The body failed, or was destroyed before its end (the gateway cut it): a waiting next() must not wait for a timeout. */
  onError(error: Error): void {
    this.failure = error;
    this.stopPump();
    this.wakeUp();
  }

  /**
   * Hands events to `step` synchronously as they are parsed, with no promise
   * or timer per event (the relay's steady state), until `step` leaves one
   * (it stays queued for next()), the body ends or fails, or no data event
   * comes for `idleMs` after `since` or the last one (any event, comments
   * included, with `anyEvent`; a timed-out pump just ends: next() then
   * reports the timeout). Resolves with the time of the last event counted,
   * for the caller's idle accounting.
   */
  pump(step: EventStep, idleMs: number, since: number, anyEvent = false): Promise<number> {
    while (this.queue.length > 0) {
      const event = this.queue[0] as SseEvent;
      if (anyEvent || event.data !== undefined) since = performance.now();
      if (!step(event)) return Promise.resolve(since);
      this.queue.shift();
    }
    if (this.failure || this.ended) return Promise.resolve(since);
    return new Promise((resolve) => {
      this.pumping = { step, resolve, anyEvent };
      this.idleMs = idleMs;
      this.lastDataAt = since;
      this.idleTimer = setTimeout(checkIdle, Math.max(1, since + idleMs - performance.now()), this);
      // A step above may have paused it for its client: that pause stands.
      if (!this.consumerPaused && this.body.isPaused()) this.body.resume();
    });
  }

  /** Holds the upstream (the client is not reading): it does not count as silence. */
  pause(): void {
    this.consumerPaused = true;
    this.body.pause();
  }

  resume(): void {
    this.consumerPaused = false;
    this.lastDataAt = Math.max(this.lastDataAt, performance.now());
    this.body.resume();
  }

  /** @internal the idle timer of a pump: re-armed for what is left, or the pump ends. */
  checkIdle(): void {
    if (this.pumping === undefined) return;
    const left = this.body.isPaused() ? this.idleMs : this.lastDataAt + this.idleMs - performance.now();
    if (left > 0) this.idleTimer = setTimeout(checkIdle, left, this);
    else this.stopPump();
  }

  private stopPump(): void {
    const pumping = this.pumping;
    if (pumping === undefined) return;
    this.pumping = undefined;
    clearTimeout(this.idleTimer);
    pumping.resolve(this.lastDataAt);
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
        this.wakeUp();
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
          // Even if the consumer paused it: next() hands over one event, which its caller writes with backpressure.
          if (this.body.isPaused()) this.body.resume();
        });
        this.wake = undefined;
      }
    } finally {
      clearTimeout(timer);
    }
  }

  /** Resolves a waiting next() once: a read may deliver several chunks before it resumes, and resolving twice costs V8 a runtime call. */
  private wakeUp(): void {
    const wake = this.wake;
    if (wake === undefined) return;
    this.wake = undefined;
    wake();
  }

  /** Stops reading and releases the upstream request. */
  destroy(): void {
    this.body.destroy();
  }
}

function checkIdle(reader: EventReader): void {
  reader.checkIdle();
}
