/**
 * Issue 2, items 7 (automatic mode, failover triggers, pinned models and
 * fallback lists) and 8 (telling the client: x-gateway-* headers, the JSON
 * notice, the SSE notice in its three modes, the openai SDK after a switch).
 */
import assert from "node:assert/strict";
import { describe, test, type TestContext } from "node:test";
import { APIError } from "openai";
import { replyChat, replyStatus, sendJson, type Handler } from "../helpers/mock-upstream.js";
import { chatBody, closedPort, holdForever, rawRequest, sdk, sseData, useGateway, useMock } from "../helpers/sdk.js";

/** Every test is bounded: a missing abort or a hang fails it instead of stalling the suite. */
const T = { timeout: 20_000 };
const messages = [{ role: "user" as const, content: "Hi" }];

interface Notice {
  trigger_status: number | null;
  from_model: string | null;
  from_route: string;
  to_model: string | null;
  to_route: string;
  reason: string;
}

function noticeFields(notice: Notice | undefined) {
  assert.ok(notice, "no gateway_notice");
  const { trigger_status, from_model, from_route, to_model, to_route, reason } = notice;
  return { trigger_status, from_model, from_route, to_model, to_route, reason };
}

/** Two routes on two mock upstreams: model-a (route-a) first, then model-b (route-b). */
async function twoRoutes(t: TestContext, a: Handler, b: Handler = replyChat(), extraYaml = "", env: Record<string, string> = {}) {
  const mockA = await useMock(t, a);
  const mockB = await useMock(t, b);
  const gw = await useGateway(
    t,
    `${extraYaml}routes:
  - name: route-a
    url: ${mockA.origin}/v1
    isBaseUrl: true
    model: model-a
  - name: route-b
    url: ${mockB.origin}/v1
    isBaseUrl: true
    model: model-b
`,
    env,
  );
  return { mockA, mockB, gw };
}

const post = (url: string, body: string, headers: Record<string, string> = {}) =>
  rawRequest(url, { method: "POST", path: "/v1/chat/completions", headers: { "content-type": "application/json", ...headers }, body });

describe("automatic mode: rotation", () => {
  test("auto rotates the first candidate round-robin across requests", T, async (t) => {
    const mock = await useMock(t);
    const gw = await useGateway(t, `routes:\n  - name: r\n    url: ${mock.origin}/v1\n    isBaseUrl: true\n    model: [m1, m2, m3]\n`);
    const client = sdk(gw);
    const used: string[] = [];
    for (let i = 0; i < 5; i++) {
      const { data, response } = await client.chat.completions.create({ model: "auto", messages }).withResponse();
      used.push(String(response.headers.get("x-gateway-model-used")));
      assert.equal(data.model, used[i]);
      assert.equal(response.headers.get("x-gateway-attempt-count"), "1");
      assert.equal(response.headers.get("x-gateway-switched"), null);
    }
    assert.deepEqual(
      mock.received.map((r) => r.json?.model),
      ["m1", "m2", "m3", "m1", "m2"],
    );
    assert.deepEqual(used, ["m1", "m2", "m3", "m1", "m2"]);
  });

  test("candidates are the enabled route models only (a disabled route is never tried)", T, async (t) => {
    const off = await useMock(t);
    const on = await useMock(t, replyStatus(503));
    const on2 = await useMock(t);
    const gw = await useGateway(
      t,
      `routes:
  - name: off
    url: ${off.origin}/v1
    isBaseUrl: true
    model: off-model
    enabled: false
  - name: on
    url: ${on.origin}/v1
    isBaseUrl: true
    model: on-model
  - name: on2
    url: ${on2.origin}/v1
    isBaseUrl: true
    model: on2-model
`,
    );
    const res = await post(gw.url, chatBody("auto"));
    assert.equal(res.status, 200);
    assert.equal(res.headers["x-gateway-model-used"], "on2-model");
    assert.equal(off.received.length, 0);
  });
});

