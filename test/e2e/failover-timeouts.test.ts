/**
 * Issue 3, "Tests and evidence", timeouts: an upstream that never answers
 * (response-headers timeout, global and per route), a stream whose first token
 * is late (time to first token), delays under the bounds, and the request's
 * overall deadline — through the real gateway and the openai SDK
 * (maxRetries: 0), streaming and not. A timed-out model is not retried in the
 * same request, and its abandoned attempt is really abandoned (the upstream
 * sees its request closed).
 */
import assert from "node:assert/strict";
import { describe, test, type TestContext } from "node:test";
import { ask, askError, assertOpenAIError, failoverGateway, modelHealth, useFaults, within } from "../helpers/faults.js";
import { sdk, useGateway } from "../helpers/sdk.js";

const T = { timeout: 30_000 };
const TOL = 5;
/** Generous: a loaded 2-core machine, another test file alongside. */
const SLACK_MS = 2_500;
const modes = [false, true] as const;
const label = (stream: boolean) => (stream ? "streaming" : "non-streaming");
const A = "model-a";
const B = "model-b";

describe("an upstream that never answers", () => {
  for (const stream of modes) {
    test(`pinned, timeouts.headersMs 300, route fallbacks → the next model answers; the silent one is not retried (${label(stream)})`, T, async (t) => {
      const { gw, client, up } = await failoverGateway(t, [A, B], {
        yaml: "timeouts:\n  headersMs: 300\n",
        routeExtra: { [A]: `    fallbacks: [${B}]\n` },
      });
      up[A]!.otherwise({ kind: "hang" });

      // The gateway's timer starts when it sends to A, after this; A may receive it a little later still (a new connection).
      const called = performance.now();
      const answer = await ask(client, A, { stream });

      assert.equal(answer.text, up[B]!.text);
      assert.ok(answer.models.every((m) => m === B));
      assert.equal(up[A]!.count, 1, "a timed-out model is not retried in the same request");
      assert.equal(up[B]!.count, 1);
      const waited = up[B]!.times()[0]! - called;
      assert.ok(waited >= 300 - TOL, `switched ${waited} ms after the call, before the timeout`);
      assert.ok(answer.elapsed >= 300 - TOL && answer.elapsed < 300 + SLACK_MS, `took ${answer.elapsed} ms`);
      assert.equal(answer.headers.get("x-gateway-model-used"), B);
      assert.equal(answer.headers.get("x-gateway-attempt-count"), "2");
      assert.equal(answer.headers.get("x-gateway-switched"), "1");
      if (!stream) assert.equal(answer.notice?.reason, "timeout");
      // The silent attempt was cut, not left hanging.
      await within(up[A]!.requests[0]!.ended, 2_000, "the timed-out upstream request closing");
      assert.equal(up[A]!.requests[0]!.aborted, true);

      const health = await modelHealth(gw, A);
      assert.equal(health.consecutive_failures, 1);
    });
  }

  test("auto, a route's own timeouts.headersMs (300) wins over the global one (60 s)", T, async (t) => {
    const { client, up } = await failoverGateway(t, [A, B], { routeExtra: { [A]: "    timeouts:\n      headersMs: 300\n" } });
    up[A]!.otherwise({ kind: "hang" });
    const answer = await ask(client, "auto", { stream: false });
    assert.equal(answer.text, up[B]!.text);
    assert.equal(up[A]!.count, 1);
    assert.ok(answer.elapsed >= 300 - TOL && answer.elapsed < 300 + SLACK_MS, `took ${answer.elapsed} ms`);
    assert.equal(answer.notice?.reason, "timeout");
  });

  test("REQUEST_TIMEOUT_MS=300 bounds the wait for headers too", T, async (t) => {
    const { client, up } = await failoverGateway(t, [A, B], { env: { REQUEST_TIMEOUT_MS: "300" } });
    up[A]!.otherwise({ kind: "hang" });
    const answer = await ask(client, "auto", { stream: true });
    assert.equal(answer.text, up[B]!.text);
    assert.equal(up[A]!.count, 1);
    assert.ok(answer.elapsed >= 300 - TOL && answer.elapsed < 300 + SLACK_MS, `took ${answer.elapsed} ms`);
  });

  for (const stream of modes) {
    test(`all candidates silent → 504 after each timed out once (${label(stream)})`, T, async (t) => {
      const { gw, client, up } = await failoverGateway(t, [A, B], { yaml: "timeouts:\n  headersMs: 300\n" });
      up[A]!.otherwise({ kind: "hang" });
      up[B]!.otherwise({ kind: "hang" });

      const { error, elapsed } = await askError(client, "auto", { stream });

      assertOpenAIError(error, 504, "upstream_timeout", "timeout_error");
      assert.equal(error.headers?.get("x-gateway-attempt-count"), "2");
      assert.equal(up[A]!.count, 1);
      assert.equal(up[B]!.count, 1);
      assert.ok(elapsed >= 600 - TOL && elapsed < 600 + SLACK_MS, `took ${elapsed} ms`);
      for (const upstream of [up[A]!, up[B]!]) {
        await within(upstream.requests[0]!.ended, 2_000, `${upstream.name}'s request closing`);
        assert.equal(upstream.requests[0]!.aborted, true);
      }
      assert.equal((await modelHealth(gw, A)).consecutive_failures, 1);
      assert.equal((await modelHealth(gw, B)).consecutive_failures, 1);
    });
  }

  test("headers after a delay under headersMs are just waited for", T, async (t) => {
    const { client, up } = await failoverGateway(t, [A, B], { yaml: "timeouts:\n  headersMs: 1500\n" });
    up[A]!.next([{ kind: "delay", ms: 200 }]);
    const answer = await ask(client, "auto", { stream: false });
    assert.equal(answer.text, up[A]!.text);
    assert.equal(up[A]!.count, 1);
    assert.equal(up[B]!.count, 0);
    assert.ok(answer.elapsed >= 200 - TOL && answer.elapsed < 200 + SLACK_MS, `took ${answer.elapsed} ms`);
    assert.equal(answer.headers.get("x-gateway-attempt-count"), "1");
    assert.equal(answer.headers.get("x-gateway-switched"), null);
  });
});

