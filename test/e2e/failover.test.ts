/**
 * Issue 3, "Tests and evidence": the failover engine through the real gateway
 * and the official openai SDK (maxRetries: 0), streaming and not, against a
 * fault-injecting upstream per model. This file: classifying a failure and
 * what follows it — 429 with and without Retry-After, 5xx once and always,
 * a reset before headers, 400 context_length_exceeded / content_policy_violation
 * / plain, retry spacing, and the per-request `models` chain.
 * Timeouts and the deadline: failover-timeouts.test.ts. Cooldowns, breakers,
 * groups and recovery: failover-health.test.ts.
 *
 * Time bounds: lower bounds are tight (less a few ms of timer granularity)
 * only where the gateway must wait; upper bounds are generous, for a loaded
 * 2-core machine running another test file alongside.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { rawRequest, chatBody } from "../helpers/sdk.js";
import {
  ask,
  askError,
  assertOpenAIError,
  assertSpacing,
  failoverGateway,
  faultBody,
  gaps,
  modelHealth,
  type Fault,
} from "../helpers/faults.js";

const T = { timeout: 30_000 };
/** Timer granularity: a timer may fire a millisecond or two before performance.now() says it is due. */
const TOL = 5;
/** An upper bound for "at once" on a loaded machine (the slow path would take seconds). */
const AT_ONCE_MS = 2_500;
/** Half of the default backoff base (250 ms): the least a default retry waits. */
const MIN_BACKOFF_MS = 125;
const modes = [false, true] as const;
const label = (stream: boolean) => (stream ? "streaming" : "non-streaming");
const A = "model-a";
const B = "model-b";
const C = "model-c";

const chainAB = `fallbacks:\n  ${A}: [${B}]\n`;

/** The ways of calling a model that has a failover candidate after it. */
const withNext = [
  { how: "pinned with a fallback chain", model: A, yaml: chainAB },
  { how: "auto", model: "auto", yaml: "" },
  { how: "a group", model: "fast", yaml: `groups:\n  fast: [${A}, ${B}]\n` },
] as const;

