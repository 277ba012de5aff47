import { describe, test } from "node:test";
import assert from "node:assert/strict";
import type { IncomingHttpHeaders } from "node:http";
import { makeRoute } from "../../src/config/load.js";
import type { Route } from "../../src/config/types.js";
import { buildUpstreamHeaders, relayResponseHeaders } from "../../src/upstream/headers.js";

function route(overrides: Partial<Pick<Route, "authHeader" | "authPrefix" | "apiKey" | "headers">> = {}): Route {
  return makeRoute({
    name: "r",
    url: "https://up.example/v1",
    isBaseUrl: true,
    models: ["m"],
    enabled: true,
    authHeader: "authorization",
    authPrefix: "Bearer ",
    apiKey: "",
    headers: {},
    fallbacks: [],
    prefill: false,
    timeouts: { connectMs: 1000, headersMs: 1000, firstTokenMs: 1000, idleMs: 1000 },
    ...overrides,
  });
}

const NO_BODY = { bodyLength: undefined, identityEncoding: false };

const CLIENT: IncomingHttpHeaders = {
  "content-type": "application/json",
  accept: "text/event-stream",
  "user-agent": "OpenAI/JS 6.0",
  "x-stainless-lang": "js",
  authorization: "Bearer client-placeholder",
  "x-api-key": "client-x-api-key",
  "api-key": "client-api-key",
};

describe("buildUpstreamHeaders: what is dropped", () => {
  test("hop-by-hop headers are dropped", () => {
    const out = buildUpstreamHeaders(
      {
        ...CLIENT,
        connection: "keep-alive",
        "keep-alive": "timeout=5",
        "proxy-authorization": "Basic abc",
        "proxy-connection": "keep-alive",
        "proxy-authenticate": "Basic",
        te: "trailers",
        trailer: "x-checksum",
        "transfer-encoding": "chunked",
        upgrade: "websocket",
      },
      route(),
      NO_BODY,
    );
    for (const name of ["connection", "keep-alive", "proxy-authorization", "proxy-connection", "proxy-authenticate", "te", "trailer", "transfer-encoding", "upgrade"]) {
      assert.equal(out[name], undefined, name);
    }
    assert.equal(out["content-type"], "application/json");
    assert.equal(out["user-agent"], "OpenAI/JS 6.0");
  });

  test("headers named in Connection are dropped (any case, any spacing, repeated header)", () => {
    const out = buildUpstreamHeaders(
      { ...CLIENT, connection: "keep-alive, X-Secret-Hop ,x-other", "x-secret-hop": "1", "x-other": "2", "x-kept": "3" },
      route(),
      NO_BODY,
    );
    assert.equal(out["x-secret-hop"], undefined);
    assert.equal(out["x-other"], undefined);
    assert.equal(out["x-kept"], "3");

    const out2 = buildUpstreamHeaders(
      { connection: ["close", "X-A"] as unknown as string, "x-a": "1", "x-b": "2" },
      route(),
      NO_BODY,
    );
    assert.equal(out2["x-a"], undefined);
    assert.equal(out2["x-b"], "2");
  });

  test("host, content-length, expect, forwarded and x-forwarded-* are dropped", () => {
    const out = buildUpstreamHeaders(
      {
        ...CLIENT,
        host: "127.0.0.1:8787",
        "content-length": "999",
        expect: "100-continue",
        forwarded: "for=1.2.3.4",
        "x-forwarded-for": "1.2.3.4",
        "x-forwarded-host": "evil.example",
        "x-forwarded-proto": "http",
        "x-forwarded-port": "80",
        "x-real-ip": "1.2.3.4",
      },
      route(),
      NO_BODY,
    );
    for (const name of ["host", "content-length", "expect", "forwarded", "x-forwarded-for", "x-forwarded-host", "x-forwarded-proto", "x-forwarded-port", "x-real-ip"]) {
      assert.equal(out[name], undefined, name);
    }
  });

  test("the client's headers object is not modified", () => {
    const client = { ...CLIENT, connection: "x-hop", "x-hop": "1" };
    const before = structuredClone(client);
    buildUpstreamHeaders(client, route({ apiKey: "sk-route", headers: { "x-team": "t" } }), { bodyLength: 5, identityEncoding: true });
    assert.deepEqual(client, before);
  });

  test("other client headers pass through, arrays included", () => {
    const out = buildUpstreamHeaders({ ...CLIENT, "openai-organization": "org-1", cookie: "a=b", "x-multi": ["1", "2"] as unknown as string }, route(), NO_BODY);
    assert.equal(out["openai-organization"], "org-1");
    assert.equal(out["x-stainless-lang"], "js");
    assert.deepEqual(out["x-multi"], ["1", "2"]);
  });
});

