import type { ServerResponse } from "node:http";
import type { GatewayConfig } from "../config/types.js";
import { sendError, type ErrorShape } from "../server/errors.js";
import { relayResponseHeaders } from "../upstream/headers.js";
import { abandon, type UpstreamResponse } from "../upstream/client.js";
import type { BodySink, UpstreamBody } from "../upstream/body.js";
import type { EventSource } from "../stream/source.js";
import { jsonWithNotice, sseError, sseNotice, type GatewayNotice } from "./notice.js";

/** Largest upstream body the gateway will hold to inspect or annotate; larger ones are streamed untouched. */
export const INSPECT_LIMIT = 1024 * 1024;

/** Largest upstream answer the gateway will translate into another API (it must hold all of it). */
export const TRANSLATE_LIMIT = 16 * 1024 * 1024;

export interface Collected {
  readonly chunks: Buffer[];
  readonly size: number;
  /** False when the limit was reached first: the stream is paused with the rest unread. */
  readonly complete: boolean;
}

/** The collected bytes as one buffer (a single chunk as it is: most answers arrive in one read). */
export function joined(collected: Collected): Buffer {
  return collected.chunks.length === 1 ? (collected.chunks[0] as Buffer) : Buffer.concat(collected.chunks, collected.size);
}

/** Reads `body` up to `limit` bytes; rejects if the upstream body fails. */
export function collect(body: UpstreamBody, limit: number): Promise<Collected> {
  return new Promise((resolve, reject) => body.consume(new Collector(body, limit, resolve, reject)));
}

class Collector implements BodySink {
  private readonly chunks: Buffer[] = [];
  private size = 0;
  constructor(
    private readonly body: UpstreamBody,
    private readonly limit: number,
    private readonly resolve: (collected: Collected) => void,
    private readonly reject: (error: Error) => void,
  ) {}
  onData(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.size += chunk.length;
    if (this.size > this.limit) {
      // The rest waits (paused) for whoever reads it next.
      this.body.pause();
      this.body.release();
      this.resolve({ chunks: this.chunks, size: this.size, complete: false });
    }
  }
  onEnd(): void {
    this.resolve({ chunks: this.chunks, size: this.size, complete: true });
  }
  onError(error: Error): void {
    this.reject(error);
  }
}

export interface ContentKind {
  readonly sse: boolean;
  readonly json: boolean;
  /** The body is compressed, so the gateway cannot read or annotate it. */
  readonly encoded: boolean;
}

const NOT_ONE_VALUE = /ndjson|jsonl|json-seq|jsonlines/;

export function contentKind(headers: UpstreamResponse["headers"]): ContentKind {
  const type = String(headers["content-type"] ?? "").toLowerCase();
  const encoding = String(headers["content-encoding"] ?? "identity").toLowerCase();
  const sse = type.includes("text/event-stream");
  // Newline-delimited JSON is a series of values, not one the notice could be added to.
  const json = !sse && type.includes("json") && !NOT_ONE_VALUE.test(type);
  return { sse, json, encoded: encoding !== "identity" && encoding !== "" };
}

export interface Delivery {
  readonly upstream: UpstreamResponse;
  readonly kind: ContentKind;
  /** Body bytes already read from the upstream (for inspection), in order. */
  readonly pending: Collected | undefined;
  /** Those bytes parsed, when they are the whole answer, JSON, and to be translated. */
  readonly payload?: unknown;
  readonly gatewayHeaders: Record<string, string>;
  readonly notice: GatewayNotice | undefined;
  readonly method: string;
  /** Writes the body instead of piping the upstream's (a stream the gateway relays event by event). */
  readonly relayBody?: (res: ServerResponse) => Promise<void>;
  /** Turns the upstream's JSON answer (or error) into the client's API. */
  /** The upstream's answer in the client's API; undefined when a 2xx body is no answer (then it is passed on as an error). */
  readonly translate?: (payload: unknown, status: number) => unknown;
  readonly errorShape: ErrorShape;
  /** The client's API has no room for a named notice event (Responses, Anthropic): a comment line or nothing. */
  readonly sseComment?: boolean;
}