describe("429 on a pinned model", () => {
  for (const stream of modes) {
    test(`Retry-After: 1 → the gateway waits at least 1 s and retries the same model, which answers (${label(stream)})`, T, async (t) => {
      const { gw, client, up } = await failoverGateway(t, [A, B], { yaml: chainAB });
      up[A]!.next([{ kind: "status", status: 429, retryAfter: "1" }]);

      const answer = await ask(client, A, { stream });

      assert.equal(answer.text, up[A]!.text);
      assert.ok(answer.models.every((m) => m === A), answer.models.join(","));
      assert.equal(up[A]!.count, 2);
      assert.equal(up[B]!.count, 0, "a short Retry-After on a pinned model is waited for, not failed over");
      const [gap] = gaps(up[A]!.times());
      assert.ok(gap! >= 1_000 - TOL, `retried after ${gap} ms, before Retry-After`);
      assert.ok(answer.elapsed >= 1_000 - TOL && answer.elapsed < 1_000 + AT_ONCE_MS, `took ${answer.elapsed} ms`);
      assert.equal(answer.headers.get("x-gateway-model-used"), A);
      assert.equal(answer.headers.get("x-gateway-attempt-count"), "2");
      assert.equal(answer.headers.get("x-gateway-switched"), null);
      assert.equal(answer.notice, undefined);

      const health = await modelHealth(gw, A);
      assert.equal(health.state, "closed");
      assert.equal(health.consecutive_failures, 0);
      assert.equal(health.cooldown_remaining_ms, 0, "a success ends the rate-limit cooldown");
      assert.equal(health.requests, 2);
      assert.equal(health.success_rate, 0.5);
    });
  }

  test("retry-after-ms: 600 → the retry waits at least 600 ms", T, async (t) => {
    const { client, up } = await failoverGateway(t, [A]);
    up[A]!.next([{ kind: "status", status: 429, retryAfterMs: "600" }]);
    const answer = await ask(client, A, { stream: false });
    assert.equal(answer.text, up[A]!.text);
    assert.equal(up[A]!.count, 2);
    const [gap] = gaps(up[A]!.times());
    assert.ok(gap! >= 600 - TOL, `retried after ${gap} ms`);
    assert.ok(answer.elapsed < 600 + AT_ONCE_MS, `took ${answer.elapsed} ms`);
    assert.equal(answer.headers.get("x-gateway-attempt-count"), "2");
  });

  for (const stream of modes) {
    test(`Retry-After: 30 (over the 5 s cap) with a fallback chain → fails over at once, and the model cools down (${label(stream)})`, T, async (t) => {
      const { gw, client, up } = await failoverGateway(t, [A, B], { yaml: chainAB });
      up[A]!.otherwise({ kind: "status", status: 429, retryAfter: "30" });

      const answer = await ask(client, A, { stream });

      assert.equal(answer.text, up[B]!.text);
      assert.ok(answer.models.every((m) => m === B), answer.models.join(","));
      assert.ok(answer.elapsed < AT_ONCE_MS, `took ${answer.elapsed} ms: should not wait for a long Retry-After`);
      assert.equal(up[A]!.count, 1, "a 429 asking for 30 s is not retried");
      assert.equal(up[B]!.count, 1);
      assert.equal(up[B]!.requests[0]!.model, B, "the fallback gets its own model name");
      assert.equal(answer.headers.get("x-gateway-model-used"), B);
      assert.equal(answer.headers.get("x-gateway-attempt-count"), "2");
      assert.equal(answer.headers.get("x-gateway-switched"), "1");
      if (!stream) {
        assert.ok(answer.notice, "no gateway_notice after a switch");
        assert.equal(answer.notice.trigger_status, 429);
        assert.equal(answer.notice.from_model, A);
        assert.equal(answer.notice.to_model, B);
      }

      const health = await modelHealth(gw, A);
      assert.ok(health.cooldown_remaining_ms > 25_000 && health.cooldown_remaining_ms <= 30_000, `cooldown ${health.cooldown_remaining_ms} ms`);
      assert.equal(health.consecutive_failures, 1);

      // While it cools down, the pinned model's requests go straight to its fallback.
      const again = await ask(client, A, { stream });
      assert.equal(again.text, up[B]!.text);
      assert.equal(up[A]!.count, 1, "a model cooling down for 30 s got another request");
      assert.equal(up[B]!.count, 2);
      assert.equal(again.headers.get("x-gateway-attempt-count"), "1");
    });
  }

  for (const stream of modes) {
    test(`no fallback, Retry-After: 30 → the 429 is passed through at once, unchanged (${label(stream)})`, T, async (t) => {
      const { gw, client, up } = await failoverGateway(t, [A, B]);
      const fault: Fault = { kind: "status", status: 429, retryAfter: "30" };
      up[A]!.otherwise(fault);

      const raw = await rawRequest(gw.url, {
        method: "POST",
        path: "/v1/chat/completions",
        headers: { "content-type": "application/json" },
        body: chatBody(A, stream ? { stream: true } : {}),
      });
      assert.equal(raw.status, 429);
      assert.equal(raw.text, faultBody(fault), "the upstream's 429 body is passed through unchanged");
      assert.equal(raw.headers["retry-after"], "30");
      assert.equal(raw.headers["x-gateway-model-used"], A);
      assert.equal(raw.headers["x-gateway-attempt-count"], "1");
      assert.equal(raw.headers["x-gateway-switched"], undefined);
      assert.equal(up[A]!.count, 1);

      // The SDK sees a clean 429 (the model is cooling down, but it is the only candidate: it is still tried).
      const { error, elapsed } = await askError(client, A, { stream });
      assertOpenAIError(error, 429, "rate_limit_exceeded", "rate_limit_error");
      assert.ok(elapsed < AT_ONCE_MS, `took ${elapsed} ms`);
      assert.equal(error.headers?.get("x-gateway-attempt-count"), "1");
      assert.equal(up[A]!.count, 2);
      assert.equal(up[B]!.count, 0, "a pinned model without a chain never switches");

      const health = await modelHealth(gw, A);
      assert.ok(health.cooldown_remaining_ms > 25_000, `cooldown ${health.cooldown_remaining_ms} ms`);
      assert.equal(health.consecutive_failures, 2);
    });
  }

  for (const stream of modes) {
    test(`no fallback, no Retry-After → one retry after a backoff, then the 429 is passed through (${label(stream)})`, T, async (t) => {
      const { gw, client, up } = await failoverGateway(t, [A, B]);
      up[A]!.otherwise({ kind: "status", status: 429 });

      const { error, elapsed } = await askError(client, A, { stream });

      assertOpenAIError(error, 429, "rate_limit_exceeded", "rate_limit_error");
      assert.equal(error.headers?.get("x-gateway-model-used"), A);
      assert.equal(error.headers?.get("x-gateway-attempt-count"), "2");
      assert.equal(up[A]!.count, 2, "the retry budget is one retry");
      assert.equal(up[B]!.count, 0);
      const [gap] = gaps(up[A]!.times());
      assert.ok(gap! >= MIN_BACKOFF_MS - TOL, `retried after ${gap} ms, without a backoff`);
      assert.ok(elapsed < AT_ONCE_MS, `took ${elapsed} ms`);

      const health = await modelHealth(gw, A);
      assert.ok(health.cooldown_remaining_ms > 0, "a 429 without Retry-After still cools the model down");
      assert.equal(health.consecutive_failures, 2);
    });
  }
});