describe("automatic mode: failover triggers", () => {
  for (const status of [429, 500, 502, 503, 504, 412]) {
    test(`fails over on HTTP ${status}`, T, async (t) => {
      const { mockA, mockB, gw } = await twoRoutes(t, replyStatus(status));
      const { data, response } = await sdk(gw).chat.completions.create({ model: "auto", messages }).withResponse();
      // 5xx is transient: the same model gets its one retry first (the failover policy's default).
      const transient = status >= 500;
      assert.equal(data.model, "model-b");
      assert.equal(data.choices[0]?.message.content, "Hello from the mock.");
      assert.equal(mockA.received.length, transient ? 2 : 1);
      assert.equal(mockB.received.length, 1);
      assert.equal(response.headers.get("x-gateway-model-used"), "model-b");
      assert.equal(response.headers.get("x-gateway-attempt-count"), transient ? "3" : "2");
      assert.equal(response.headers.get("x-gateway-switched"), "1");
      const notice = (data as unknown as { gateway_notice?: Notice }).gateway_notice;
      assert.deepEqual(noticeFields(notice), {
        trigger_status: status,
        from_model: "model-a",
        from_route: "route-a",
        to_model: "model-b",
        to_route: "route-b",
        reason: "status",
      });
    });
  }

  for (const status of [400, 401, 404]) {
    test(`does not fail over on HTTP ${status}: the client gets it`, T, async (t) => {
      const { mockA, mockB, gw } = await twoRoutes(t, replyStatus(status));
      const error = await sdk(gw)
        .chat.completions.create({ model: "auto", messages })
        .then(() => undefined, (e: unknown) => e);
      assert.ok(error instanceof APIError, String(error));
      assert.equal(error.status, status);
      assert.equal((error.error as { code?: string }).code, `status_${status}`);
      assert.equal(mockA.received.length, 1);
      assert.equal(mockB.received.length, 0);
    });
  }

  test("retryStatusCodes in routes.yml wins over RETRY_STATUS_CODES, which replaces the defaults", T, async (t) => {
    const cases: [string, Record<string, string>, number, boolean][] = [
      ["retryStatusCodes: [418]\n", { RETRY_STATUS_CODES: "409" }, 418, true],
      ["retryStatusCodes: [418]\n", { RETRY_STATUS_CODES: "409" }, 409, false],
      ["", { RETRY_STATUS_CODES: "409, 418" }, 409, true],
      ["", { RETRY_STATUS_CODES: "409" }, 429, false],
    ];
    for (const [yaml, env, status, switches] of cases) {
      const label = `${yaml.trim() || "no retryStatusCodes"} ${JSON.stringify(env)} upstream ${status}`;
      const { mockB, gw } = await twoRoutes(t, replyStatus(status), replyChat(), yaml, env);
      const res = await post(gw.url, chatBody("auto"));
      assert.equal(res.status, switches ? 200 : status, label);
      assert.equal(mockB.received.length, switches ? 1 : 0, label);
    }
  });

  const bodies: [string, unknown, number][] = [
    ['{"error":{"code":429}}', { error: { code: 429, message: "quota" } }, 429],
    ['{"code":"503"}', { code: "503", msg: "busy" }, 503],
    ['{"errors":[{"status":503}]}', { errors: [{ status: 503, title: "unavailable" }] }, 503],
    ['{"error":{"errorCode":"500"}}', { error: { errorCode: "500" } }, 500],
    ['{"status":429}', { status: 429 }, 429],
  ];
  for (const [label, payload, status] of bodies) {
    test(`fails over on a 200 JSON error body ${label}`, T, async (t) => {
      const { mockA, mockB, gw } = await twoRoutes(t, (_req, res) => sendJson(res, 200, payload));
      const { data, response } = await sdk(gw).chat.completions.create({ model: "auto", messages }).withResponse();
      assert.equal(data.model, "model-b");
      assert.equal(mockA.received.length, status >= 500 ? 2 : 1, "a hidden 5xx is transient: one retry first");
      assert.equal(mockB.received.length, 1);
      assert.equal(response.headers.get("x-gateway-switched"), "1");
      const notice = noticeFields((data as unknown as { gateway_notice?: Notice }).gateway_notice);
      assert.equal(notice.reason, "body_status");
      assert.equal(notice.trigger_status, status);
    });
  }

  // The answer is cleared without a parse when no key a status hides in is in its text; a key spelled with a
  // `\u` escape is still that key to JSON.parse, so it must still fail over.
  test("fails over on a 200 JSON error body whose key is spelled with a \\u escape", T, async (t) => {
    const { mockB, gw } = await twoRoutes(t, (_req, res) => {
      res.writeHead(200, { "content-type": "application/json" });
      res.end('{"error":{"c\\u006fde":429,"message":"quota"}}');
    });
    const { data, response } = await sdk(gw).chat.completions.create({ model: "auto", messages }).withResponse();
    assert.equal(data.model, "model-b");
    assert.equal(mockB.received.length, 1);
    assert.equal(response.headers.get("x-gateway-switched"), "1");
    assert.equal(noticeFields((data as unknown as { gateway_notice?: Notice }).gateway_notice).trigger_status, 429);
  });

  test("an answer that mentions a status only in its text is delivered byte for byte", T, async (t) => {
    const text = '{"id":"chatcmpl-1","object":"chat.completion","model":"model-a","choices":[{"index":0,"message":{"role":"assistant","content":"HTTP \\"code\\": 429 means slow down"},"finish_reason":"stop"}]}';
    const { mockB, gw } = await twoRoutes(t, (_req, res) => {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(text);
    });
    const res = await post(gw.url, chatBody("auto"));
    assert.equal(res.status, 200);
    assert.equal(res.text, text);
    assert.equal(mockB.received.length, 0);
  });

  test("a 200 JSON body with a non-retryable code is delivered as is", T, async (t) => {
    const { mockB, gw } = await twoRoutes(t, (_req, res) => sendJson(res, 200, { code: 200, ok: true, choices: [] }));
    const res = await post(gw.url, chatBody("auto"));
    assert.equal(res.status, 200);
    assert.deepEqual(res.json(), { code: 200, ok: true, choices: [] });
    assert.equal(mockB.received.length, 0);
  });

  test("fails over on connection refused", T, async (t) => {
    const port = await closedPort();
    const live = await useMock(t);
    const gw = await useGateway(
      t,
      `routes:
  - name: dead
    url: http://127.0.0.1:${port}/v1
    isBaseUrl: true
    model: dead-model
  - name: live
    url: ${live.origin}/v1
    isBaseUrl: true
    model: live-model
`,
    );
    const { data, response } = await sdk(gw).chat.completions.create({ model: "auto", messages }).withResponse();
    assert.equal(data.model, "live-model");
    assert.equal(response.headers.get("x-gateway-switched"), "1");
    assert.equal(response.headers.get("x-gateway-attempt-count"), "2");
    assert.deepEqual(noticeFields((data as unknown as { gateway_notice?: Notice }).gateway_notice), {
      trigger_status: null,
      from_model: "dead-model",
      from_route: "dead",
      to_model: "live-model",
      to_route: "live",
      reason: "network_error",
    });
  });

  test("fails over when the upstream resets the socket before headers", T, async (t) => {
    const { mockA, mockB, gw } = await twoRoutes(t, (_req, res) => {
      res.socket?.destroy();
    });
    const { data, response } = await sdk(gw).chat.completions.create({ model: "auto", messages }).withResponse();
    assert.equal(data.model, "model-b");
    assert.equal(mockA.received.length, 2, "a reset before headers is transient: one retry first");
    assert.equal(mockB.received.length, 1);
    assert.equal(response.headers.get("x-gateway-switched"), "1");
    assert.equal(noticeFields((data as unknown as { gateway_notice?: Notice }).gateway_notice).reason, "network_error");
  });

  test("fails over when REQUEST_TIMEOUT_MS passes before headers, and aborts the slow attempt", T, async (t) => {
    const hold = holdForever();
    const { mockA, mockB, gw } = await twoRoutes(t, hold.handler, replyChat(), "", { REQUEST_TIMEOUT_MS: "300" });
    const started = performance.now();
    const { data, response } = await sdk(gw).chat.completions.create({ model: "auto", messages }).withResponse();
    const elapsed = performance.now() - started;
    assert.equal(data.model, "model-b");
    assert.ok(elapsed >= 250, `answered after ${elapsed} ms, before the timeout could pass`);
    assert.ok(elapsed < 8_000, `answered after ${elapsed} ms`);
    assert.equal(mockA.received.length, 1);
    assert.equal(mockB.received.length, 1);
    assert.equal(response.headers.get("x-gateway-switched"), "1");
    assert.deepEqual(noticeFields((data as unknown as { gateway_notice?: Notice }).gateway_notice), {
      trigger_status: null,
      from_model: "model-a",
      from_route: "route-a",
      to_model: "model-b",
      to_route: "route-b",
      reason: "timeout",
    });
    await hold.closed; // the timed-out upstream request was aborted
  });

  test("the upstream receives the client's body with only `model` replaced", T, async (t) => {
    const { mockA, mockB, gw } = await twoRoutes(t, replyStatus(429));
    const original =
      '{\n\t"messages" : [ {"role":"user","content":"h\\u00e9llo ünïcødé 🚀 \\"model\\": \\"auto\\""} ],\r\n' +
      '  "model"   :   "auto" , "temperature":0.70,"z":{"model":"auto"},"n":1e0 }\n';
    const res = await post(gw.url, original);
    assert.equal(res.status, 200);
    const expected = (model: string) => Buffer.from(original.replace('"model"   :   "auto"', `"model"   :   "${model}"`), "utf8");
    assert.ok(mockA.received[0]!.body.equals(expected("model-a")), mockA.received[0]!.body.toString("utf8"));
    assert.ok(mockB.received[0]!.body.equals(expected("model-b")), mockB.received[0]!.body.toString("utf8"));
    assert.equal(mockB.received[0]!.headers["content-length"], String(expected("model-b").length));
  });

  test("an OpenClaw-sized streaming turn (~60 KB, tools, model last) is forwarded with only `model` replaced", async (t) => {
    const { mockA, mockB, gw } = await twoRoutes(t, replyStatus(503));
    const tools = Array.from({ length: 14 }, (_, i) => ({
      type: "function",
      function: { name: `tool_${i}`, description: `Tool ${i} — does things «${i}»`, parameters: { type: "object", properties: { model: { type: "string" } } } },
    }));
    const system = "You are OpenClaw. ".repeat(3200);
    const original = Buffer.from(
      `{"messages":[{"role":"system","content":${JSON.stringify(system)}},{"role":"user","content":"hi"}],"stream":true,` +
        `"stream_options":{"include_usage":true},"tools":${JSON.stringify(tools)},"tool_choice":"auto","max_completion_tokens":4096,"model":"auto"}`,
      "utf8",
    );
    assert.ok(original.length > 55_000);
    const res = await post(gw.url, original.toString("utf8"));
    assert.equal(res.status, 200);
    const replaced = (model: string) => Buffer.concat([original.subarray(0, original.length - '"auto"}'.length), Buffer.from(`"${model}"}`)]);
    assert.ok(mockA.received[0]!.body.equals(replaced("model-a")));
    assert.ok(mockB.received[0]!.body.equals(replaced("model-b")));
    assert.equal(sseData(res.text).at(-1), "[DONE]");
  });

  test("a model with no route is answered 404 model_not_found", T, async (t) => {
    const { mockA, mockB, gw } = await twoRoutes(t, replyChat());
    const error = await sdk(gw)
      .chat.completions.create({ model: "no-such-model", messages })
      .then(() => undefined, (e: unknown) => e);
    assert.ok(error instanceof APIError, String(error));
    assert.equal(error.status, 404);
    assert.equal((error.error as { code?: string }).code, "model_not_found");
    assert.equal(mockA.received.length + mockB.received.length, 0);
  });
});