/**
 * Writes the chosen upstream response to the client: status, relayed headers,
 * the gateway's headers, the notice where it belongs, and the body, piped with
 * backpressure. Resolves when the response is over (finished, failed, or the
 * client went away).
 */
export async function deliver(res: ServerResponse, config: GatewayConfig, delivery: Delivery): Promise<void> {
  const { upstream, kind, notice } = delivery;
  let pending = delivery.pending;
  let replacement: Buffer | undefined;
  let prefix: Buffer | undefined;

  if (delivery.translate && !kind.sse) return deliverTranslated(res, config, delivery);
  if (notice && kind.sse) {
    prefix = sseNotice(notice, delivery.translate || delivery.sseComment ? (config.notice.sse === "off" ? "off" : "comment") : config.notice.sse);
  } else if (notice && kind.json && !kind.encoded && config.notice.json && delivery.method !== "HEAD") {
    if (!pending) {
      try {
        pending = await collect(upstream.body, INSPECT_LIMIT);
      } catch (error) {
        if (!res.destroyed) sendError(res, 502, "upstream_body_error", `The upstream failed while sending its answer: ${(error as Error).message}`, undefined, delivery.errorShape);
        return;
      }
    }
    if (pending.complete) replacement = jsonWithNotice(joined(pending), notice);
  }

  const headers = relayResponseHeaders(upstream.headers, replacement !== undefined || prefix !== undefined || delivery.relayBody !== undefined);
  Object.assign(headers, delivery.gatewayHeaders);

  if (replacement) {
    headers["content-length"] = replacement.length;
    res.writeHead(upstream.statusCode, headers);
    res.end(replacement);
    return finished(res);
  }

  res.writeHead(upstream.statusCode, headers);
  if (prefix) res.write(prefix);
  if (delivery.relayBody) return delivery.relayBody(res);
  if (pending) {
    for (const chunk of pending.chunks) res.write(chunk);
    if (pending.complete) {
      res.end();
      return finished(res);
    }
  }
  return relay(upstream.body, res, kind.sse);
}

/**
 * A JSON answer translated into the client's API: read whole (bounded),
 * translated, the notice added, sent with its new length.
 */
async function deliverTranslated(res: ServerResponse, config: GatewayConfig, delivery: Delivery): Promise<void> {
  const { upstream, notice } = delivery;
  const translate = delivery.translate as NonNullable<Delivery["translate"]>;
  let pending = delivery.pending;
  try {
    pending ??= await collect(upstream.body, TRANSLATE_LIMIT);
  } catch (error) {
    if (!res.destroyed) sendError(res, 502, "upstream_body_error", `The upstream failed while sending its answer: ${(error as Error).message}`, undefined, delivery.errorShape);
    return;
  }
  if (!pending.complete) {
    abandon(upstream.body);
    sendError(res, 502, "answer_too_large", `The upstream's answer is larger than ${TRANSLATE_LIMIT} bytes, the most the gateway translates.`, undefined, delivery.errorShape);
    return;
  }
  const text = joined(pending).toString("utf8");
  let payload: unknown = pending === delivery.pending ? delivery.payload : undefined;
  try {
    payload ??= JSON.parse(text);
  } catch {
    if (upstream.statusCode < 400) {
      sendError(res, 502, "invalid_upstream_answer", "The upstream's answer is not JSON, so it cannot be translated.", undefined, delivery.errorShape);
      return;
    }
    payload = { error: { message: text.slice(0, 1000) || `HTTP ${upstream.statusCode}` } };
  }
  let status = upstream.statusCode;
  let translated = translate(payload, status) as Record<string, unknown> | undefined;
  if (translated === undefined) {
    // A 200 that carries an error (or nothing an answer has) must not reach the client as an empty answer.
    status = 502;
    translated = translate(payload, status) as Record<string, unknown>;
  }
  if (notice && config.notice.json && translated && typeof translated === "object") translated.gateway_notice = notice;
  const body = Buffer.from(JSON.stringify(translated));
  const headers = relayResponseHeaders(upstream.headers, true);
  delete headers["content-type"];
  delete headers["content-encoding"];
  Object.assign(headers, delivery.gatewayHeaders, { "content-type": "application/json", "content-length": body.length });
  res.writeHead(status, headers);
  res.end(delivery.method === "HEAD" ? undefined : body);
  return finished(res);
}