describe("5xx", () => {
  for (const { how, model, yaml } of withNext) {
    for (const stream of modes) {
      test(`${how}: 5xx once → the same model is retried after a backoff and answers, no switch (${label(stream)})`, T, async (t) => {
        const { gw, client, up } = await failoverGateway(t, [A, B], { yaml });
        up[A]!.next([{ kind: "status", status: 500 }]);

        const answer = await ask(client, model, { stream });

        assert.equal(answer.text, up[A]!.text);
        assert.equal(up[A]!.count, 2);
        assert.equal(up[B]!.count, 0, "a transient 5xx is retried on the same model first");
        const [gap] = gaps(up[A]!.times());
        assert.ok(gap! >= MIN_BACKOFF_MS - TOL, `retried after ${gap} ms, without a backoff`);
        assert.ok(answer.elapsed < AT_ONCE_MS, `took ${answer.elapsed} ms`);
        assert.equal(answer.headers.get("x-gateway-model-used"), A);
        assert.equal(answer.headers.get("x-gateway-attempt-count"), "2");
        assert.equal(answer.headers.get("x-gateway-switched"), null);
        assert.equal(answer.notice, undefined);

        const health = await modelHealth(gw, A);
        assert.equal(health.state, "closed");
        assert.equal(health.consecutive_failures, 0);
        assert.equal(health.success_rate, 0.5);
      });
    }
  }

  for (const { how, model, yaml } of withNext) {
    for (const stream of modes) {
      test(`${how}: 5xx always → one retry, then the next model answers (${label(stream)})`, T, async (t) => {
        const { gw, client, up } = await failoverGateway(t, [A, B], { yaml });
        up[A]!.otherwise({ kind: "status", status: 503 });

        const answer = await ask(client, model, { stream });

        assert.equal(answer.text, up[B]!.text);
        assert.ok(answer.models.every((m) => m === B), answer.models.join(","));
        assert.equal(up[A]!.count, 2, "one retry on the failing model, no more");
        assert.equal(up[B]!.count, 1);
        const [gap] = gaps(up[A]!.times());
        assert.ok(gap! >= MIN_BACKOFF_MS - TOL, `retried after ${gap} ms`);
        assert.ok(up[B]!.times()[0]! >= up[A]!.times()[1]!);
        assert.ok(answer.elapsed < AT_ONCE_MS, `took ${answer.elapsed} ms`);
        assert.equal(answer.headers.get("x-gateway-model-used"), B);
        assert.equal(answer.headers.get("x-gateway-attempt-count"), "3");
        assert.equal(answer.headers.get("x-gateway-switched"), "1");
        if (!stream) {
          assert.ok(answer.notice);
          assert.equal(answer.notice.trigger_status, 503);
          assert.equal(answer.notice.from_model, A);
          assert.equal(answer.notice.reason, "status");
        }

        const health = await modelHealth(gw, A);
        assert.equal(health.consecutive_failures, 2);
        assert.equal(health.state, "closed", "two failures stay under the default breaker threshold (3)");
        assert.equal((await modelHealth(gw, B)).consecutive_failures, 0);
      });
    }
  }

  test("no fallback: 5xx always → one retry, then the last upstream status and body reach the client", T, async (t) => {
    const { client, up } = await failoverGateway(t, [A, B]);
    up[A]!.otherwise({ kind: "status", status: 502, code: "bad_gateway_upstream" });
    const { error } = await askError(client, A, { stream: false });
    assertOpenAIError(error, 502, "bad_gateway_upstream");
    assert.equal(error.headers?.get("x-gateway-attempt-count"), "2");
    assert.equal(up[A]!.count, 2);
    assert.equal(up[B]!.count, 0);
  });

  test("retries: 2 → never more than 2 attempts on one model inside 1.5 s", T, async (t) => {
    const { client, up } = await failoverGateway(t, [A], { yaml: "retry:\n  retries: 2\n  backoffMs: 40\n  maxBackoffMs: 80\n" });
    up[A]!.otherwise({ kind: "status", status: 503 });
    const { error, elapsed } = await askError(client, A, { stream: false });
    assertOpenAIError(error, 503, "status_503");
    assert.equal(up[A]!.count, 3, "two retries");
    const times = up[A]!.times();
    assertSpacing(times);
    assert.ok(gaps(times)[0]! >= 20 - TOL, "the first retry waits its backoff");
    assert.ok(elapsed >= 1_500 - TOL && elapsed < 1_500 + AT_ONCE_MS, `took ${elapsed} ms`);
    assert.equal(error.headers?.get("x-gateway-attempt-count"), "3");
  });
});

