import type { Readable } from "node:stream";
import { SseParser } from "./sse.js";

/** What was read of an SSE body up to its first event. */
export interface FirstEvent {
  /** Bytes read so far, in order (to be relayed before the rest). */
  readonly chunks: Buffer[];
  readonly size: number;
  /** The `data:` payload of the first event that has one, or null. */
  readonly data: string | null;
  /** The body ended before any such event. */
  readonly ended: boolean;
  /** `timeoutMs` passed first (the body is left paused). */
  readonly timedOut: boolean;
}

const MAX_HELD = 1024 * 1024;

/**
 * Reads an SSE body until its first event carrying data (comments and pings
 * are skipped), so the gateway can still fail over when a stream starts with
 * an error or never starts. The body is left paused with the rest unread.
 */
export function awaitFirstEvent(body: Readable, timeoutMs: number | undefined): Promise<FirstEvent> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const parser = new SseParser();
    let timer: NodeJS.Timeout | undefined;
    const finish = (result: Omit<FirstEvent, "chunks" | "size">) => {
      clearTimeout(timer);
      body.off("data", onData);
      body.off("end", onEnd);
      body.off("error", onError);
      body.pause();
      resolve({ chunks, size, ...result });
    };
    const onData = (chunk: Buffer) => {
      chunks.push(chunk);
      size += chunk.length;
      for (const event of parser.push(chunk)) {
        if (event.data !== undefined) {
          finish({ data: event.data, ended: false, timedOut: false });
          return;
        }
      }
      // A stream that sends megabytes of comments and no event is not a stream we can hold.
      if (size > MAX_HELD) finish({ data: null, ended: false, timedOut: false });
    };
    const onEnd = () => finish({ data: null, ended: true, timedOut: false });
    const onError = (error: Error) => {
      clearTimeout(timer);
      body.off("data", onData);
      body.off("end", onEnd);
      reject(error);
    };
    if (timeoutMs !== undefined) timer = setTimeout(() => finish({ data: null, ended: false, timedOut: true }), timeoutMs);
    body.on("data", onData);
    body.on("end", onEnd);
    body.on("error", onError);
  });
}
