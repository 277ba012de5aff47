import type { SseEvent } from "./sse.js";

/** Where a relay pulls its events from: an upstream body, or a translation of one. */
export interface EventSource {
  /** The next event, or null at the end; rejects on a failure or when none comes within `timeoutMs`. */
  next(timeoutMs: number | undefined, what?: "first_token" | "idle"): Promise<SseEvent | null>;
  /** Stops reading and releases the upstream request. */
  destroy(): void;
  /** Synchronous delivery for a relay's steady state (see EventReader.pump); sources without it are read with next(). */
  pump?(step: (event: SseEvent) => boolean, idleMs: number, since: number, anyEvent?: boolean): Promise<number>;
  /** Holds the upstream while the client is not reading (used by a pump's step). */
  pause?(): void;
  resume?(): void;
}

/** Turns one upstream event (its name and parsed data) into the events of another API. */
export interface EventTranslator {
  push(event: string | undefined, data: Record<string, unknown>): Record<string, unknown>[];
  /** The upstream said its answer is complete. */
  readonly done: boolean;
}

const DONE: SseEvent = { event: undefined, data: "[DONE]", raw: Buffer.from("data: [DONE]\n\n") };

/**
 * An upstream stream seen through a translator, as `data:` events of the
 * client's API (a `[DONE]` event closes it once the upstream's answer is
 * complete). Timeouts span the upstream events that translate to nothing
 * (pings, block starts): silence is measured against the translated output.
 */
export class TranslatedSource implements EventSource {
  private readonly queue: SseEvent[] = [];
  private finished = false;

  constructor(
    private readonly inner: EventSource,
    private readonly translator: EventTranslator,
  ) {}

  async next(timeoutMs: number | undefined, what?: "first_token" | "idle"): Promise<SseEvent | null> {
    const until = timeoutMs === undefined ? undefined : performance.now() + timeoutMs;
    for (;;) {
      const queued = this.queue.shift();
      if (queued) return queued;
      if (this.finished) return null;
      const event = await this.inner.next(until === undefined ? undefined : Math.max(1, until - performance.now()), what);
      if (event === null || event.data === undefined) return event;
      let data: unknown;
      try {
        data = JSON.parse(event.data);
      } catch {
        return event; // the relay counts and drops it
      }
      if (!data || typeof data !== "object" || Array.isArray(data)) return event;
      for (const chunk of this.translator.push(event.event, data as Record<string, unknown>)) {
        const raw = Buffer.from(`data: ${JSON.stringify(chunk)}\n\n`);
        this.queue.push({ event: undefined, data: raw.toString("utf8", 6, raw.length - 2), raw });
      }
      if (this.translator.done) {
        this.queue.push(DONE);
        this.finished = true;
      }
    }
  }

  destroy(): void {
    this.inner.destroy();
  }
}
