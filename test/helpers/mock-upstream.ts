import { createServer, type IncomingHttpHeaders, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { chatCompletion, chatCompletionEvents } from "../../src/demo/mock-openai.js";

/** One request as the mock upstream received it. */
export interface Received {
  readonly method: string;
  readonly url: string;
  readonly headers: IncomingHttpHeaders;
  readonly body: Buffer;
  /** The body parsed as JSON, when it is JSON. */
  readonly json: Record<string, unknown> | undefined;
  /** performance.now() when the request's headers arrived. */
  readonly at: number;
  /** The client's port: which connection the request came on. */
  readonly remotePort: number | undefined;
}

export type Handler = (req: Received, res: ServerResponse) => void | Promise<void>;

export interface MockUpstream {
  /** http://127.0.0.1:PORT */
  readonly origin: string;
  readonly received: Received[];
  /** Replaces the handler for the following requests. */
  handle(handler: Handler): void;
  close(): Promise<void>;
}

/** An upstream on 127.0.0.1 that records every request and answers with `handler` (default: a chat completion). */
export async function startMockUpstream(handler: Handler = replyChat()): Promise<MockUpstream> {
  let current = handler;
  const received: Received[] = [];
  const server = createServer((req, res) => {
    const at = performance.now();
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      const body = Buffer.concat(chunks);
      let json: Record<string, unknown> | undefined;
      try {
        json = body.length ? (JSON.parse(body.toString("utf8")) as Record<string, unknown>) : undefined;
      } catch {
        json = undefined;
      }
      const entry: Received = { method: req.method ?? "", url: req.url ?? "", headers: req.headers, body, json, at, remotePort: req.socket.remotePort };
      received.push(entry);
      Promise.resolve(current(entry, res)).catch((error: unknown) => {
        if (!res.headersSent) res.writeHead(500);
        res.end(String(error));
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    origin: `http://127.0.0.1:${port}`,
    received,
    handle(next) {
      current = next;
    },
    close() {
      return new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}

export function sendJson(res: ServerResponse, status: number, payload: unknown, headers: Record<string, string> = {}): void {
  const body = JSON.stringify(payload);
  res.writeHead(status, { "content-type": "application/json", "content-length": String(Buffer.byteLength(body)), ...headers });
  res.end(body);
}

/** Answers a chat completion (streamed when the request asks for it) naming the model it received. */
export function replyChat(text = "Hello from the mock."): Handler {
  return (req, res) => {
    const model = typeof req.json?.model === "string" ? req.json.model : "unknown";
    if (req.json?.stream === true) {
      const usage = (req.json.stream_options as { include_usage?: boolean } | undefined)?.include_usage === true;
      res.writeHead(200, { "content-type": "text/event-stream" });
      for (const event of chatCompletionEvents(model, text.split(/(?<= )/), "chatcmpl-mock", usage)) res.write(event);
      res.end();
      return;
    }
    sendJson(res, 200, chatCompletion(model, text, "chatcmpl-mock"));
  };
}

/** Answers `status` with an OpenAI-shaped error. */
export function replyStatus(status: number, headers: Record<string, string> = {}, code = `status_${status}`): Handler {
  return (_req, res) => sendJson(res, status, { error: { message: `mock upstream answered ${status}`, type: "mock_error", code } }, headers);
}
