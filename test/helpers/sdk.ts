/**
 * Small helpers shared by the end-to-end tests: per-test gateways and mock
 * upstreams that close themselves, the official openai SDK pointed at a
 * gateway, raw HTTP (node:http and plain sockets) for what an SDK cannot send,
 * and a bounded wait for conditions that have no event of their own.
 */
import http, { type IncomingHttpHeaders, type ServerResponse } from "node:http";
import net, { type AddressInfo } from "node:net";
import type { TestContext } from "node:test";
import OpenAI from "openai";
import { startGateway, type TestGateway } from "./gateway.js";
import { startMockUpstream, type Handler, type MockUpstream, type Received } from "./mock-upstream.js";

/** A mock upstream closed when the test ends. */
export async function useMock(t: TestContext, handler?: Handler): Promise<MockUpstream> {
  const mock = await startMockUpstream(handler);
  t.after(() => mock.close());
  return mock;
}

/** A gateway closed when the test ends. */
export async function useGateway(t: TestContext, routesYaml: string, env: Record<string, string> = {}): Promise<TestGateway> {
  const gw = await startGateway(routesYaml, env);
  t.after(() => gw.close());
  return gw;
}

/** The official openai SDK, as OpenClaw-style clients configure it: a placeholder key, no SDK retries. */
export function sdk(gw: TestGateway, apiKey = "placeholder-key"): OpenAI {
  return new OpenAI({ baseURL: `${gw.url}/v1`, apiKey, maxRetries: 0, timeout: 30_000 });
}

export interface RawResponse {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: Buffer;
  readonly text: string;
  json(): any;
}

export interface RawRequestOptions {
  method?: string;
  path: string;
  headers?: Record<string, string>;
  /** Sent with a content-length (unless the headers say otherwise). */
  body?: string | Buffer;
  /** Sent chunked, one write each, no content-length. */
  chunks?: readonly Buffer[];
}

/** One request over a fresh connection (no pooling), the answer read to its end. */
export function rawRequest(baseUrl: string, options: RawRequestOptions): Promise<RawResponse> {
  const url = new URL(baseUrl);
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { ...options.headers };
    const body = typeof options.body === "string" ? Buffer.from(options.body) : options.body;
    if (body && !Object.keys(headers).some((k) => k.toLowerCase() === "content-length")) headers["content-length"] = String(body.length);
    const req = http.request({ host: url.hostname, port: url.port, method: options.method ?? "GET", path: options.path, headers, agent: false });
    req.on("error", reject);
    req.on("response", (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (chunk: Buffer) => chunks.push(chunk));
      res.on("error", reject);
      res.on("end", () => {
        const all = Buffer.concat(chunks);
        const text = all.toString("utf8");
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: all, text, json: () => JSON.parse(text) });
      });
    });
    if (options.chunks) {
      for (const chunk of options.chunks) req.write(chunk);
      req.end();
    } else {
      req.end(body);
    }
  });
}

/** Writes `data` on a plain TCP connection to the gateway and resolves with everything it answers until it closes. */
export function socketExchange(baseUrl: string, data: string | Buffer): Promise<string> {
  const url = new URL(baseUrl);
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(url.port), url.hostname);
    const chunks: Buffer[] = [];
    socket.on("data", (chunk: Buffer) => chunks.push(chunk));
    socket.on("error", reject);
    socket.on("end", () => {
      socket.destroy();
      resolve(Buffer.concat(chunks).toString("utf8"));
    });
    socket.on("connect", () => socket.write(data));
  });
}

/** Splits a raw HTTP/1.1 response (read until close) into status, lower-cased headers and body text. */
export function parseRawResponse(raw: string): { status: number; headers: Map<string, string[]>; body: string } {
  const split = raw.indexOf("\r\n\r\n");
  const head = raw.slice(0, split).split("\r\n");
  const status = Number(head[0]?.split(" ")[1]);
  const headers = new Map<string, string[]>();
  for (const line of head.slice(1)) {
    const colon = line.indexOf(":");
    const name = line.slice(0, colon).trim().toLowerCase();
    headers.set(name, [...(headers.get(name) ?? []), line.slice(colon + 1).trim()]);
  }
  let body = raw.slice(split + 4);
  if (headers.get("transfer-encoding")?.some((v) => v.toLowerCase().includes("chunked"))) {
    let out = "";
    let rest = body;
    for (;;) {
      const eol = rest.indexOf("\r\n");
      const size = parseInt(rest.slice(0, eol), 16);
      if (!size) break;
      out += rest.slice(eol + 2, eol + 2 + size);
      rest = rest.slice(eol + 2 + size + 2);
    }
    body = out;
  }
  return { status, headers, body };
}

/** A TCP port on 127.0.0.1 that nothing listens on (bound, then released). */
export async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/**
 * Resolves with `probe()`'s first truthy value. For conditions that have no
 * event of their own (a log line written just after the response); polls
 * briefly and fails after `timeoutMs`, never a fixed sleep.
 */
export async function waitFor<T>(probe: () => T | undefined | null | false, what: string, timeoutMs = 10_000): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value) return value;
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

export interface Deferred<T> {
  readonly promise: Promise<T>;
  resolve(value: T): void;
}

export function deferred<T>(): Deferred<T> {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

/** A mock handler that never answers; `held` resolves with the first held request's response object. */
export function holdForever(): { handler: Handler; held: Promise<{ req: Received; res: ServerResponse }>; closed: Promise<void> } {
  const held = deferred<{ req: Received; res: ServerResponse }>();
  const closed = deferred<void>();
  return {
    handler: (req, res) => {
      res.on("close", () => closed.resolve());
      held.resolve({ req, res });
    },
    held: held.promise,
    closed: closed.promise,
  };
}

/** The `data:` payloads of an SSE text, in order. */
export function sseData(text: string): string[] {
  return text
    .split(/\r?\n/)
    .filter((line) => line.startsWith("data:"))
    .map((line) => line.slice(5).trim());
}

/** A chat completion request body as JSON text. */
export function chatBody(model: string, extra: Record<string, unknown> = {}): string {
  return JSON.stringify({ model, messages: [{ role: "user", content: "Hi" }], ...extra });
}