describe("time to first token (streams)", () => {
  const cases = [
    { how: "auto", model: "auto", yaml: "" },
    { how: "pinned with a fallback chain", model: A, yaml: `fallbacks:\n  ${A}: [${B}]\n` },
  ];
  for (const { how, model, yaml } of cases) {
    test(`${how}: firstTokenMs 300, first token after 3 s → the stream fails over invisibly`, T, async (t) => {
      const { gw, client, up } = await failoverGateway(t, [A, B], { yaml: `${yaml}timeouts:\n  firstTokenMs: 300\n` });
      up[A]!.otherwise({ kind: "slow-first-token", ms: 3_000 });

      // The SDK loop sees one complete answer from the second model and no error.
      const called = performance.now();
      const answer = await ask(client, model, { stream: true });

      assert.equal(answer.text, up[B]!.text);
      assert.ok(answer.models.length > 0 && answer.models.every((m) => m === B), answer.models.join(","));
      assert.equal(up[A]!.count, 1, "a model that timed out is not retried in the same request");
      assert.equal(up[B]!.count, 1);
      // Counted from the call: the gateway's bound starts when it sends to A, which A may see a little later.
      const waited = up[B]!.times()[0]! - called;
      assert.ok(waited >= 300 - TOL, `switched ${waited} ms after the call`);
      assert.ok(answer.elapsed >= 300 - TOL && answer.elapsed < 300 + SLACK_MS, `took ${answer.elapsed} ms: it waited for the slow stream`);
      assert.equal(answer.headers.get("x-gateway-model-used"), B);
      assert.equal(answer.headers.get("x-gateway-attempt-count"), "2");
      assert.equal(answer.headers.get("x-gateway-switched"), "1");
      assert.equal((await modelHealth(gw, A)).consecutive_failures, 1);

      // The abandoned stream is closed, not left generating (and billing) in the background.
      await within(up[A]!.requests[0]!.ended, 2_000, "the abandoned slow stream closing");
      assert.equal(up[A]!.requests[0]!.aborted, true, "the slow stream was read to its end instead of being cut");
    });
  }

  test("a first token under firstTokenMs is just waited for", T, async (t) => {
    const { client, up } = await failoverGateway(t, [A, B], { yaml: "timeouts:\n  firstTokenMs: 1500\n" });
    up[A]!.next([{ kind: "slow-first-token", ms: 250 }]);
    const answer = await ask(client, "auto", { stream: true });
    assert.equal(answer.text, up[A]!.text);
    assert.equal(up[A]!.count, 1);
    assert.equal(up[B]!.count, 0);
    assert.ok(answer.elapsed >= 250 - TOL && answer.elapsed < 250 + SLACK_MS, `took ${answer.elapsed} ms`);
    assert.equal(answer.headers.get("x-gateway-attempt-count"), "1");
    assert.equal(answer.headers.get("x-gateway-switched"), null);
  });
});

