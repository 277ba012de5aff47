/**
 * Issue 2, items 9 (the gateway's own endpoints), 10 (errors and limits) and
 * 12 (logs), through a real gateway, raw HTTP and the openai SDK.
 */
import assert from "node:assert/strict";
import http from "node:http";
import net from "node:net";
import { describe, test, type TestContext } from "node:test";
import { APIError } from "openai";
import { replyChat, replyStatus } from "../helpers/mock-upstream.js";
import { chatBody, closedPort, deferred, holdForever, rawRequest, sdk, useGateway, useMock, waitFor } from "../helpers/sdk.js";

/** Every test is bounded: a missing abort or a hang fails it instead of stalling the suite. */
const T = { timeout: 20_000 };
const messages = [{ role: "user" as const, content: "Hi" }];

function assertOpenAIError(body: unknown, code?: string): void {
  const error = (body as { error?: Record<string, unknown> }).error;
  assert.ok(error && typeof error === "object", `not an OpenAI error: ${JSON.stringify(body)}`);
  assert.equal(typeof error.message, "string");
  assert.ok((error.message as string).length > 0);
  assert.equal(typeof error.type, "string");
  assert.equal(typeof error.code, "string");
  if (code) assert.equal(error.code, code);
}

async function assertStillServing(gw: { url: string }, model = "m"): Promise<void> {
  const health = await rawRequest(gw.url, { path: "/health" });
  assert.equal(health.status, 200);
  const ok = await rawRequest(gw.url, { method: "POST", path: "/v1/chat/completions", headers: { "content-type": "application/json" }, body: chatBody(model) });
  assert.equal(ok.status, 200, ok.text);
}

describe("gateway endpoints", () => {
  async function setup(t: TestContext) {
    const mock = await useMock(t);
    const gw = await useGateway(
      t,
      `routes:
  - name: first
    url: ${mock.origin}/v1
    isBaseUrl: true
    model: [alpha, beta]
  - name: second
    url: ${mock.origin}/v1
    isBaseUrl: true
    model: gamma
  - name: disabled
    url: ${mock.origin}/v1
    isBaseUrl: true
    model: delta
    enabled: false
`,
    );
    return { mock, gw };
  }

  test("GET /health answers {status, retryStatusCodes, enabledRouteCount, models}", T, async (t) => {
    const { mock, gw } = await setup(t);
    const res = await rawRequest(gw.url, { path: "/health" });
    assert.equal(res.status, 200);
    assert.match(String(res.headers["content-type"]), /application\/json/);
    const body = res.json() as { status: string; retryStatusCodes: number[]; enabledRouteCount: number; models: unknown[] };
    assert.equal(body.status, "ok");
    assert.deepEqual([...body.retryStatusCodes].sort((x, y) => x - y), [412, 429, 500, 502, 503, 504]);
    assert.equal(body.enabledRouteCount, 2);
    assert.ok(Array.isArray(body.models));
    const names = body.models.map((m) => (typeof m === "string" ? m : (m as { model?: string; id?: string }).model ?? (m as { id?: string }).id));
    assert.deepEqual([...names].sort(), ["alpha", "beta", "gamma"]);
    assert.equal(mock.received.length, 0);
  });

  test("GET /v1/models lists the configured models plus auto, answered by the gateway itself", T, async (t) => {
    const { mock, gw } = await setup(t);
    const res = await rawRequest(gw.url, { path: "/v1/models", headers: { authorization: "Bearer placeholder-key" } });
    assert.equal(res.status, 200);
    const body = res.json() as { object: string; data: { id: string; object: string }[] };
    assert.equal(body.object, "list");
    assert.deepEqual(body.data.map((m) => m.id).sort(), ["alpha", "auto", "beta", "gamma"]);
    for (const model of body.data) assert.equal(model.object, "model");

    const listed: string[] = [];
    for await (const model of sdk(gw).models.list()) listed.push(model.id);
    assert.deepEqual(listed.sort(), ["alpha", "auto", "beta", "gamma"]);
    assert.equal(mock.received.length, 0, "GET /v1/models was forwarded upstream");
  });

  test("an unknown path is a 404 OpenAI-shaped error", T, async (t) => {
    const { mock, gw } = await setup(t);
    for (const [method, path] of [
      ["GET", "/"],
      ["GET", "/nope"],
      ["POST", "/v2/chat/completions"],
      ["POST", "/health"],
      ["GET", "/v1x"],
    ] as const) {
      const res = await rawRequest(gw.url, { method, path, headers: { "content-type": "application/json" }, body: method === "POST" ? chatBody("alpha") : undefined });
      assert.equal(res.status, 404, `${method} ${path}`);
      assertOpenAIError(res.json());
    }
    assert.equal(mock.received.length, 0);
  });
});

