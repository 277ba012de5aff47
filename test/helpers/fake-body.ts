import { UpstreamBody } from "../../src/upstream/body.js";

/**
 * The producing side of an UpstreamBody, as undici's dispatcher drives it:
 * a socket whose bytes wait (up to `highWaterMark`) while the body has asked
 * it to stop, and flow again when the body resumes it.
 */
export class FakeUpstream {
  readonly body: UpstreamBody;
  /** Bytes the "socket" holds because the body asked it to wait. */
  private readonly waiting: Buffer[] = [];
  private stalled = false;
  private endPending = false;
  aborted: Error | undefined;
  readonly highWaterMark: number;

  constructor(options: { highWaterMark?: number } = {}) {
    this.highWaterMark = options.highWaterMark ?? 16 * 1024;
    this.body = new UpstreamBody({
      resume: () => {
        this.stalled = false;
        this.flow();
      },
      abort: (error) => {
        this.aborted = error;
      },
    });
  }

  /** Like a writable's write(): false once the waiting bytes reach the high-water mark. */
  write(chunk: Buffer): boolean {
    if (this.aborted) return false;
    this.waiting.push(chunk);
    this.flow();
    return this.readableLength < this.highWaterMark;
  }

  end(chunk?: Buffer): void {
    if (chunk) this.write(chunk);
    this.endPending = true;
    this.flow();
  }

  /** With an error: the upstream failed. Without: the body is destroyed by someone else. */
  destroy(error?: Error): void {
    if (error) this.body.fail(error);
    else this.body.destroy();
  }

  isPaused(): boolean {
    return this.body.isPaused();
  }

  get destroyed(): boolean {
    return this.aborted !== undefined;
  }

  get readableLength(): number {
    return this.waiting.reduce((sum, chunk) => sum + chunk.length, 0);
  }

  private flow(): void {
    while (!this.stalled && !this.aborted && this.waiting.length > 0) {
      if (!this.body.push(this.waiting.shift() as Buffer)) this.stalled = true;
    }
    if (!this.stalled && this.waiting.length === 0 && this.endPending) {
      this.endPending = false;
      this.body.finish();
    }
  }
}
