/**
 * The Node floor (`--compare`'s `node` target): about the leanest reverse
 * proxy Node can run — node:http in front, undici's dispatch API with a
 * keep-alive pool behind, the request body read and parsed for its model, the
 * response relayed chunk by chunk with backpressure, and on /fallback/ one
 * switch from the mock's busy port to the mock on 429, as nginx does there.
 * No failover engine, no stream inspection, no limits: not a gateway, a
 * reference for what Node itself costs on each scenario.
 *
 *   node build/bench/lean-proxy.js --upstream http://127.0.0.1:A --busy http://127.0.0.1:B --port P
 *
 * Prints `listening <port>` once ready; exits on SIGTERM.
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { parseArgs } from "node:util";
import { Agent, type Dispatcher } from "undici";

const { values } = parseArgs({ options: { upstream: { type: "string" }, busy: { type: "string" }, port: { type: "string" } } });
const upstream = values.upstream as string;
const busy = values.busy as string;
const agent = new Agent({ connections: 1100, keepAliveTimeout: 60_000, headersTimeout: 0, bodyTimeout: 0 });
const HOP_BY_HOP = new Set(["connection", "keep-alive", "transfer-encoding"]);
const FALLBACK = "/fallback";

function forward(origin: string, path: string, req: IncomingMessage, body: Buffer, res: ServerResponse, fallback: boolean): void {
  let retry = false;
  const handler: Dispatcher.DispatchHandler = {
    onConnect() {},
    onHeaders(status, raw, resume) {
      if (status === 429 && fallback) {
        retry = true;
        return true;
      }
      const headers: string[] = [];
      for (let i = 0; i < raw.length; i += 2) {
        const name = (raw[i] as Buffer).toString("latin1");
        if (!HOP_BY_HOP.has(name.toLowerCase())) headers.push(name, (raw[i + 1] as Buffer).toString("latin1"));
      }
      res.writeHead(status, headers);
      res.on("drain", resume);
      return true;
    },
    onData(chunk) {
      return retry || res.write(chunk);
    },
    onComplete() {
      if (retry) forward(upstream, path, req, body, res, false);
      else res.end();
    },
    onError() {
      if (!res.headersSent) res.writeHead(502);
      res.end();
    },
  };
  agent.dispatch(
    {
      origin,
      path,
      method: req.method as Dispatcher.HttpMethod,
      headers: { "content-type": "application/json", "content-length": String(body.length), authorization: "Bearer sk-bench-upstream-key", accept: req.headers.accept ?? "*/*" },
      body,
    },
    handler,
  );
}

const server = createServer({ keepAliveTimeout: 65_000 }, (req, res) => {
  const chunks: Buffer[] = [];
  req.on("data", (chunk: Buffer) => chunks.push(chunk));
  req.on("end", () => {
    const body = chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks);
    let model: unknown;
    try {
      model = (JSON.parse(body.toString("utf8")) as { model?: unknown }).model;
    } catch {
      // below
    }
    if (typeof model !== "string") {
      res.writeHead(400, { "content-type": "application/json" });
      res.end('{"error":{"message":"no model"}}');
      return;
    }
    const url = req.url ?? "/";
    if (url.startsWith(`${FALLBACK}/`)) forward(busy, url.slice(FALLBACK.length), req, body, res, true);
    else forward(upstream, url, req, body, res, false);
  });
});
server.listen(Number(values.port ?? 0), "127.0.0.1", () => {
  const address = server.address();
  process.stdout.write(`listening ${typeof address === "object" && address ? address.port : 0}\n`);
});
process.on("SIGTERM", () => process.exit(0));