describe("the request's deadline", () => {
  for (const stream of modes) {
    test(`deadlineMs 800, silent upstreams, headersMs 5000 → 504 within about a second (${label(stream)})`, T, async (t) => {
      const { client, up } = await failoverGateway(t, [A, B], { yaml: "timeouts:\n  deadlineMs: 800\n  headersMs: 5000\n" });
      up[A]!.otherwise({ kind: "hang" });
      up[B]!.otherwise({ kind: "hang" });

      const { error, elapsed } = await askError(client, "auto", { stream });

      assertOpenAIError(error, 504, "deadline_exceeded", "timeout_error");
      assert.ok(elapsed >= 800 - TOL, `ended after ${elapsed} ms, before the deadline`);
      assert.ok(elapsed < 2_000, `ended after ${elapsed} ms`);
      assert.equal(up[A]!.count, 1);
      assert.equal(up[B]!.count, 0, "no attempt starts after the deadline");
      assert.equal(error.headers?.get("x-gateway-attempt-count"), "1");
      await within(up[A]!.requests[0]!.ended, 2_000, "the silent request closing");
      assert.equal(up[A]!.requests[0]!.aborted, true);
    });
  }

  test("deadlineMs 800 across a chain: the first candidate times out at 500, the second is cut by the deadline", T, async (t) => {
    const { client, up } = await failoverGateway(t, [A, B], {
      yaml: `timeouts:\n  deadlineMs: 800\n  headersMs: 500\nfallbacks:\n  ${A}: [${B}]\n`,
    });
    up[A]!.otherwise({ kind: "hang" });
    up[B]!.otherwise({ kind: "hang" });

    const called = performance.now();
    const { error, elapsed } = await askError(client, A, { stream: false });

    assertOpenAIError(error, 504, "deadline_exceeded", "timeout_error");
    assert.ok(elapsed >= 800 - TOL && elapsed < 2_000, `ended after ${elapsed} ms`);
    assert.equal(up[A]!.count, 1);
    assert.equal(up[B]!.count, 1);
    assert.ok(up[B]!.times()[0]! - called >= 500 - TOL, "B is tried once A's 500 ms are over");
    assert.equal(error.headers?.get("x-gateway-attempt-count"), "2");
    for (const upstream of [up[A]!, up[B]!]) {
      await within(upstream.requests[0]!.ended, 2_000, `${upstream.name}'s request closing`);
      assert.equal(upstream.requests[0]!.aborted, true);
    }
  });
});

