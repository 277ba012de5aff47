import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { replyChat, replyStatus } from "../helpers/mock-upstream.js";
import { chatBody, rawRequest, useGateway, useMock } from "../helpers/sdk.js";

const T = { timeout: 20_000 };

describe("switch notices for models the plan left out", () => {
  test("a pinned model cooling down is skipped for its fallback, and the client is told", T, async (t) => {
    const a = await useMock(t, replyStatus(429, { "retry-after": "30" }));
    const b = await useMock(t, replyChat());
    const gw = await useGateway(
      t,
      `fallbacks:\n  ma: [mb]\nroutes:\n  - name: ra\n    url: ${a.origin}/v1\n    isBaseUrl: true\n    model: ma\n  - name: rb\n    url: ${b.origin}/v1\n    isBaseUrl: true\n    model: mb\n`,
    );
    const post = () => rawRequest(gw.url, { method: "POST", path: "/v1/chat/completions", headers: { "content-type": "application/json" }, body: chatBody("ma") });
    // First call: ma answers 429 asking for 30 s (over the cap), so the chain moves to mb at once.
    const first = await post();
    assert.equal(first.status, 200);
    assert.equal(first.headers["x-gateway-model-used"], "mb");
    assert.equal(first.json().gateway_notice.reason, "status");
    assert.equal(a.received.length, 1);

    // Second call: ma is cooling down and is not tried, yet the client still learns it got mb.
    const second = await post();
    assert.equal(second.status, 200);
    assert.equal(a.received.length, 1, "the cooling model is left alone");
    assert.equal(second.headers["x-gateway-model-used"], "mb");
    assert.equal(second.headers["x-gateway-switched"], "1");
    assert.equal(second.headers["x-gateway-attempt-count"], "1");
    const notice = second.json().gateway_notice;
    assert.deepEqual(
      { from: notice.from_model, fromRoute: notice.from_route, to: notice.to_model, reason: notice.reason, status: notice.trigger_status },
      { from: "ma", fromRoute: "ra", to: "mb", reason: "cooldown", status: null },
    );
  });

  test("auto with a per-request models list is not reported as a switch when its first model answers", T, async (t) => {
    const a = await useMock(t, replyChat());
    const gw = await useGateway(t, `routes:\n  - name: ra\n    url: ${a.origin}/v1\n    isBaseUrl: true\n    model: [m1, m2]\n`);
    const res = await rawRequest(gw.url, {
      method: "POST",
      path: "/v1/chat/completions",
      headers: { "content-type": "application/json" },
      body: chatBody("auto", { models: ["m2", "m1"] }),
    });
    assert.equal(res.status, 200);
    assert.equal(res.headers["x-gateway-model-used"], "m2");
    assert.equal(res.headers["x-gateway-switched"], undefined);
    assert.equal(res.json().gateway_notice, undefined);
    assert.equal(a.received[0]?.json?.models, undefined, "the models field is not forwarded");
  });
});