describe("connection reset before headers", () => {
  for (const stream of modes) {
    test(`once → the same model is retried and answers (${label(stream)})`, T, async (t) => {
      const { gw, client, up } = await failoverGateway(t, [A, B], { yaml: chainAB });
      up[A]!.otherwise((index) => (index === 0 ? { kind: "reset" } : { kind: "ok" }));

      const answer = await ask(client, A, { stream });

      assert.equal(answer.text, up[A]!.text);
      assert.equal(up[A]!.count, 2);
      assert.equal(up[B]!.count, 0);
      assert.ok(gaps(up[A]!.times())[0]! >= MIN_BACKOFF_MS - TOL, "the retry waits a backoff");
      assert.ok(answer.elapsed < AT_ONCE_MS, `took ${answer.elapsed} ms`);
      assert.equal(answer.headers.get("x-gateway-attempt-count"), "2");
      assert.equal(answer.headers.get("x-gateway-switched"), null);
      assert.equal((await modelHealth(gw, A)).consecutive_failures, 0);
    });
  }

  for (const { how, model, yaml } of withNext.slice(0, 2)) {
    for (const stream of modes) {
      test(`${how}: always → one retry, then the next model (${label(stream)})`, T, async (t) => {
        const { gw, client, up } = await failoverGateway(t, [A, B], { yaml });
        up[A]!.otherwise({ kind: "reset" });

        const answer = await ask(client, model, { stream });

        assert.equal(answer.text, up[B]!.text);
        assert.equal(up[A]!.count, 2);
        assert.equal(up[B]!.count, 1);
        assert.ok(gaps(up[A]!.times())[0]! >= MIN_BACKOFF_MS - TOL);
        assert.ok(answer.elapsed < AT_ONCE_MS, `took ${answer.elapsed} ms`);
        assert.equal(answer.headers.get("x-gateway-model-used"), B);
        assert.equal(answer.headers.get("x-gateway-attempt-count"), "3");
        assert.equal(answer.headers.get("x-gateway-switched"), "1");
        if (!stream) assert.equal(answer.notice?.reason, "network_error");
        const health = await modelHealth(gw, A);
        assert.equal(health.consecutive_failures, 2);
      });
    }
  }

  test("all candidates reset → 502 upstream_unreachable, each retried once", T, async (t) => {
    const { client, up } = await failoverGateway(t, [A, B]);
    up[A]!.otherwise({ kind: "reset" });
    up[B]!.otherwise({ kind: "reset" });
    const { error, elapsed } = await askError(client, "auto", { stream: true });
    assertOpenAIError(error, 502, "upstream_unreachable", "gateway_error");
    assert.equal(up[A]!.count, 2);
    assert.equal(up[B]!.count, 2);
    assert.equal(error.headers?.get("x-gateway-attempt-count"), "4");
    assert.ok(elapsed < AT_ONCE_MS, `took ${elapsed} ms`);
  });
});