describe("a request waiting for a pooled connection", () => {
  /**
   * One connection to the busy upstream, shared by two routes there: `holder` (its own route lines in
   * `holderExtra`) and `queued` (300 ms for headers, falling back to `model-spare` on another upstream
   * unless `queuedFallback` is false).
   */
  async function oneConnection(t: TestContext, holderExtra = "", queuedFallback = true) {
    const busy = await useFaults(t, "busy");
    const spare = await useFaults(t, "spare");
    const gw = await useGateway(
      t,
      `routes:
  - name: holder
    url: ${busy.origin}/v1
    isBaseUrl: true
    model: model-holder
${holderExtra}  - name: queued
    url: ${busy.origin}/v1
    isBaseUrl: true
    model: model-queued
    timeouts:
      headersMs: 300
${queuedFallback ? "    fallbacks: [model-spare]\n" : ""}  - name: spare
    url: ${spare.origin}/v1
    isBaseUrl: true
    model: model-spare
`,
      { UPSTREAM_MAX_CONNECTIONS: "1" },
    );
    return { gw, busy, spare, client: sdk(gw) };
  }

  test("times out on its own bound and fails over, instead of waiting for the connection to free up", T, async (t) => {
    // One connection to the busy upstream: a first request holds it (its upstream hangs, its route waits 5 s);
    // a second request for another model there is queued behind it, and must fail over after its own 300 ms.
    const { busy, spare, client } = await oneConnection(t, "    timeouts:\n      headersMs: 5000\n");
    busy.otherwise({ kind: "hang" });
    const holder = askError(client, "model-holder", { stream: false });
    await busy.waitForRequests(1, 2_000);

    const answer = await ask(client, "model-queued", { stream: false });

    assert.equal(answer.text, spare.text);
    assert.ok(answer.elapsed >= 300 - TOL && answer.elapsed < 300 + SLACK_MS, `took ${answer.elapsed} ms (the held connection frees up after 5 s)`);
    assert.equal(busy.count, 1, "the queued attempt never reached the busy upstream");
    assert.equal(answer.headers.get("x-gateway-model-used"), "model-spare");
    assert.equal(answer.notice?.reason, "timeout");
    const held = await holder;
    assertOpenAIError(held.error, 504, "upstream_timeout", "timeout_error");
  });

  test("with no candidate left: 503 gateway_connections_busy naming UPSTREAM_MAX_CONNECTIONS, and the upstream is not blamed", T, async (t) => {
    const { gw, busy, client } = await oneConnection(t, "    timeouts:\n      headersMs: 5000\n", false);
    busy.otherwise({ kind: "hang" });
    const holder = askError(client, "model-holder", { stream: false });
    await busy.waitForRequests(1, 2_000);

    const queued = await askError(client, "model-queued", { stream: false });

    assertOpenAIError(queued.error, 503, "gateway_connections_busy", "gateway_error");
    assert.match(queued.error.message, /UPSTREAM_MAX_CONNECTIONS=1/);
    assert.ok(queued.elapsed >= 300 - TOL && queued.elapsed < 300 + SLACK_MS, `took ${queued.elapsed} ms`);
    assert.equal(busy.count, 1, "the queued attempt never reached the upstream");
    const health = await modelHealth(gw, "model-queued");
    assert.equal(health.consecutive_failures, 0, "a wait for the gateway's own connections is not the upstream's failure");
    assert.equal(health.state, "closed");
    assert.equal(health.cooldown_remaining_ms, 0);
    // The holder did reach its upstream, which stayed silent: that one is a real timeout.
    assertOpenAIError((await holder).error, 504, "upstream_timeout", "timeout_error");
    assert.equal((await modelHealth(gw, "model-holder")).consecutive_failures, 1);
  });

  test("that timed out does not cost the connection when it frees up: the next request reuses it", T, async (t) => {
    // The holder's answer takes 600 ms; the queued attempt gives up after 300 ms but stays in undici's queue,
    // and is handed the connection when the holder's answer ends: it must let it go, not close it.
    const { busy, spare, client } = await oneConnection(t);
    busy.next([{ kind: "delay", ms: 600 }]);
    const holder = ask(client, "model-holder", { stream: false });
    await busy.waitForRequests(1, 2_000);
    const queued = await ask(client, "model-queued", { stream: false });
    assert.equal(queued.headers.get("x-gateway-model-used"), "model-spare");
    assert.equal((await holder).text, busy.text);

    const again = await ask(client, "model-holder", { stream: false });

    assert.equal(again.text, busy.text);
    assert.equal(busy.count, 2, "the timed-out attempt never reached the upstream");
    const [first, second] = busy.requests;
    assert.equal(second!.received.remotePort, first!.received.remotePort, "a new connection: the freed one was closed");
  });
});
