/**
 * Issue 2, item 6: hop-by-hop headers stripped both ways, the route's
 * credential in place of the client's, route and default headers, apiKeyEnv.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { chatCompletion } from "../../src/demo/mock-openai.js";
import { parseRawResponse, rawRequest, sdk, socketExchange, useGateway, useMock, chatBody } from "../helpers/sdk.js";

/** Every test is bounded: a missing abort or a hang fails it instead of stalling the suite. */
const T = { timeout: 20_000 };

describe("hop-by-hop headers", () => {
  test("are not forwarded upstream, including any named in Connection", T, async (t) => {
    const mock = await useMock(t);
    const gw = await useGateway(t, `routes:\n  - name: r\n    url: ${mock.origin}/v1\n    isBaseUrl: true\n    model: m\n`);
    const body = chatBody("m");
    const raw = await socketExchange(
      gw.url,
      [
        "POST /v1/chat/completions HTTP/1.1",
        `Host: ${new URL(gw.url).host}`,
        "Content-Type: application/json",
        `Content-Length: ${Buffer.byteLength(body)}`,
        "Connection: close, X-Foo, x-bar",
        "X-Foo: hop-value",
        "X-Bar: hop-value-2",
        "Keep-Alive: timeout=5, max=9",
        "TE: trailers",
        "Upgrade: h2c",
        "Proxy-Authorization: Basic cHJveHk6c2VjcmV0",
        "Proxy-Connection: keep-alive",
        "Trailer: X-Trailing",
        "X-End-To-End: kept",
        "",
        body,
      ].join("\r\n"),
    );
    assert.equal(parseRawResponse(raw).status, 200, raw);
    assert.equal(mock.received.length, 1);
    const headers = mock.received[0]!.headers;
    for (const name of ["x-foo", "x-bar", "keep-alive", "te", "upgrade", "proxy-authorization", "proxy-connection", "trailer"]) {
      assert.equal(headers[name], undefined, `${name} reached the upstream: ${String(headers[name])}`);
    }
    assert.ok(!String(headers.connection ?? "").toLowerCase().includes("x-foo"), `connection: ${String(headers.connection)}`);
    assert.equal(headers["x-end-to-end"], "kept");
  });

  test("are not relayed to the client, including any named in Connection", T, async (t) => {
    const mock = await useMock(t, (req, res) => {
      // Chunked (no content-length), so a Trailer header is legal.
      res.writeHead(200, {
        "content-type": "application/json",
        connection: "keep-alive, X-Foo, x-bar",
        "x-foo": "hop-value",
        "x-bar": "hop-value-2",
        "keep-alive": "timeout=7, max=3",
        "proxy-authenticate": 'Basic realm="upstream"',
        "proxy-connection": "keep-alive",
        upgrade: "h2c",
        trailer: "x-trailing",
        "x-end-to-end": "kept",
      });
      res.write(JSON.stringify(chatCompletion(String(req.json?.model), "hi", "chatcmpl-hop")));
      res.addTrailers({ "x-trailing": "t" });
      res.end();
    });
    const gw = await useGateway(t, `routes:\n  - name: r\n    url: ${mock.origin}/v1\n    isBaseUrl: true\n    model: [m, n]\n`);
    for (const model of ["m", "auto"]) {
      const res = await rawRequest(gw.url, { method: "POST", path: "/v1/chat/completions", headers: { "content-type": "application/json" }, body: chatBody(model) });
      assert.equal(res.status, 200, model);
      assert.equal(res.json().id, "chatcmpl-hop");
      for (const name of ["x-foo", "x-bar", "proxy-authenticate", "proxy-connection", "upgrade", "trailer"]) {
        assert.equal(res.headers[name], undefined, `${model}: ${name} reached the client: ${String(res.headers[name])}`);
      }
      // The gateway may send its own Connection/Keep-Alive, never the upstream's.
      assert.ok(!String(res.headers.connection ?? "").toLowerCase().includes("x-foo"), `${model}: connection: ${String(res.headers.connection)}`);
      assert.ok(!String(res.headers["keep-alive"] ?? "").includes("max=3"), `${model}: keep-alive: ${String(res.headers["keep-alive"])}`);
      assert.equal(res.headers["x-end-to-end"], "kept", model);
    }
  });
});