describe("pinned models", () => {
  test("never switch: a pinned 429 reaches the client with its body, after one upstream request", T, async (t) => {
    const body = '{"error":{"message":"Rate limit reached for model-a","type":"rate_limit_error","code":"rate_limit_exceeded"}}';
    const { mockA, mockB, gw } = await twoRoutes(t, (_req, res) => {
      res.writeHead(429, { "content-type": "application/json", "retry-after": "7" });
      res.end(body);
    });
    const res = await post(gw.url, chatBody("model-a"));
    assert.equal(res.status, 429);
    assert.equal(res.text, body);
    assert.equal(res.headers["retry-after"], "7");
    assert.equal(res.headers["x-gateway-switched"], undefined);
    assert.equal(res.headers["x-gateway-model-used"], "model-a");
    assert.equal(mockA.received.length, 1);
    assert.equal(mockB.received.length, 0);

    const error = await sdk(gw)
      .chat.completions.create({ model: "model-a", messages })
      .then(() => undefined, (e: unknown) => e);
    assert.ok(error instanceof APIError);
    assert.equal(error.status, 429);
    assert.equal(mockA.received.length, 2);
    assert.equal(mockB.received.length, 0);
  });

  test("GLOBAL_FALLBACK_MODELS and MODEL_FALLBACK_MAP: the chain is followed in order", T, async (t) => {
    const a = await useMock(t, replyStatus(429));
    const b = await useMock(t, replyStatus(500));
    const c = await useMock(t);
    const d = await useMock(t);
    const yaml = `routes:
  - name: route-a
    url: ${a.origin}/v1
    isBaseUrl: true
    model: model-a
  - name: route-b
    url: ${b.origin}/v1
    isBaseUrl: true
    model: model-b
  - name: route-c
    url: ${c.origin}/v1
    isBaseUrl: true
    model: model-c
  - name: route-d
    url: ${d.origin}/v1
    isBaseUrl: true
    model: model-d
`;
    const gw = await useGateway(t, yaml, { GLOBAL_FALLBACK_MODELS: "model-b,model-c", MODEL_FALLBACK_MAP: '{"model-d": ["model-a", "model-c"]}' });
    const client = sdk(gw);

    // Global list: model-a (429, retried once) → model-b (500, retried once) → model-c (ok).
    const first = await client.chat.completions.create({ model: "model-a", messages }).withResponse();
    assert.equal(first.data.model, "model-c");
    assert.equal(first.response.headers.get("x-gateway-switched"), "1");
    assert.equal(first.response.headers.get("x-gateway-attempt-count"), "5");
    assert.deepEqual(noticeFields((first.data as unknown as { gateway_notice?: Notice }).gateway_notice), {
      trigger_status: 500,
      from_model: "model-b",
      from_route: "route-b",
      to_model: "model-c",
      to_route: "route-c",
      reason: "status",
    });
    assert.deepEqual([a.received.length, b.received.length, c.received.length, d.received.length], [2, 2, 1, 0]);

    // A per-model list wins over the global one: model-d (429, retried) → model-a (still cooling down
    // from its 429s, so skipped) → model-c, never model-b.
    d.handle(replyStatus(429));
    const second = await client.chat.completions.create({ model: "model-d", messages }).withResponse();
    assert.equal(second.data.model, "model-c");
    assert.equal(second.response.headers.get("x-gateway-attempt-count"), "3");
    assert.deepEqual([a.received.length, b.received.length, c.received.length, d.received.length], [2, 2, 2, 2]);
  });

  test("without fallback lists a pinned model has exactly one candidate even when others are configured", T, async (t) => {
    const { mockA, mockB, gw } = await twoRoutes(t, (_req, res) => {
      res.socket?.destroy();
    });
    const res = await post(gw.url, chatBody("model-a"));
    assert.equal(res.status, 502);
    assert.equal(res.json().error.code, "upstream_unreachable");
    assert.equal(mockA.received.length, 2, "retried once, never switched");
    assert.equal(mockB.received.length, 0);
  });
});

