/**
 * Issue 2, items 5 (proxy: bytes, URL joining, the upstream host is the
 * route's, streaming with backpressure) and 11 (a client that goes away aborts
 * its upstream request), through a real gateway and real mock upstreams.
 */
import assert from "node:assert/strict";
import http, { type ServerResponse } from "node:http";
import { describe, test, type TestContext } from "node:test";
import { APIError } from "openai";
import { buildConfig } from "../../src/config/load.js";
import { chatCompletionEvents } from "../../src/demo/mock-openai.js";
import { replyChat, sendJson } from "../helpers/mock-upstream.js";
import {
  chatBody,
  deferred,
  holdForever,
  parseRawResponse,
  rawRequest,
  sdk,
  socketExchange,
  sseData,
  useGateway,
  useMock,
  waitFor,
} from "../helpers/sdk.js";

/** Every test is bounded: a missing abort or a hang fails it instead of stalling the suite. */
const T = { timeout: 20_000 };

/** A body no JSON serializer would produce: odd spacing, key order, escapes, raw and escaped unicode. */
function oddBody(model: string): string {
  return (
    '{\n\t"temperature" :0.70,  "messages":[ {"content":"h\\u00e9llo ünïcødé 🚀 \\"model\\": \\"nope\\"","role" : "user"} ],\r\n' +
    `  "model"   :   "${model}" ,"z":{"model":"inner"},"n":1e0 ,"empty":{} }\n\n`
  );
}

describe("proxy: bytes through unchanged", () => {
  test("a pinned request body reaches the upstream byte for byte", T, async (t) => {
    const mock = await useMock(t);
    const gw = await useGateway(t, `routes:\n  - name: r\n    url: ${mock.origin}/v1\n    isBaseUrl: true\n    model: [model-a, model-b]\n`);
    const body = Buffer.from(oddBody("model-a"), "utf8");
    const res = await rawRequest(gw.url, { method: "POST", path: "/v1/chat/completions", headers: { "content-type": "application/json" }, body });
    assert.equal(res.status, 200);
    assert.equal(mock.received.length, 1);
    const got = mock.received[0]!;
    assert.ok(got.body.equals(body), `upstream received different bytes:\n${got.body.toString("utf8")}`);
    assert.equal(got.headers["content-length"], String(body.length));
    assert.equal(got.method, "POST");
  });

  test("a response that needs no notice is piped unchanged (pinned and auto without a switch)", T, async (t) => {
    const upstreamBody = Buffer.from('{ "id" :"x-1",\n  "object":"chat.completion", "choices" : [],\t"note":"ü 🚀 \\u00e9"  }\n  ', "utf8");
    const mock = await useMock(t, (_req, res) => {
      res.writeHead(200, { "content-type": "application/json", "content-length": String(upstreamBody.length), "x-upstream-custom": "kept" });
      res.end(upstreamBody);
    });
    const gw = await useGateway(t, `routes:\n  - name: r\n    url: ${mock.origin}/v1\n    isBaseUrl: true\n    model: [model-a, model-b]\n`);
    for (const model of ["model-a", "auto"]) {
      const res = await rawRequest(gw.url, { method: "POST", path: "/v1/chat/completions", headers: { "content-type": "application/json" }, body: chatBody(model) });
      assert.equal(res.status, 200, model);
      assert.ok(res.body.equals(upstreamBody), `${model}: the client received different bytes:\n${res.text}`);
      assert.equal(res.headers["x-upstream-custom"], "kept", model);
      assert.equal(res.headers["x-gateway-switched"], undefined, model);
    }
  });
});