/** Relays the rest of an upstream body with backpressure; a failure mid-body never looks like a clean end. */
function relay(body: UpstreamBody, res: ServerResponse, sse: boolean): Promise<void> {
  return new Promise((resolve) => {
    if (res.destroyed) {
      body.destroy();
      resolve();
      return;
    }
    const relay = new Relay(body, res, sse);
    res.on("drain", relay.onDrain);
    res.on("close", () => {
      if (!res.writableFinished) body.destroy();
      resolve();
    });
    body.consume(relay);
  });
}

class Relay implements BodySink {
  readonly onDrain = () => this.body.resume();
  constructor(
    private readonly body: UpstreamBody,
    private readonly res: ServerResponse,
    private readonly sse: boolean,
  ) {}
  onData(chunk: Buffer): void {
    if (!this.res.write(chunk)) this.body.pause();
  }
  onEnd(): void {
    this.res.end();
  }
  onError(error: Error): void {
    const res = this.res;
    if (res.writableEnded || res.destroyed) return;
    if (this.sse) {
      // An SSE client would take a closed stream for a complete answer.
      res.end(sseError(`The upstream stream failed: ${error.message}`, "upstream_stream_error"));
    } else {
      res.destroy(error);
    }
  }
}

function finished(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    if (res.writableFinished || res.destroyed) resolve();
    else res.once("close", () => resolve());
  });
}

/**
 * Writes to a streaming client, both ways a relay needs. `write` waits while a
 * backed-up client drains (for the relay's awaited path); `send` does not wait
 * but holds the upstream (`upstream()`, the relay's current one) until the
 * client drains, with one listener however many events are written meanwhile.
 * What `send` gets during one upstream read (which can hold many events) goes
 * out as one chunk when that read's callbacks are done: each response write
 * costs node:http a chunk header and four stream writes, more than the event's
 * own relay. `write` and `end` send what is pending first, so order holds.
 */
export function clientWriter(res: ServerResponse, upstream: () => Pick<EventSource, "pause" | "resume">) {
  let waitingDrain = false;
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  const resume = () => {
    waitingDrain = false;
    upstream().resume?.();
  };
  const flush = () => {
    if (pending.length === 0) return;
    const batch = pending;
    const bytes = pendingBytes;
    pending = [];
    pendingBytes = 0;
    if (res.destroyed || res.writableEnded) return;
    const data = batch.length === 1 ? (batch[0] as Buffer) : Buffer.concat(batch, bytes);
    if (res.write(data) || waitingDrain) return;
    waitingDrain = true;
    upstream().pause?.();
    res.once("drain", resume);
  };
  return {
    async write(data: Buffer | string | undefined): Promise<boolean> {
      flush();
      if (res.destroyed) return false;
      if (data === undefined || data.length === 0) return true;
      if (res.write(data)) return true;
      await new Promise<void>((resolve) => {
        const done = () => {
          res.off("drain", done);
          res.off("close", done);
          resolve();
        };
        res.on("drain", done);
        res.on("close", done);
      });
      return !res.destroyed;
    },
    send(data: Buffer | string | undefined): void {
      if (data === undefined || data.length === 0) return;
      if (pending.length === 0) queueMicrotask(flush);
      const bytes = asBuffer(data);
      pending.push(bytes);
      pendingBytes += bytes.length;
      // A client that is (or would now be) backed up gets the batch at once, so the upstream is held from this event on.
      if (res.writableNeedDrain || res.writableLength + pendingBytes >= res.writableHighWaterMark) flush();
    },
    /** Ends the response after what is pending. */
    end(tail?: Buffer | string): void {
      flush();
      if (!res.writableEnded && !res.destroyed) res.end(tail);
    },
  };
}

const asBuffer = (data: Buffer | string): Buffer => (typeof data === "string" ? Buffer.from(data) : data);