describe("credentials", () => {
  const clientAuth = "Bearer placeholder-key";

  test("a keyed route's key replaces the client's Authorization; the client's x-api-key is dropped", T, async (t) => {
    const mock = await useMock(t);
    const gw = await useGateway(t, `routes:\n  - name: keyed\n    url: ${mock.origin}/v1\n    isBaseUrl: true\n    model: m\n    apiKey: route-key\n`);
    // The official SDK always sends its own (placeholder) Authorization.
    const completion = await sdk(gw).chat.completions.create({ model: "m", messages: [{ role: "user", content: "Hi" }] });
    assert.equal(completion.choices[0]?.message.content, "Hello from the mock.");
    assert.equal(mock.received[0]!.headers.authorization, "Bearer route-key");

    await rawRequest(gw.url, {
      method: "POST",
      path: "/v1/chat/completions",
      headers: { "content-type": "application/json", authorization: clientAuth, "x-api-key": "client-x-api-key", "api-key": "client-azure-key" },
      body: chatBody("m"),
    });
    const got = mock.received[1]!.headers;
    assert.equal(got.authorization, "Bearer route-key");
    assert.equal(got["x-api-key"], undefined);
    assert.equal(got["api-key"], undefined);
    assert.ok(!JSON.stringify(mock.received.map((r) => r.headers)).includes("placeholder-key"));
  });

  test("the client's Authorization is forwarded to a route without a key", T, async (t) => {
    const mock = await useMock(t);
    const gw = await useGateway(t, `routes:\n  - name: open\n    url: ${mock.origin}/v1\n    isBaseUrl: true\n    model: m\n`);
    await sdk(gw, "client-own-key").chat.completions.create({ model: "m", messages: [{ role: "user", content: "Hi" }] });
    assert.equal(mock.received[0]!.headers.authorization, "Bearer client-own-key");
    await rawRequest(gw.url, { method: "POST", path: "/v1/chat/completions", headers: { "content-type": "application/json", "x-api-key": "client-x" }, body: chatBody("m") });
    assert.equal(mock.received[1]!.headers["x-api-key"], "client-x");
  });

  test("a route with authHeader cf-aig-authorization receives neither the client's Authorization nor x-api-key", T, async (t) => {
    const mock = await useMock(t);
    const gw = await useGateway(
      t,
      `routes:
  - name: cf
    url: ${mock.origin}/v1
    isBaseUrl: true
    model: with-key
    authHeader: cf-aig-authorization
    apiKey: cf-token
  - name: cf-nokey
    url: ${mock.origin}/v1
    isBaseUrl: true
    model: without-key
    authHeader: cf-aig-authorization
  - name: anthropic-style
    url: ${mock.origin}/v1
    isBaseUrl: true
    model: xapi
    authHeader: x-api-key
    authPrefix: ""
    apiKey: ant-key
`,
    );
    for (const model of ["with-key", "without-key", "xapi"]) {
      const res = await rawRequest(gw.url, {
        method: "POST",
        path: "/v1/chat/completions",
        headers: { "content-type": "application/json", authorization: clientAuth, "x-api-key": "client-x-api-key", "cf-aig-authorization": "Bearer client-cf" },
        body: chatBody(model),
      });
      assert.equal(res.status, 200, model);
    }
    const [withKey, withoutKey, xapi] = mock.received.map((r) => r.headers);
    assert.equal(withKey!["cf-aig-authorization"], "Bearer cf-token");
    assert.equal(withKey!.authorization, undefined);
    assert.equal(withKey!["x-api-key"], undefined);
    assert.equal(withoutKey!.authorization, undefined);
    assert.equal(withoutKey!["x-api-key"], undefined);
    assert.equal(xapi!["x-api-key"], "ant-key");
    assert.equal(xapi!.authorization, undefined);
  });

  test("apiKeyEnv is read from the gateway's environment; route headers and defaults.headers are applied", T, async (t) => {
    const mock = await useMock(t);
    const gw = await useGateway(
      t,
      `defaults:
  apiKeyEnv: SHARED_KEY
  headers:
    x-default-only: from-defaults
    x-both: from-defaults
routes:
  - name: own-env
    url: ${mock.origin}/v1
    isBaseUrl: true
    model: m1
    apiKeyEnv: ROUTE_ONE_KEY
    headers:
      x-route-only: from-route
      x-both: from-route
      x-client-set: from-route
  - name: inherits
    url: ${mock.origin}/v1
    isBaseUrl: true
    model: m2
`,
      { ROUTE_ONE_KEY: "env-key-one", SHARED_KEY: "env-shared-key" },
    );
    for (const model of ["m1", "m2"]) {
      await rawRequest(gw.url, {
        method: "POST",
        path: "/v1/chat/completions",
        headers: { "content-type": "application/json", authorization: clientAuth, "x-client-set": "from-client" },
        body: chatBody(model),
      });
    }
    const [one, two] = mock.received.map((r) => r.headers);
    assert.equal(one!.authorization, "Bearer env-key-one");
    assert.equal(one!["x-route-only"], "from-route");
    assert.equal(one!["x-default-only"], "from-defaults");
    assert.equal(one!["x-both"], "from-route");
    assert.equal(one!["x-client-set"], "from-route");
    assert.equal(two!.authorization, "Bearer env-shared-key");
    assert.equal(two!["x-default-only"], "from-defaults");
    assert.equal(two!["x-both"], "from-defaults");
    assert.equal(two!["x-route-only"], undefined);
    assert.equal(two!["x-client-set"], "from-client");
  });

  test("after a failover each upstream gets its own credential, never the previous route's", T, async (t) => {
    const a = await useMock(t, (_req, res) => {
      res.writeHead(429, { "content-type": "application/json" });
      res.end('{"error":{"message":"slow down","type":"rate_limit","code":"rate_limited"}}');
    });
    const b = await useMock(t);
    const gw = await useGateway(
      t,
      `routes:
  - name: a
    url: ${a.origin}/v1
    isBaseUrl: true
    model: model-a
    apiKey: key-a
  - name: b
    url: ${b.origin}/v1
    isBaseUrl: true
    model: model-b
    authHeader: api-key
    authPrefix: ""
    apiKey: key-b
`,
    );
    const completion = await sdk(gw).chat.completions.create({ model: "auto", messages: [{ role: "user", content: "Hi" }] });
    assert.equal(completion.model, "model-b");
    assert.equal(a.received[0]!.headers.authorization, "Bearer key-a");
    assert.equal(b.received[0]!.headers["api-key"], "key-b");
    assert.equal(b.received[0]!.headers.authorization, undefined);
  });
});