describe("proxy: URL joining", () => {
  test("isBaseUrl: /v1 is not doubled and the query string is kept", T, async (t) => {
    const mock = await useMock(t);
    const gw = await useGateway(
      t,
      `routes:
  - name: v1-base
    url: ${mock.origin}/v1
    isBaseUrl: true
    model: m-v1
  - name: slash-base
    url: ${mock.origin}/openai/v1/
    isBaseUrl: true
    model: m-slash
  - name: bare-origin
    url: ${mock.origin}
    isBaseUrl: true
    model: m-bare
  - name: prefix-no-v1
    url: ${mock.origin}/proxy?tenant=t1
    isBaseUrl: true
    model: m-prefix
`,
    );
    const cases: [string, string][] = [
      ["m-v1", "/v1/chat/completions?api-version=2024-01&x=a%20b"],
      ["m-slash", "/openai/v1/chat/completions?api-version=2024-01&x=a%20b"],
      ["m-bare", "/v1/chat/completions?api-version=2024-01&x=a%20b"],
      ["m-prefix", "/proxy/v1/chat/completions?tenant=t1&api-version=2024-01&x=a%20b"],
    ];
    for (const [model, expected] of cases) {
      const res = await rawRequest(gw.url, {
        method: "POST",
        path: "/v1/chat/completions?api-version=2024-01&x=a%20b",
        headers: { "content-type": "application/json" },
        body: chatBody(model),
      });
      assert.equal(res.status, 200, model);
      assert.equal(mock.received.at(-1)?.url, expected, model);
    }
  });

  test("a non-base url is the full endpoint; other /v1 paths on a /chat/completions route go to the sibling path", T, async (t) => {
    const mock = await useMock(t, (req, res) => sendJson(res, 200, { ok: true, model: req.json?.model }));
    const gw = await useGateway(
      t,
      `routes:
  - name: full-chat
    url: ${mock.origin}/deploy/chat/completions?api-version=7
    model: [chat-model, embed-model]
  - name: fixed
    url: ${mock.origin}/some/fixed/endpoint
    model: fixed-model
`,
    );
    const post = (path: string, model: string, extra: Record<string, unknown> = {}) =>
      rawRequest(gw.url, { method: "POST", path, headers: { "content-type": "application/json" }, body: chatBody(model, extra) });

    assert.equal((await post("/v1/chat/completions", "chat-model")).status, 200);
    assert.equal(mock.received.at(-1)?.url, "/deploy/chat/completions?api-version=7");

    assert.equal((await post("/v1/embeddings?dims=8", "embed-model", { input: "x" })).status, 200);
    assert.equal(mock.received.at(-1)?.url, "/deploy/embeddings?api-version=7&dims=8");

    assert.equal((await post("/v1/chat/completions", "fixed-model")).status, 200);
    assert.equal(mock.received.at(-1)?.url, "/some/fixed/endpoint");
    assert.equal((await post("/v1/responses", "fixed-model")).status, 200);
    assert.equal(mock.received.at(-1)?.url, "/some/fixed/endpoint");
  });
});