describe("errors and limits", () => {
  async function oneRoute(t: TestContext, env: Record<string, string> = {}) {
    const mock = await useMock(t);
    const gw = await useGateway(t, `routes:\n  - name: r\n    url: ${mock.origin}/v1\n    isBaseUrl: true\n    model: m\n`, env);
    return { mock, gw };
  }

  test("invalid JSON is a 400 OpenAI-shaped error and nothing is sent upstream", T, async (t) => {
    const { mock, gw } = await oneRoute(t);
    const res = await rawRequest(gw.url, { method: "POST", path: "/v1/chat/completions", headers: { "content-type": "application/json" }, body: '{"model": "m", "messages": [' });
    assert.equal(res.status, 400);
    assert.match(String(res.headers["content-type"]), /application\/json/);
    assertOpenAIError(res.json());
    assert.equal(res.json().error.type, "invalid_request_error");
    assert.equal(mock.received.length, 0);
    await assertStillServing(gw);
  });

  /** Sends a 5 MB body to a gateway limited to 2048 bytes; resolves with what the client actually got. */
  function bigUpload(gw: { url: string }, mode: "content-length" | "chunked" | "expect", path = "/v1/chat/completions"): Promise<{ status: number; body: string; continued: boolean }> {
    const url = new URL(gw.url);
    const size = 5 * 1024 * 1024;
    const payload = Buffer.from(JSON.stringify({ model: "m", messages: [{ role: "user", content: "x".repeat(size) }] }));
    const headers: Record<string, string> = { "content-type": "application/json" };
    if (mode !== "chunked") headers["content-length"] = String(payload.length);
    if (mode === "expect") headers.expect = "100-continue";
    return new Promise((resolve, reject) => {
      let continued = false;
      const req = http.request({ host: url.hostname, port: url.port, method: "POST", path, headers, agent: false });
      req.on("error", (error) => reject(new Error(`the client saw a connection error instead of the 413: ${error.message}`)));
      req.on("continue", () => {
        continued = true;
        req.end(payload);
      });
      req.on("response", (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (chunk: Buffer) => chunks.push(chunk));
        res.on("end", () => {
          resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8"), continued });
          if (mode === "expect") req.destroy();
        });
        res.on("error", reject);
      });
      if (mode === "content-length") req.end(payload);
      if (mode === "chunked") {
        for (let at = 0; at < payload.length; at += 64 * 1024) req.write(payload.subarray(at, at + 64 * 1024));
        req.end();
      }
      if (mode === "expect") req.flushHeaders();
    });
  }

  for (const mode of ["content-length", "chunked", "expect"] as const) {
    test(`a body over MAX_BODY_BYTES is answered 413 and the client receives it (${mode})`, T, async (t) => {
      const { mock, gw } = await oneRoute(t, { MAX_BODY_BYTES: "2048" });
      const got = await bigUpload(gw, mode);
      assert.equal(got.status, 413, got.body);
      assertOpenAIError(JSON.parse(got.body));
      if (mode === "expect") assert.equal(got.continued, false, "the gateway asked for the oversized body with 100 Continue");
      assert.equal(mock.received.length, 0);
      await assertStillServing(gw);
    });
  }

  for (const mode of ["content-length", "chunked", "expect"] as const) {
    test(`a body over MAX_BODY_BYTES on Anthropic's paths is a 413 in Anthropic's shape, request_too_large (${mode})`, T, async (t) => {
      const { mock, gw } = await oneRoute(t, { MAX_BODY_BYTES: "2048" });
      for (const path of ["/v1/messages", "/anthropic/v1/messages", "/v1/messages/count_tokens"]) {
        const got = await bigUpload(gw, mode, path);
        assert.equal(got.status, 413, got.body);
        const body = JSON.parse(got.body) as { type?: unknown; error?: { type?: unknown; message?: unknown } };
        assert.equal(body.type, "error", `${path}: ${got.body}`);
        assert.equal(body.error?.type, "request_too_large", path);
        assert.match(String(body.error?.message), /MAX_BODY_BYTES/);
      }
      assert.equal(mock.received.length, 0);
      await assertStillServing(gw);
    });
  }

  test("a body over MAX_BODY_BYTES sent by the openai SDK surfaces as a 413 APIError", T, async (t) => {
    const { mock, gw } = await oneRoute(t, { MAX_BODY_BYTES: "2048" });
    const error = await sdk(gw)
      .chat.completions.create({ model: "m", messages: [{ role: "user", content: "y".repeat(2 * 1024 * 1024) }] })
      .then(() => undefined, (e: unknown) => e);
    assert.ok(error instanceof APIError, String(error));
    assert.equal(error.status, 413);
    assert.equal(mock.received.length, 0);
  });

  test("a body within MAX_BODY_BYTES passes", T, async (t) => {
    const { mock, gw } = await oneRoute(t, { MAX_BODY_BYTES: "2048" });
    const body = JSON.stringify({ model: "m", messages: [{ role: "user", content: "z".repeat(1500) }] });
    const res = await rawRequest(gw.url, { method: "POST", path: "/v1/chat/completions", headers: { "content-type": "application/json", expect: "100-continue" }, body });
    assert.equal(res.status, 200);
    assert.equal(mock.received[0]!.body.toString("utf8"), body);
  });

  test("all candidates unreachable → 502", T, async (t) => {
    const [p1, p2] = [await closedPort(), await closedPort()];
    const live = await useMock(t);
    const gw = await useGateway(
      t,
      `routes:
  - name: dead1
    url: http://127.0.0.1:${p1}/v1
    isBaseUrl: true
    model: d1
  - name: dead2
    url: http://127.0.0.1:${p2}/v1
    isBaseUrl: true
    model: d2
  - name: live
    url: ${live.origin}/v1
    isBaseUrl: true
    model: m
    enabled: false
`,
    );
    const res = await rawRequest(gw.url, { method: "POST", path: "/v1/chat/completions", headers: { "content-type": "application/json" }, body: chatBody("auto") });
    assert.equal(res.status, 502);
    assertOpenAIError(res.json());
    assert.equal(res.headers["x-gateway-attempt-count"], "2");
    const pinned = await sdk(gw)
      .chat.completions.create({ model: "d1", messages })
      .then(() => undefined, (e: unknown) => e);
    assert.ok(pinned instanceof APIError);
    assert.equal(pinned.status, 502);
    assert.equal((await rawRequest(gw.url, { path: "/health" })).status, 200);
  });

  test("all candidates timed out → 504, within a few seconds with REQUEST_TIMEOUT_MS=300", T, async (t) => {
    const h1 = holdForever();
    const h2 = holdForever();
    const a = await useMock(t, h1.handler);
    const b = await useMock(t, h2.handler);
    const gw = await useGateway(
      t,
      `routes:
  - name: a
    url: ${a.origin}/v1
    isBaseUrl: true
    model: ma
  - name: b
    url: ${b.origin}/v1
    isBaseUrl: true
    model: mb
`,
      { REQUEST_TIMEOUT_MS: "300" },
    );
    const started = performance.now();
    const res = await rawRequest(gw.url, { method: "POST", path: "/v1/chat/completions", headers: { "content-type": "application/json" }, body: chatBody("auto") });
    const elapsed = performance.now() - started;
    assert.equal(res.status, 504);
    assertOpenAIError(res.json());
    assert.equal(res.headers["x-gateway-switched"], "1");
    assert.ok(elapsed >= 500 && elapsed < 8_000, `answered after ${elapsed} ms`);
    await Promise.all([h1.closed, h2.closed]);
    a.handle(replyChat());
    const ok = await rawRequest(gw.url, { method: "POST", path: "/v1/chat/completions", headers: { "content-type": "application/json" }, body: chatBody("ma") });
    assert.equal(ok.status, 200);
  });

  test("all candidates retryable → the last upstream status and body are passed through", T, async (t) => {
    for (const model of ["auto", "ma"]) {
      // A fresh gateway per case: the first case leaves both models cooling down.
      const a = await useMock(t, replyStatus(429, {}, "a_rate_limited"));
      const b = await useMock(t, replyStatus(503, { "retry-after": "11" }, "b_unavailable"));
      const gw = await useGateway(
        t,
        `routes:
  - name: a
    url: ${a.origin}/v1
    isBaseUrl: true
    model: ma
  - name: b
    url: ${b.origin}/v1
    isBaseUrl: true
    model: mb
`,
        { GLOBAL_FALLBACK_MODELS: "mb" },
      );
      const res = await rawRequest(gw.url, { method: "POST", path: "/v1/chat/completions", headers: { "content-type": "application/json" }, body: chatBody(model) });
      assert.equal(res.status, 503, model);
      assert.deepEqual(res.json().error, { message: "mock upstream answered 503", type: "mock_error", code: "b_unavailable" }, model);
      assert.equal(res.headers["retry-after"], "11", model);
      assert.equal(res.headers["x-gateway-switched"], "1", model);
      if (model === "ma") {
        const error = await sdk(gw)
          .chat.completions.create({ model: "mb", messages })
          .then(() => undefined, (e: unknown) => e);
        assert.ok(error instanceof APIError);
        assert.equal(error.status, 503);
        assert.equal((error.error as { code?: string }).code, "b_unavailable");
      }
    }
  });


  test("failures in one request never take the gateway down", T, async (t) => {
    let mode = "truncate";
    const mock = await useMock(t, (req, res) => {
      if (mode === "truncate") {
        res.writeHead(200, { "content-type": "application/json", "content-length": "1000" });
        res.write('{"id":"half', () => res.socket?.destroy());
        return;
      }
      if (mode === "garbage") {
        res.socket?.end("this is not HTTP\r\n\r\n");
        return;
      }
      replyChat()(req, res);
    });
    const gw = await useGateway(t, `routes:\n  - name: r\n    url: ${mock.origin}/v1\n    isBaseUrl: true\n    model: m\n`);
    // A body cut short after headers: the client sees a failure, never a clean short answer.
    await assert.rejects(sdk(gw).chat.completions.create({ model: "m", messages }));
    mode = "garbage";
    const garbage = await rawRequest(gw.url, { method: "POST", path: "/v1/chat/completions", headers: { "content-type": "application/json" }, body: chatBody("m") });
    assert.equal(garbage.status, 502);
    mode = "ok";
    // Malformed HTTP from a client.
    const url = new URL(gw.url);
    const answered = deferred<string>();
    const socket = net.connect(Number(url.port), url.hostname, () => socket.write("GARBAGE \x01\x02 HTTP/9.9\r\n\r\n"));
    const chunks: Buffer[] = [];
    socket.on("data", (c: Buffer) => chunks.push(c));
    socket.on("close", () => answered.resolve(Buffer.concat(chunks).toString("utf8")));
    socket.on("error", () => undefined);
    assert.match(await answered.promise, /^HTTP\/1\.1 400/);
    await assertStillServing(gw);
  });
});

