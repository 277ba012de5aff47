import type { IncomingMessage, ServerResponse } from "node:http";
import { errorBody, type ErrorShape } from "./errors.js";

export type BodyResult = { readonly ok: true; readonly body: Buffer } | { readonly ok: false; readonly reason: "too_large" | "aborted" };

/** How long an over-limit upload is still read (and discarded) so the 413 reaches the client. */
const LINGER_MS = 5_000;

/** Reads the whole request body, or stops at `limit` bytes. */
export function readBody(req: IncomingMessage, limit: number): Promise<BodyResult> {
  const declared = Number(req.headers["content-length"]);
  if (declared > limit) return Promise.resolve({ ok: false, reason: "too_large" });
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const cleanup = () => {
      req.off("data", onData);
      req.off("end", onEnd);
      req.off("error", onAbort);
      req.off("aborted", onAbort);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        cleanup();
        resolve({ ok: false, reason: "too_large" });
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => {
      cleanup();
      resolve({ ok: true, body: chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, size) });
    };
    const onAbort = () => {
      cleanup();
      resolve({ ok: false, reason: "aborted" });
    };
    req.on("data", onData);
    req.on("end", onEnd);
    req.on("error", onAbort);
    req.on("aborted", onAbort);
  });
}

/**
 * Answers 413 in a way the client actually sees: the whole response is written
 * at once, while the rest of the upload is read and thrown away (bounded by
 * LINGER_MS), and only then is the connection closed. Closing straight away, as
 * 1.0.0 did, resets the socket under a client that is still sending, and the
 * client reports a connection error instead of the 413.
 */
export function rejectTooLarge(req: IncomingMessage, res: ServerResponse, limit: number, shape: ErrorShape = "openai"): void {
  const body = errorBody(413, "request_too_large", `Request body exceeds the gateway's limit of ${limit} bytes (MAX_BODY_BYTES).`, undefined, shape);
  res.writeHead(413, { "content-type": "application/json; charset=utf-8", "content-length": Buffer.byteLength(body), connection: "close" });
  res.write(body);
  if (req.complete) {
    res.end();
    return;
  }
  let timer: NodeJS.Timeout | undefined;
  const finish = () => {
    clearTimeout(timer);
    req.off("end", finish);
    req.off("close", finish);
    if (!res.writableEnded) res.end();
  };
  timer = setTimeout(finish, LINGER_MS);
  timer.unref();
  req.on("end", finish);
  req.on("close", finish);
  req.resume();
}