describe("proxy: the request target never picks the upstream host", () => {
  /** The real route's upstream plus a second server standing in for "another host" on this machine. */
  async function setup(t: TestContext) {
    const mock = await useMock(t);
    const evil = await useMock(t);
    const gw = await useGateway(t, `routes:\n  - name: r\n    url: ${mock.origin}/v1\n    isBaseUrl: true\n    model: m\n`);
    const mockHost = new URL(mock.origin).host;
    const evilHost = new URL(evil.origin).host;
    return { mock, evil, gw, mockHost, evilHost };
  }

  test("absolute-form request target (raw request line)", T, async (t) => {
    const { mock, evil, gw, mockHost, evilHost } = await setup(t);
    const body = chatBody("m");
    const raw = await socketExchange(
      gw.url,
      `POST http://${evilHost}/v1/chat/completions HTTP/1.1\r\nHost: ${evilHost}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
    const res = parseRawResponse(raw);
    assert.equal(res.status, 200, raw);
    assert.equal(evil.received.length, 0, "the other host was contacted");
    assert.equal(mock.received.length, 1);
    assert.equal(mock.received[0]!.url, "/v1/chat/completions");
    assert.equal(mock.received[0]!.headers.host, mockHost);

    // Also with the evil.example spelling from the issue.
    const raw2 = await socketExchange(
      gw.url,
      `POST http://evil.example/v1/chat/completions HTTP/1.1\r\nHost: evil.example\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
    assert.equal(parseRawResponse(raw2).status, 200, raw2);
    assert.equal(mock.received.length, 2);
    assert.equal(mock.received[1]!.headers.host, mockHost);
  });

  test("//host/... targets, .. and %2e%2e segments, spoofed Host and X-Forwarded-Host", T, async (t) => {
    const { mock, evil, gw, mockHost, evilHost } = await setup(t);
    const targets = [
      `//${evilHost}/v1/chat/completions`,
      `//${evilHost}`,
      "/v1/../x",
      "/v1/%2e%2e/%2E%2E/x",
      `/v1/../../${evilHost}/v1/chat/completions`,
      "/v1/chat/completions/../../../health",
      `/v1/chat/%2e%2e/%2e%2e/%2e%2e/${evilHost}/v1/chat/completions`,
      `/v1/chat/completions/..%2f..%2f..%2f${evilHost}`,
      `/v1@${evilHost}/chat/completions`,
    ];
    for (const target of targets) {
      const before = mock.received.length;
      const res = await rawRequest(gw.url, {
        method: "POST",
        path: target,
        headers: { "content-type": "application/json", host: evilHost, "x-forwarded-host": evilHost, forwarded: `host=${evilHost}`, "x-forwarded-proto": "https" },
        body: chatBody("m"),
      });
      assert.ok(res.status === 200 || res.status === 404 || res.status === 400, `${target}: unexpected ${res.status} ${res.text}`);
      if (res.status !== 200) assert.equal(typeof res.json().error?.code, "string", `${target}: ${res.text}`);
      assert.equal(evil.received.length, 0, `${target}: the other host was contacted`);
      for (const got of mock.received.slice(before)) {
        assert.equal(got.headers.host, mockHost, target);
        assert.equal(got.headers["x-forwarded-host"], undefined, target);
        assert.ok(!got.url.split("?")[0]!.split("/").includes(".."), `${target}: forwarded a .. segment: ${got.url}`);
        assert.ok(got.url.startsWith("/v1/"), `${target}: forwarded to ${got.url}`);
      }
    }
    // Dot segments that climb out of /v1 are resolved first, so they are not proxied at all.
    const climbing = await rawRequest(gw.url, { method: "POST", path: "/v1/../x", headers: { "content-type": "application/json" }, body: chatBody("m") });
    assert.equal(climbing.status, 404);
    assert.equal(climbing.json().error.type, "not_found_error");
    const encoded = await rawRequest(gw.url, { method: "POST", path: "/v1/%2e%2e/x", headers: { "content-type": "application/json" }, body: chatBody("m") });
    assert.equal(encoded.status, 404);

    // A plain request with spoofed Host / X-Forwarded-Host still goes to the route's host.
    const before = mock.received.length;
    const spoofed = await rawRequest(gw.url, {
      method: "POST",
      path: "/v1/chat/completions",
      headers: { "content-type": "application/json", host: evilHost, "x-forwarded-host": evilHost },
      body: chatBody("m"),
    });
    assert.equal(spoofed.status, 200);
    assert.equal(mock.received.length, before + 1);
    assert.equal(mock.received.at(-1)!.headers.host, mockHost);
    assert.equal(evil.received.length, 0);
  });
});

describe("proxy: streaming", () => {
  test("a long SSE stream arrives complete and in order (openai SDK for-await)", T, async (t) => {
    const count = 3000;
    const mock = await useMock(t, async (req, res) => {
      res.writeHead(200, { "content-type": "text/event-stream" });
      const pieces = Array.from({ length: count }, (_, i) => `${i},`);
      for (const event of chatCompletionEvents(String(req.json?.model), pieces, "chatcmpl-long")) {
        if (!res.write(event)) await new Promise((resolve) => res.once("drain", resolve));
      }
      res.end();
    });
    const gw = await useGateway(t, `routes:\n  - name: r\n    url: ${mock.origin}/v1\n    isBaseUrl: true\n    model: m\n`);
    const stream = await sdk(gw).chat.completions.create({ model: "m", stream: true, messages: [{ role: "user", content: "count" }] });
    let text = "";
    let chunks = 0;
    for await (const chunk of stream) {
      chunks++;
      text += chunk.choices[0]?.delta?.content ?? "";
    }
    assert.equal(text, Array.from({ length: count }, (_, i) => `${i},`).join(""));
    assert.equal(chunks, count + 2);
  });

  test("the upstream is read only as fast as the client reads (backpressure, no unbounded buffering)", T, async (t) => {
    const total = 96 * 1024 * 1024;
    const event = Buffer.from(`data: ${JSON.stringify({ pad: "x".repeat(16 * 1024) })}\n\n`);
    const { state, readRest } = await pausedClientStream(t, { chunk: event, total, path: "/v1/chat/completions", body: chatBody("m", { stream: true }) });
    // The upstream must end up blocked (its writes not drained) while the client reads nothing.
    await waitFor(() => state.done || (state.blockedSince > 0 && performance.now() - state.blockedSince > 750), "the upstream to block or finish", 20_000);
    assert.equal(state.done, false, `the gateway read the whole ${total}-byte upstream body while the client read nothing`);
    assert.ok(state.written < total / 2, `the gateway buffered ${state.written} bytes for a paused client`);

    // Once the client reads again, everything arrives.
    const received = await readRest();
    assert.equal(state.done, true);
    assert.equal(received, state.written);
    assert.ok(received >= total);
  });

  for (const api of ["chat", "responses"] as const) {
    test(`many small events per upstream read, a client that stops reading (${api}): the upstream is held, with one drain listener`, T, async (t) => {
      // Hundreds of events arrive in one read; each written to a backed-up client must not add a listener of its own.
      const warnings: Error[] = [];
      const onWarning = (warning: Error) => warnings.push(warning);
      process.on("warning", onWarning);
      t.after(() => process.off("warning", onWarning));
      const total = 24 * 1024 * 1024;
      const data = api === "chat" ? { pad: "x".repeat(100) } : { type: "response.output_text.delta", delta: "x".repeat(100) };
      const event = Buffer.from(`data: ${JSON.stringify(data)}\n\n`);
      const batch = Buffer.concat(Array.from({ length: 256 }, () => event));
      const { state, readRest } = await pausedClientStream(t, {
        chunk: batch,
        total,
        path: api === "chat" ? "/v1/chat/completions" : "/v1/responses",
        body: api === "chat" ? chatBody("m", { stream: true }) : JSON.stringify({ model: "m", input: "Hi", stream: true }),
      });
      await waitFor(() => state.done || (state.blockedSince > 0 && performance.now() - state.blockedSince > 750), "the upstream to block or finish", 20_000);
      assert.equal(state.done, false, `the gateway read the whole ${total}-byte upstream body while the client read nothing`);
      assert.ok(state.written < total / 2, `the gateway buffered ${state.written} bytes for a paused client`);

      const received = await readRest();
      assert.equal(state.done, true);
      assert.ok(received >= total, `received ${received} of ${total} bytes`);
      await new Promise((resolve) => setImmediate(resolve));
      assert.deepEqual(
        warnings.filter((w) => w.name === "MaxListenersExceededWarning").map((w) => w.message),
        [],
        "a drain listener per event written",
      );
    });
  }

  test("a stream that fails after content was sent ends with an in-band error, not a clean end", T, async (t) => {
    const mock = await useMock(t, (req, res) => {
      res.writeHead(200, { "content-type": "text/event-stream" });
      const events = chatCompletionEvents(String(req.json?.model), ["one ", "two ", "three"], "chatcmpl-broken");
      res.write(events[0]);
      res.write(events[1], () => res.socket?.destroy());
    });
    const gw = await useGateway(t, `routes:\n  - name: r\n    url: ${mock.origin}/v1\n    isBaseUrl: true\n    model: m\n`);
    const stream = await sdk(gw).chat.completions.create({ model: "m", stream: true, messages: [{ role: "user", content: "Hi" }] });
    let text = "";
    await assert.rejects(
      (async () => {
        for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? "";
      })(),
      (error: unknown) => error instanceof APIError && /upstream/i.test(error.message),
    );
    assert.equal(text, "one ");
  });
});

describe("a client that goes away aborts its upstream request", () => {
  test("before response headers (openai SDK abort)", T, async (t) => {
    const hold = holdForever();
    const mock = await useMock(t, hold.handler);
    const gw = await useGateway(t, `routes:\n  - name: r\n    url: ${mock.origin}/v1\n    isBaseUrl: true\n    model: m\n`);
    const controller = new AbortController();
    const call = sdk(gw).chat.completions.create({ model: "m", messages: [{ role: "user", content: "Hi" }] }, { signal: controller.signal });
    const rejected = assert.rejects(call);
    await hold.held;
    controller.abort();
    await rejected;
    // The gateway must close its upstream request now (REQUEST_TIMEOUT_MS is the default 60 s).
    await hold.closed;
    assert.equal(mock.received.length, 1);
    const line = await waitFor(() => gw.logs.find((l) => l.event === "request"), "the request log line");
    assert.equal(line.status, 499);
  });

  test("before response headers (raw HTTP, socket destroyed)", T, async (t) => {
    const hold = holdForever();
    const mock = await useMock(t, hold.handler);
    const gw = await useGateway(t, `routes:\n  - name: r\n    url: ${mock.origin}/v1\n    isBaseUrl: true\n    model: m\n`);
    const url = new URL(gw.url);
    const body = chatBody("m");
    const req = http.request({ host: url.hostname, port: url.port, method: "POST", path: "/v1/chat/completions", agent: false, headers: { "content-type": "application/json", "content-length": Buffer.byteLength(body) } });
    req.on("error", () => undefined);
    req.end(body);
    await hold.held;
    req.destroy();
    await hold.closed;
    // The gateway is still fine.
    mock.handle(replyChat());
    const next = await sdk(gw).chat.completions.create({ model: "m", messages: [{ role: "user", content: "again" }] });
    assert.equal(next.choices[0]?.message.content, "Hello from the mock.");
  });

  test("mid-stream: the client stops after the first chunk, the upstream response is closed", T, async (t) => {
    const upstreamClosed = deferred<void>();
    let upstreamRes: ServerResponse | undefined;
    const mock = await useMock(t, (req, res) => {
      upstreamRes = res;
      res.on("close", () => upstreamClosed.resolve());
      res.writeHead(200, { "content-type": "text/event-stream" });
      const events = chatCompletionEvents(String(req.json?.model), ["first ", "never"], "chatcmpl-slow");
      res.write(events[0]);
      res.write(events[1]);
      // ...and then the model "thinks" forever.
    });
    const gw = await useGateway(t, `routes:\n  - name: r\n    url: ${mock.origin}/v1\n    isBaseUrl: true\n    model: m\n`);
    const stream = await sdk(gw).chat.completions.create({ model: "m", stream: true, messages: [{ role: "user", content: "Hi" }] });
    let first = "";
    for await (const chunk of stream) {
      first += chunk.choices[0]?.delta?.content ?? "";
      if (first) break; // the SDK aborts its request on break
    }
    assert.equal(first, "first ");
    await upstreamClosed.promise;
    assert.ok(upstreamRes && !upstreamRes.writableEnded, "the upstream response was closed by the gateway, not finished");
    const line = await waitFor(() => gw.logs.find((l) => l.event === "request"), "the request log line");
    assert.equal(line.status, 499);
  });

  test("mid-stream with fetch: aborting the reader closes the upstream", T, async (t) => {
    const upstreamClosed = deferred<void>();
    const mock = await useMock(t, (req, res) => {
      res.on("close", () => upstreamClosed.resolve());
      res.writeHead(200, { "content-type": "text/event-stream" });
      // The role chunk and the first token: the gateway holds a stream until its first real output.
      const events = chatCompletionEvents(String(req.json?.model), ["first "], "chatcmpl-slow");
      res.write(events[0]);
      res.write(events[1]);
    });
    const gw = await useGateway(t, `routes:\n  - name: r\n    url: ${mock.origin}/v1\n    isBaseUrl: true\n    model: [m, n]\n`);
    const controller = new AbortController();
    const response = await fetch(`${gw.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: chatBody("auto", { stream: true }),
      signal: controller.signal,
    });
    assert.equal(response.status, 200);
    const reader = response.body!.getReader();
    const { value } = await reader.read();
    assert.ok(sseData(Buffer.from(value!).toString("utf8")).length >= 1);
    controller.abort();
    await upstreamClosed.promise;
  });

  test("the server bounds slow clients (headersTimeout, requestTimeout) and HOST defaults to 127.0.0.1", T, async (t) => {
    const mock = await useMock(t);
    const yaml = `routes:\n  - name: r\n    url: ${mock.origin}/v1\n    isBaseUrl: true\n    model: m\n`;
    const gw = await useGateway(t, yaml);
    const server = gw.gateway.server;
    assert.ok(server.headersTimeout > 0 && server.headersTimeout <= 120_000, `headersTimeout ${server.headersTimeout}`);
    assert.ok(server.requestTimeout > 0 && server.requestTimeout <= 30 * 60_000, `requestTimeout ${server.requestTimeout}`);
    const built = buildConfig(yaml, {}, { routesFile: "test/routes.yml" });
    assert.equal(built.config?.host, "127.0.0.1");
  });
});

/**
 * An upstream that streams `chunk` until `total` bytes are written, waiting whenever the gateway does not drain
 * it, behind a gateway; and a raw client of it that reads one chunk and then stops reading. `readRest` reads the
 * rest and resolves with every byte the client received.
 */
async function pausedClientStream(
  t: TestContext,
  options: { chunk: Buffer; total: number; path: string; body: string },
): Promise<{ state: { written: number; blockedSince: number; done: boolean }; readRest: () => Promise<number> }> {
  const state = { written: 0, blockedSince: 0, done: false };
  const mock = await useMock(t, async (_req, res) => {
    res.writeHead(200, { "content-type": "text/event-stream" });
    while (state.written < options.total && !res.destroyed) {
      state.written += options.chunk.length;
      if (!res.write(options.chunk)) {
        state.blockedSince = performance.now();
        await new Promise<void>((resolve) => {
          const done = () => {
            res.off("drain", done);
            res.off("close", done);
            resolve();
          };
          res.on("drain", done);
          res.on("close", done);
        });
        state.blockedSince = 0;
      }
    }
    state.done = true;
    res.end();
  });
  const gw = await useGateway(t, `routes:\n  - name: r\n    url: ${mock.origin}/v1\n    isBaseUrl: true\n    model: m\n`);
  const url = new URL(gw.url);
  const response = await new Promise<http.IncomingMessage>((resolve, reject) => {
    const req = http.request({ host: url.hostname, port: url.port, method: "POST", path: options.path, agent: false, headers: { "content-type": "application/json", "content-length": Buffer.byteLength(options.body) } });
    req.on("error", reject);
    req.on("response", resolve);
    req.end(options.body);
  });
  t.after(() => response.destroy());
  assert.equal(response.statusCode, 200);
  // Read one chunk, then stop reading.
  let received = 0;
  await new Promise<void>((resolve) => {
    response.once("data", (chunk: Buffer) => {
      received += chunk.length;
      response.pause();
      resolve();
    });
  });
  const readRest = async () => {
    const ended = deferred<void>();
    response.on("data", (chunk: Buffer) => (received += chunk.length));
    response.on("end", () => ended.resolve());
    response.resume();
    await ended.promise;
    return received;
  };
  return { state, readRest };
}
