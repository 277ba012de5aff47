/**
 * An upstream response body as undici's dispatcher delivers it: chunks pushed
 * from the HTTP parser straight to one consumer (a sink), with backpressure
 * reaching the socket. It replaces undici's BodyReadable (a Node Readable
 * behind an async resource), whose stream machinery and events cost more per
 * answer than the rest of the proxying; the gateway only ever has one reader
 * per body, so it needs none of that.
 */

/** The reader of a body. Callbacks may come synchronously from `consume()` (chunks that arrived before it). */
export interface BodySink {
  onData(chunk: Buffer): void;
  onEnd(): void;
  onError(error: Error): void;
}

/** What the body needs from the request that produces it. */
export interface BodyControls {
  /** Restarts reading after `push` returned false. */
  resume(): void;
  /** Ends the upstream request (the connection is not reused). */
  abort(error: Error): void;
}

export class BodyDestroyedError extends Error {
  override readonly name = "AbortError";
  readonly code = "UND_ERR_ABORTED";
  constructor() {
    super("the upstream stream closed before its end");
  }
}

/** Bytes buffered while no sink reads them (between response headers and the first reader): then the socket waits. */
const UNREAD_LIMIT = 64 * 1024;

export class UpstreamBody {
  private sink: BodySink | undefined;
  private unread: Buffer[] | undefined;
  private unreadBytes = 0;
  private paused = false;
  /** The producer was told to stop (push returned false) and waits for `resume`. */
  private stalled = false;
  private ended = false;
  private failure: Error | undefined;
  /** Ended, failed or destroyed: no more data will come. */
  destroyed = false;

  constructor(private readonly controls: BodyControls) {}

  /** Sets the reader (replacing any earlier one) and hands it what arrived before it, unless it starts `paused`. */
  consume(sink: BodySink, paused = false): void {
    this.sink = sink;
    this.paused = paused;
    if (!paused) this.flush();
  }

  /** Detaches the reader: data arriving from now on is kept (bounded) for the next one. */
  release(): void {
    this.sink = undefined;
  }

  pause(): void {
    this.paused = true;
  }

  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    this.flush();
  }

  isPaused(): boolean {
    return this.paused;
  }

  /** Stops the upstream request; the reader (if any) gets BodyDestroyedError unless it already had the end. */
  destroy(error?: Error): void {
    if (this.destroyed) {
      // It ended or failed while its reader was paused, so the reader has not heard: tell it now, or a
      // reader that gave up (the client left) would wait for a resume that never comes.
      const sink = this.sink;
      if (sink === undefined) return;
      this.sink = undefined;
      this.unread = undefined;
      this.unreadBytes = 0;
      sink.onError(error ?? new BodyDestroyedError());
      return;
    }
    const reason = error ?? new BodyDestroyedError();
    this.fail(reason);
    this.controls.abort(reason);
  }

  /** Reads and drops up to `limit` bytes so the connection can be reused, or cuts the request beyond that. */
  drain(limit: number): void {
    if (this.destroyed && this.unread === undefined) return;
    this.consume(new Drain(this, limit));
  }

  // ---- the producer's side (the dispatch handler) ----

  /** A chunk from the upstream; false asks the producer to wait for `resume`. */
  push(chunk: Buffer): boolean {
    if (this.destroyed) return false;
    if (this.sink !== undefined && !this.paused && this.unread === undefined) {
      this.sink.onData(chunk);
      return this.wantsMore();
    }
    (this.unread ??= []).push(chunk);
    this.unreadBytes += chunk.length;
    return this.wantsMore();
  }

  finish(): void {
    if (this.destroyed) return;
    this.ended = true;
    this.destroyed = true;
    this.flush();
  }

  fail(error: Error): void {
    if (this.destroyed) return;
    this.failure = error;
    this.destroyed = true;
    // A failure is not held behind unread data: the reader learns of it at once.
    this.unread = undefined;
    this.unreadBytes = 0;
    const sink = this.sink;
    this.sink = undefined;
    sink?.onError(error);
  }

  private wantsMore(): boolean {
    const more = !this.paused && (this.sink !== undefined ? this.unread === undefined : this.unreadBytes < UNREAD_LIMIT);
    if (!more) this.stalled = true;
    return more;
  }

  private flush(): void {
    const sink = this.sink;
    if (sink === undefined) return;
    while (this.unread !== undefined && !this.paused && this.sink === sink) {
      const chunk = this.unread.shift() as Buffer;
      this.unreadBytes -= chunk.length;
      if (this.unread.length === 0) this.unread = undefined;
      sink.onData(chunk);
    }
    if (this.unread !== undefined || this.paused || this.sink !== sink) return;
    if (this.ended) {
      this.sink = undefined;
      sink.onEnd();
    } else if (this.failure !== undefined) {
      this.sink = undefined;
      sink.onError(this.failure);
    } else if (this.stalled) {
      this.stalled = false;
      // Never from inside a chunk's callback: undici's parser must not be resumed while it runs.
      process.nextTick(resumeProducer, this.controls);
    }
  }
}

function resumeProducer(controls: BodyControls): void {
  controls.resume();
}

/** Reads a body to its end, dropping it; cuts it once more than `limit` bytes came. */
class Drain implements BodySink {
  private seen = 0;
  constructor(
    private readonly body: UpstreamBody,
    private readonly limit: number,
  ) {}
  onData(chunk: Buffer): void {
    this.seen += chunk.length;
    if (this.seen > this.limit) this.body.destroy();
  }
  onEnd(): void {}
  onError(): void {}
}