describe("400s", () => {
  for (const { how, model, yaml } of withNext.slice(0, 2)) {
    for (const stream of modes) {
      test(`${how}: 400 context_length_exceeded → fails over at once, one attempt on the first model (${label(stream)})`, T, async (t) => {
        const { gw, client, up } = await failoverGateway(t, [A, B], { yaml });
        up[A]!.otherwise({ kind: "context-length" });

        const answer = await ask(client, model, { stream });

        assert.equal(answer.text, up[B]!.text);
        assert.equal(up[A]!.count, 1, "a full context is not retried on the same model");
        assert.equal(up[B]!.count, 1);
        assert.ok(answer.elapsed < AT_ONCE_MS, `took ${answer.elapsed} ms`);
        assert.equal(answer.headers.get("x-gateway-model-used"), B);
        assert.equal(answer.headers.get("x-gateway-attempt-count"), "2");
        assert.equal(answer.headers.get("x-gateway-switched"), "1");
        if (!stream) {
          assert.equal(answer.notice?.trigger_status, 400);
          assert.equal(answer.notice?.from_model, A);
        }
        const health = await modelHealth(gw, A);
        assert.equal(health.consecutive_failures, 0, "a prompt too long for a model is not the model's failure");
        assert.equal(health.cooldown_remaining_ms, 0);
      });
    }
  }

  test("no fallback: 400 context_length_exceeded is passed through after one attempt", T, async (t) => {
    const { client, up } = await failoverGateway(t, [A, B]);
    up[A]!.otherwise({ kind: "context-length" });
    const { error } = await askError(client, A, { stream: false });
    assertOpenAIError(error, 400, "context_length_exceeded", "invalid_request_error");
    assert.equal(up[A]!.count, 1);
    assert.equal(up[B]!.count, 0);
  });

  const passThrough: { what: string; fault: Extract<Fault, { kind: "content-policy" | "status" }>; code: string }[] = [
    { what: "400 content_policy_violation", fault: { kind: "content-policy" }, code: "content_policy_violation" },
    { what: "a plain 400", fault: { kind: "status", status: 400, code: "invalid_value", message: "Invalid value for 'temperature'." }, code: "invalid_value" },
  ];
  for (const { what, fault, code } of passThrough) {
    for (const { how, model, yaml } of withNext.slice(0, 2)) {
      for (const stream of modes) {
        test(`${how}: ${what} → passed through unchanged after one attempt, no failover (${label(stream)})`, T, async (t) => {
          // auto in fixed order, so the second request below starts with model-a too.
          const { gw, client, up } = await failoverGateway(t, [A, B], { yaml: model === "auto" ? "auto:\n  strategy: ordered\n" : yaml });
          up[A]!.otherwise(fault);

          const { error, elapsed } = await askError(client, model, { stream });
          assertOpenAIError(error, 400, code, "invalid_request_error");
          assert.ok(elapsed < AT_ONCE_MS, `took ${elapsed} ms`);
          assert.equal(error.headers?.get("x-gateway-model-used"), A);
          assert.equal(error.headers?.get("x-gateway-attempt-count"), "1");
          assert.equal(error.headers?.get("x-gateway-switched"), null);
          assert.equal(up[A]!.count, 1);
          assert.equal(up[B]!.count, 0, "the request's own fault is never sent to another model");

          // Byte for byte what the upstream said.
          const raw = await rawRequest(gw.url, {
            method: "POST",
            path: "/v1/chat/completions",
            headers: { "content-type": "application/json" },
            body: chatBody(model, stream ? { stream: true } : {}),
          });
          assert.equal(raw.status, 400);
          assert.equal(raw.text, faultBody(fault));
          assert.equal(up[A]!.count, 2);
          assert.equal(up[B]!.count, 0);

          const health = await modelHealth(gw, A);
          assert.equal(health.consecutive_failures, 0, "the request's fault does not count against the model");
          assert.equal(health.state, "closed");
          assert.equal(health.cooldown_remaining_ms, 0);
        });
      }
    }
  }
});