describe("logs", () => {
  test("one request line per request and one switch line per switch, with the fields", T, async (t) => {
    const a = await useMock(t, replyStatus(429));
    const b = await useMock(t);
    const gw = await useGateway(
      t,
      `routes:
  - name: route-a
    url: ${a.origin}/v1
    isBaseUrl: true
    model: model-a
  - name: route-b
    url: ${b.origin}/v1
    isBaseUrl: true
    model: model-b
`,
    );
    const client = sdk(gw);
    await client.chat.completions.create({ model: "auto", messages }); // a 429 → b: one switch
    const requests = () => gw.logs.filter((l) => l.event === "request");
    const first = await waitFor(() => requests()[0], "the first request line");
    assert.equal(first.requested_model, "auto");
    assert.equal(first.model, "model-b");
    assert.equal(first.route, "route-b");
    assert.equal(first.attempts, 2);
    assert.equal(first.status, 200);
    assert.equal(typeof first.duration_ms, "number");
    assert.ok((first.duration_ms as number) >= 0);
    const switches = gw.logs.filter((l) => l.event === "switch");
    assert.equal(switches.length, 1);
    assert.equal(switches[0]!.trigger_status, 429);
    assert.equal(switches[0]!.reason, "status");
    assert.equal(switches[0]!.from_model, "model-a");
    assert.equal(switches[0]!.to_model, "model-b");

    await client.chat.completions.create({ model: "model-b", messages }); // pinned, no switch
    const second = await waitFor(() => requests()[1], "the second request line");
    assert.equal(second.requested_model, "model-b");
    assert.equal(second.model, "model-b");
    assert.equal(second.route, "route-b");
    assert.equal(second.attempts, 1);
    assert.equal(second.status, 200);
    await assert.rejects(client.chat.completions.create({ model: "model-a", messages })); // pinned 429
    const third = await waitFor(() => requests()[2], "the third request line");
    assert.equal(third.status, 429);
    assert.equal(third.model, "model-a");
    assert.equal(requests().length, 3);
    assert.equal(gw.logs.filter((l) => l.event === "switch").length, 1);
  });

  test("a timeout switch is logged with its trigger", T, async (t) => {
    const hold = holdForever();
    const a = await useMock(t, hold.handler);
    const b = await useMock(t);
    const gw = await useGateway(
      t,
      `routes:
  - name: route-a
    url: ${a.origin}/v1
    isBaseUrl: true
    model: model-a
  - name: route-b
    url: ${b.origin}/v1
    isBaseUrl: true
    model: model-b
`,
      { REQUEST_TIMEOUT_MS: "300" },
    );
    await sdk(gw).chat.completions.create({ model: "auto", messages });
    const line = await waitFor(() => gw.logs.find((l) => l.event === "request"), "the request line");
    assert.equal(line.attempts, 2);
    const switches = gw.logs.filter((l) => l.event === "switch");
    assert.equal(switches.length, 1);
    assert.equal(switches[0]!.reason, "timeout");
  });

  test("no key or Authorization value ever appears in the logs", T, async (t) => {
    const a = await useMock(t, replyStatus(401));
    const b = await useMock(t, replyStatus(429));
    const c = await useMock(t);
    const dead = await closedPort();
    const routeKey = "sk-route-SECRET-aaa111";
    const envKey = "sk-env-SECRET-bbb222";
    const clientAuth = "client-SECRET-ccc333";
    const clientXApi = "xapi-SECRET-ddd444";
    const gw = await useGateway(
      t,
      `routes:
  - name: a
    url: ${a.origin}/v1
    isBaseUrl: true
    model: ma
    apiKey: ${routeKey}
  - name: b
    url: ${b.origin}/v1
    isBaseUrl: true
    model: mb
    apiKeyEnv: B_KEY
  - name: c
    url: ${c.origin}/v1
    isBaseUrl: true
    model: mc
  - name: dead
    url: http://127.0.0.1:${dead}/v1
    isBaseUrl: true
    model: md
    apiKey: ${routeKey}
`,
      { B_KEY: envKey, GLOBAL_FALLBACK_MODELS: "mb,mc" },
    );
    const headers = { "content-type": "application/json", authorization: `Bearer ${clientAuth}`, "x-api-key": clientXApi };
    const bodies = [chatBody("ma"), chatBody("mb"), chatBody("mc"), chatBody("md"), chatBody("auto"), chatBody("nope"), '{"model":', chatBody("mb", { stream: true })];
    for (const body of bodies) {
      const res = await rawRequest(gw.url, { method: "POST", path: "/v1/chat/completions", headers, body });
      for (const secret of [routeKey, envKey, clientAuth, clientXApi]) assert.ok(!res.text.includes(secret), `the response leaked ${secret}`);
    }
    await rawRequest(gw.url, { path: "/v1/models", headers });
    await rawRequest(gw.url, { path: "/nope", headers });
    // (the invalid-JSON request is checked separately below; wait for the others' lines)
    await waitFor(() => gw.logs.filter((l) => l.event === "request").length >= bodies.length - 1, "a request line per request");
    // The client's credential reached the key-less route c, so it really was in play.
    assert.equal(c.received.some((r) => r.headers.authorization === `Bearer ${clientAuth}`), true);
    const text = gw.logText();
    assert.ok(text.length > 0);
    for (const secret of [routeKey, envKey, clientAuth, clientXApi, "SECRET"]) {
      assert.ok(!text.includes(secret), `the logs contain ${secret}`);
    }
  });

  test("requests the gateway rejects itself (400 invalid JSON, 413, 404 model) get their request line too", T, async (t) => {
    const mock = await useMock(t);
    const gw = await useGateway(t, `routes:\n  - name: r\n    url: ${mock.origin}/v1\n    isBaseUrl: true\n    model: m\n`, { MAX_BODY_BYTES: "2048" });
    const post = (body: string) => rawRequest(gw.url, { method: "POST", path: "/v1/chat/completions", headers: { "content-type": "application/json" }, body });
    assert.equal((await post('{"model": "m", ')).status, 400);
    assert.equal((await post(chatBody("m", { pad: "p".repeat(4096) }))).status, 413);
    assert.equal((await post(chatBody("unknown-model"))).status, 404);
    const lines = await waitFor(() => {
      const found = gw.logs.filter((l) => l.event === "request");
      return found.length >= 3 && found;
    }, "three request lines");
    assert.deepEqual(lines.map((l) => l.status).sort(), [400, 404, 413]);
    for (const line of lines) assert.equal(typeof line.duration_ms, "number");
    assert.equal(mock.received.length, 0);
  });
});