describe("telling the client", () => {
  test("no switch: x-gateway-model-used and attempt-count 1, no switched header, no notice", T, async (t) => {
    const { gw } = await twoRoutes(t, replyChat());
    const res = await post(gw.url, chatBody("auto"));
    assert.equal(res.status, 200);
    assert.equal(res.headers["x-gateway-model-used"], "model-a");
    assert.equal(res.headers["x-gateway-attempt-count"], "1");
    assert.equal(res.headers["x-gateway-switched"], undefined);
    assert.equal(res.json().gateway_notice, undefined);
  });

  test("after a switch, a newline-delimited JSON answer is relayed as it came, told by the headers alone", T, async (t) => {
    const text = '{"id":1,"text":"a"}\n{"id":2,"text":"b"}\n';
    const { gw } = await twoRoutes(t, replyStatus(429), (_req, res) => {
      res.writeHead(200, { "content-type": "application/x-ndjson" });
      res.end(text);
    });
    const res = await post(gw.url, chatBody("auto"));
    assert.equal(res.status, 200);
    assert.equal(res.headers["x-gateway-switched"], "1");
    assert.equal(res.headers["x-gateway-model-used"], "model-b");
    assert.equal(res.text, text);
  });

  test("SSE default: a `: gateway_notice {json}` comment line before the first event", T, async (t) => {
    const { gw } = await twoRoutes(t, replyStatus(429));
    const res = await post(gw.url, chatBody("auto", { stream: true }));
    assert.equal(res.status, 200);
    assert.equal(res.headers["x-gateway-switched"], "1");
    assert.equal(res.headers["x-gateway-model-used"], "model-b");
    const firstData = res.text.indexOf("data:");
    const at = res.text.indexOf(": gateway_notice ");
    assert.ok(at >= 0, `no notice comment in:\n${res.text.slice(0, 500)}`);
    assert.ok(at < firstData, "the notice comes after the first event");
    assert.equal(at === 0 || res.text.slice(0, at).trim() === "", true, "something precedes the notice comment");
    const line = res.text.slice(at, res.text.indexOf("\n", at));
    const notice = JSON.parse(line.slice(": gateway_notice ".length)) as Notice;
    assert.deepEqual(noticeFields(notice), {
      trigger_status: 429,
      from_model: "model-a",
      from_route: "route-a",
      to_model: "model-b",
      to_route: "route-b",
      reason: "status",
    });
    assert.ok(!res.text.includes("event: gateway_notice"));
    assert.equal(sseData(res.text).at(-1), "[DONE]");
  });

  test("SSE default: the openai SDK for-await loop and .stream().finalChatCompletion() work after a switch", T, async (t) => {
    const { mockB, gw } = await twoRoutes(t, replyStatus(503));
    const client = sdk(gw);

    const stream = await client.chat.completions.create({ model: "auto", stream: true, stream_options: { include_usage: true }, messages });
    let text = "";
    for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? "";
    assert.equal(text, "Hello from the mock.");

    const runner = client.chat.completions.stream({ model: "auto", messages });
    const final = await runner.finalChatCompletion();
    assert.equal(final.choices[0]?.message.content, "Hello from the mock.");
    assert.equal(final.model, "model-b");
    assert.equal(mockB.received.length, 2);
  });

  test("SSE default: x-gateway-switched after a network error and after a timeout too", T, async (t) => {
    const port = await closedPort();
    const hold = holdForever();
    const slow = await useMock(t, hold.handler);
    const live = await useMock(t);
    const gw = await useGateway(
      t,
      `routes:
  - name: dead
    url: http://127.0.0.1:${port}/v1
    isBaseUrl: true
    model: dead-model
  - name: slow
    url: ${slow.origin}/v1
    isBaseUrl: true
    model: slow-model
  - name: live
    url: ${live.origin}/v1
    isBaseUrl: true
    model: live-model
`,
      { REQUEST_TIMEOUT_MS: "300" },
    );
    const { data: stream, response } = await sdk(gw).chat.completions.create({ model: "auto", stream: true, messages }).withResponse();
    let text = "";
    for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? "";
    assert.equal(text, "Hello from the mock.");
    assert.equal(response.headers.get("x-gateway-switched"), "1");
    assert.equal(response.headers.get("x-gateway-attempt-count"), "3");
    assert.equal(response.headers.get("x-gateway-model-used"), "live-model");
  });

  test("notice.sse: event gives a named event with type and choices: [], and the SDK loop survives it", T, async (t) => {
    const { gw } = await twoRoutes(t, replyStatus(429), replyChat(), "notice:\n  sse: event\n");
    const raw = await post(gw.url, chatBody("auto", { stream: true }));
    assert.equal(raw.status, 200);
    const match = /(^|\n)event: gateway_notice\r?\ndata: (.*)\r?\n/.exec(raw.text);
    assert.ok(match, `no gateway_notice event in:\n${raw.text.slice(0, 500)}`);
    assert.ok(raw.text.indexOf("event: gateway_notice") < raw.text.indexOf('"chat.completion.chunk"'));
    const data = JSON.parse(match[2]!) as Notice & { type: string; choices: unknown[] };
    assert.equal(data.type, "gateway_notice");
    assert.deepEqual(data.choices, []);
    assert.equal(data.reason, "status");
    assert.equal(data.to_model, "model-b");

    const stream = await sdk(gw).chat.completions.create({ model: "auto", stream: true, messages });
    let text = "";
    let deltas = 0;
    for await (const chunk of stream) {
      const delta = chunk.choices[0]?.delta;
      if (delta) deltas++;
      text += delta?.content ?? "";
    }
    assert.equal(text, "Hello from the mock.");
    assert.ok(deltas > 0);

    const final = await sdk(gw).chat.completions.stream({ model: "auto", messages }).finalChatCompletion();
    assert.equal(final.choices[0]?.message.content, "Hello from the mock.");
  });

  test("notice.sse: off sends no notice in the stream (headers still tell)", T, async (t) => {
    const { gw } = await twoRoutes(t, replyStatus(429), replyChat(), "notice:\n  sse: off\n");
    const raw = await post(gw.url, chatBody("auto", { stream: true }));
    assert.equal(raw.status, 200);
    assert.equal(raw.headers["x-gateway-switched"], "1");
    assert.ok(!raw.text.includes("gateway_notice"), raw.text.slice(0, 500));
    assert.ok(raw.text.startsWith("data: "), raw.text.slice(0, 200));
    const stream = await sdk(gw).chat.completions.create({ model: "auto", stream: true, messages });
    let text = "";
    for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? "";
    assert.equal(text, "Hello from the mock.");
  });
});