describe("buildUpstreamHeaders: credentials", () => {
  test("a keyed route's credential replaces the client's authorization, x-api-key and api-key", () => {
    const out = buildUpstreamHeaders(CLIENT, route({ apiKey: "sk-route" }), NO_BODY);
    assert.equal(out.authorization, "Bearer sk-route");
    assert.equal(out["x-api-key"], undefined);
    assert.equal(out["api-key"], undefined);
    assert.ok(!JSON.stringify(out).includes("client-"), "no client credential leaks");
  });

  test("a keyed route with authHeader x-api-key and empty prefix", () => {
    const out = buildUpstreamHeaders(CLIENT, route({ apiKey: "sk-ant", authHeader: "x-api-key", authPrefix: "" }), NO_BODY);
    assert.equal(out["x-api-key"], "sk-ant");
    assert.equal(out.authorization, undefined);
    assert.equal(out["api-key"], undefined);
  });

  test("a keyed route with a custom auth header gets only its credential", () => {
    const out = buildUpstreamHeaders(
      { ...CLIENT, "cf-aig-authorization": "Bearer client-cf" },
      route({ apiKey: "cf-token", authHeader: "cf-aig-authorization" }),
      NO_BODY,
    );
    assert.equal(out["cf-aig-authorization"], "Bearer cf-token");
    assert.equal(out.authorization, undefined);
    assert.equal(out["x-api-key"], undefined);
    assert.equal(out["api-key"], undefined);
  });

  test("a keyless authorization route receives the client's credentials", () => {
    const out = buildUpstreamHeaders(CLIENT, route(), NO_BODY);
    assert.equal(out.authorization, "Bearer client-placeholder");
    assert.equal(out["x-api-key"], "client-x-api-key");
    assert.equal(out["api-key"], "client-api-key");
  });

  test("a keyless route with a custom auth header receives no client credential at all", () => {
    for (const authHeader of ["cf-aig-authorization", "x-api-key"]) {
      const out = buildUpstreamHeaders(
        { ...CLIENT, "cf-aig-authorization": "Bearer client-cf" },
        route({ authHeader }),
        NO_BODY,
      );
      assert.equal(out.authorization, undefined, authHeader);
      assert.equal(out["x-api-key"], undefined, authHeader);
      assert.equal(out["api-key"], undefined, authHeader);
      assert.equal(out[authHeader], undefined, authHeader);
      for (const secret of ["client-placeholder", "client-x-api-key", "client-api-key"]) assert.ok(!JSON.stringify(out).includes(secret), authHeader);
    }
  });

  test("route headers override client headers", () => {
    const out = buildUpstreamHeaders({ ...CLIENT, "x-team": "client", "openai-beta": "assistants=v1" }, route({ headers: { "x-team": "route", "x-extra": "e" } }), NO_BODY);
    assert.equal(out["x-team"], "route");
    assert.equal(out["x-extra"], "e");
    assert.equal(out["openai-beta"], "assistants=v1");
  });

  test("the route credential wins over a route header of the same name", () => {
    const out = buildUpstreamHeaders(CLIENT, route({ apiKey: "sk-route", headers: { authorization: "Bearer from-headers" } }), NO_BODY);
    assert.equal(out.authorization, "Bearer sk-route");
  });
});

describe("buildUpstreamHeaders: framing", () => {
  test("accept-encoding: identity only when asked", () => {
    const client = { ...CLIENT, "accept-encoding": "gzip, br" };
    assert.equal(buildUpstreamHeaders(client, route(), { bodyLength: undefined, identityEncoding: true })["accept-encoding"], "identity");
    assert.equal(buildUpstreamHeaders(client, route(), NO_BODY)["accept-encoding"], "gzip, br");
    assert.equal(buildUpstreamHeaders(CLIENT, route(), { bodyLength: undefined, identityEncoding: true })["accept-encoding"], "identity");
  });

  test("content-length comes from bodyLength, never from the client", () => {
    const client = { ...CLIENT, "content-length": "10", "transfer-encoding": "chunked" };
    const out = buildUpstreamHeaders(client, route(), { bodyLength: 42, identityEncoding: false });
    assert.equal(out["content-length"], "42");
    assert.equal(out["transfer-encoding"], undefined);
    assert.equal(buildUpstreamHeaders(client, route(), { bodyLength: 0, identityEncoding: false })["content-length"], "0");
    assert.equal(buildUpstreamHeaders(client, route(), NO_BODY)["content-length"], undefined);
  });
});

describe("relayResponseHeaders", () => {
  const upstream = {
    "content-type": "application/json",
    "content-length": "123",
    connection: "keep-alive, X-Hop",
    "keep-alive": "timeout=5",
    "transfer-encoding": "chunked",
    "x-hop": "1",
    "x-request-id": "req-1",
    "set-cookie": ["a=1", "b=2"],
    "x-ratelimit-remaining": "10",
    upgrade: "h2c",
    trailer: "x-t",
    missing: undefined,
  };

  test("drops hop-by-hop and Connection-named headers, keeps the rest", () => {
    const out = relayResponseHeaders(upstream, false);
    assert.deepEqual(out, {
      "content-type": "application/json",
      "content-length": "123",
      "x-request-id": "req-1",
      "set-cookie": ["a=1", "b=2"],
      "x-ratelimit-remaining": "10",
    });
  });

  test("drops content-length when asked", () => {
    const out = relayResponseHeaders(upstream, true);
    assert.equal(out["content-length"], undefined);
    assert.equal(out["content-type"], "application/json");
    assert.equal(out["x-request-id"], "req-1");
  });
});