describe('a per-request chain: "models" in the body', () => {
  for (const stream of modes) {
    test(`models: [a, b] → a fails, b answers; no upstream sees "models"; it replaces the configured chain (${label(stream)})`, T, async (t) => {
      const { client, up } = await failoverGateway(t, [A, B, C], { yaml: `fallbacks:\n  ${A}: [${C}]\n` });
      up[A]!.otherwise({ kind: "status", status: 503 });

      const answer = await ask(client, A, { stream, extra: { models: [A, B] } });

      assert.equal(answer.text, up[B]!.text);
      assert.equal(up[A]!.count, 2, "5xx: one retry, then the next model of the request's chain");
      assert.equal(up[B]!.count, 1);
      assert.equal(up[C]!.count, 0, "the request's own chain replaces the configured one");
      for (const request of [...up[A]!.requests, ...up[B]!.requests]) {
        assert.ok(request.json, "the upstream got no JSON");
        assert.equal("models" in request.json, false, `an upstream saw "models": ${request.received.body.toString("utf8")}`);
        assert.deepEqual(request.json.messages, [{ role: "user", content: "Hi" }]);
        assert.equal(request.json.stream === true, stream);
      }
      assert.equal(up[B]!.requests[0]!.model, B);
      assert.equal(answer.headers.get("x-gateway-model-used"), B);
      assert.equal(answer.headers.get("x-gateway-switched"), "1");
    });
  }

  test('model "auto" with models: [b, a] → the list is the chain, in its order', T, async (t) => {
    const { client, up } = await failoverGateway(t, [A, B]);
    up[B]!.otherwise({ kind: "context-length" });
    const answer = await ask(client, "auto", { stream: false, extra: { models: [B, A] } });
    assert.equal(answer.text, up[A]!.text);
    assert.equal(up[B]!.count, 1);
    assert.equal(up[A]!.count, 1);
    assert.equal("models" in (up[A]!.requests[0]!.json ?? {}), false);
    assert.equal("models" in (up[B]!.requests[0]!.json ?? {}), false);
    assert.equal(answer.headers.get("x-gateway-attempt-count"), "2");
  });
});
