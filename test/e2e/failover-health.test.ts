/**
 * Issue 3, "Tests and evidence", health: cooldowns and circuit breaking seen
 * from outside — in auto and group modes a 429 cools the model down and the
 * next candidate answers at once, later requests skip it until the cooldown
 * passes; repeated failures open the breaker (/health shows it) and the model
 * gets no traffic; a model that was down (flap) gets one probe after its
 * cooldown and is back in rotation. Waits for time to pass are bounded polling
 * loops, never fixed sleeps.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { ask, failoverGateway, gaps, modelHealth, pause, type Answer } from "../helpers/faults.js";

const T = { timeout: 30_000 };
const TOL = 5;
/** Generous: a loaded 2-core machine, another test file alongside. */
const SLACK_MS = 2_500;
const modes = [false, true] as const;
const label = (stream: boolean) => (stream ? "streaming" : "non-streaming");
const A = "model-a";
const B = "model-b";
const C = "model-c";

describe("429 in auto and group modes: cooldown, immediate failover", () => {
  for (const stream of modes) {
    test(`auto: 429 Retry-After: 2 → the next candidate answers at once; the model is skipped until its cooldown passes (${label(stream)})`, T, async (t) => {
      const { gw, client, up } = await failoverGateway(t, [A, B]);
      up[A]!.next([{ kind: "status", status: 429, retryAfter: "2" }]);

      const first = await ask(client, "auto", { stream });

      assert.equal(first.text, up[B]!.text);
      assert.equal(up[A]!.count, 1, "interchangeable candidates: a 429 is not retried on the same model");
      assert.equal(up[B]!.count, 1);
      const switchedAfter = up[B]!.times()[0]! - up[A]!.times()[0]!;
      assert.ok(switchedAfter < 1_000, `switched after ${switchedAfter} ms: it waited for Retry-After`);
      assert.ok(first.elapsed < 1_500, `took ${first.elapsed} ms`);
      assert.equal(first.headers.get("x-gateway-model-used"), B);
      assert.equal(first.headers.get("x-gateway-attempt-count"), "2");
      assert.equal(first.headers.get("x-gateway-switched"), "1");

      const cooling = await modelHealth(gw, A);
      assert.ok(cooling.cooldown_remaining_ms > 0 && cooling.cooldown_remaining_ms <= 2_000, `cooldown ${cooling.cooldown_remaining_ms} ms`);
      assert.equal(cooling.consecutive_failures, 1);
      assert.equal(cooling.state, "closed");

      // While it cools down, round-robin skips it: its upstream sees nothing.
      const cooledAt = up[A]!.times()[0]!;
      let checked = 0;
      for (let i = 0; i < 4 && performance.now() - cooledAt < 1_500; i++) {
        const answer = await ask(client, "auto", { stream });
        assert.equal(answer.headers.get("x-gateway-model-used"), B);
        assert.equal(answer.headers.get("x-gateway-attempt-count"), "1");
        checked++;
      }
      assert.ok(checked > 0, "the machine was too slow to send a request inside the cooldown");
      assert.equal(up[A]!.count, 1, "a model cooling down got a request");

      // After the cooldown it is back in rotation (bounded: ~2 s of cooldown, then at most a few requests).
      const back = await untilServed(up[A]!, () => ask(client, "auto", { stream }), 200, 25);
      assert.equal(back.text, up[A]!.text);
      assert.equal(back.headers.get("x-gateway-model-used"), A);
      const [sinceCooled] = gaps(up[A]!.times());
      assert.ok(sinceCooled! >= 2_000 - TOL, `used again ${sinceCooled} ms after a 2 s Retry-After`);
      assert.ok(sinceCooled! < 2_000 + SLACK_MS, `back only after ${sinceCooled} ms`);
      const healthy = await modelHealth(gw, A);
      assert.equal(healthy.cooldown_remaining_ms, 0);
      assert.equal(healthy.consecutive_failures, 0);
    });
  }

  test("a group: round-robin over its members only; a 429 without Retry-After fails over at once and cools down for rateLimitCooldownMs", T, async (t) => {
    const { gw, client, up } = await failoverGateway(t, [A, B, C], {
      yaml: `groups:\n  fast: [${A}, ${B}]\nbreaker:\n  rateLimitCooldownMs: 600\n`,
    });

    const used: (string | null)[] = [];
    for (let i = 0; i < 4; i++) used.push((await ask(client, "fast", { stream: false })).headers.get("x-gateway-model-used"));
    assert.deepEqual(used, [A, B, A, B]);
    assert.equal(up[C]!.count, 0, "a model outside the group is never used");

    up[A]!.next([{ kind: "status", status: 429 }]);
    const switched = await ask(client, "fast", { stream: true });
    assert.equal(switched.text, up[B]!.text);
    assert.equal(up[A]!.count, 3, "one attempt on the rate-limited member, no retry");
    assert.equal(switched.headers.get("x-gateway-attempt-count"), "2");
    assert.equal(switched.headers.get("x-gateway-switched"), "1");
    assert.ok(switched.elapsed < 1_500, `took ${switched.elapsed} ms`);
    const cooling = await modelHealth(gw, A);
    assert.ok(cooling.cooldown_remaining_ms > 0 && cooling.cooldown_remaining_ms <= 600, `cooldown ${cooling.cooldown_remaining_ms} ms`);

    const back = await untilServed(up[A]!, () => ask(client, "fast", { stream: false }), 100, 40);
    assert.equal(back.headers.get("x-gateway-model-used"), A);
    const sinceCooled = up[A]!.times()[3]! - up[A]!.times()[2]!;
    assert.ok(sinceCooled >= 600 - TOL, `used again ${sinceCooled} ms after the 429, inside its cooldown`);
    assert.equal(up[C]!.count, 0);
  });
});

describe("every candidate cooling down", () => {
  test("auto: both rate-limited → the last 429 reaches the client; the next request tries the model that recovers first instead of failing", T, async (t) => {
    const { gw, client, up } = await failoverGateway(t, [A, B]);
    up[A]!.next([{ kind: "status", status: 429, retryAfter: "30" }]);
    up[B]!.next([{ kind: "status", status: 429, retryAfter: "10" }]);

    const raw = await fetch(`${gw.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "auto", messages: [{ role: "user", content: "Hi" }] }),
    });
    assert.equal(raw.status, 429);
    assert.equal(raw.headers.get("retry-after"), "10", "the last candidate's answer is the one passed on");
    assert.equal(raw.headers.get("x-gateway-attempt-count"), "2");
    await raw.arrayBuffer();
    assert.equal(up[A]!.count, 1);
    assert.equal(up[B]!.count, 1, "a 429 asking for 10 s is not waited for");
    assert.ok((await modelHealth(gw, A)).cooldown_remaining_ms > 20_000);
    assert.ok((await modelHealth(gw, B)).cooldown_remaining_ms > 5_000);

    const answer = await ask(client, "auto", { stream: true });
    assert.equal(answer.text, up[B]!.text);
    assert.equal(up[A]!.count, 1, "the model cooling down longest was tried");
    assert.equal(up[B]!.count, 2);
    assert.equal(answer.headers.get("x-gateway-attempt-count"), "1");
  });
});

describe("circuit breaker", () => {
  test("pinned with a fallback: repeated 5xx open the breaker (/health: open, cooldown); the model then gets no traffic", T, async (t) => {
    const { gw, client, up } = await failoverGateway(t, [A, B], { yaml: `fallbacks:\n  ${A}: [${B}]\n` });
    up[A]!.otherwise({ kind: "status", status: 500 });

    await ask(client, A, { stream: false });
    assert.equal(up[A]!.count, 2);
    assert.equal((await modelHealth(gw, A)).state, "closed");

    // The third consecutive failure (default threshold 3) opens the breaker: no retry goes to an open breaker.
    const second = await ask(client, A, { stream: false });
    assert.equal(second.text, up[B]!.text);
    const open = await modelHealth(gw, A);
    assert.equal(open.state, "open");
    assert.ok(open.cooldown_remaining_ms > 2_000, `cooldown ${open.cooldown_remaining_ms} ms (default 5 s)`);
    assert.ok(open.consecutive_failures >= 3);
    const whenOpened = up[A]!.count;

    for (let i = 0; i < 3; i++) {
      const answer = await ask(client, A, { stream: i % 2 === 1 });
      assert.equal(answer.text, up[B]!.text);
      assert.equal(answer.headers.get("x-gateway-model-used"), B);
      assert.equal(answer.headers.get("x-gateway-attempt-count"), "1");
    }
    assert.equal(up[A]!.count, whenOpened, "a model with an open breaker got a request");
    assert.equal(whenOpened, 3, "the request whose first attempt opened the breaker still sent its retry to the model");
  });

  test("flap: a model down for a while gets one probe per cooldown, and is back in rotation soon after it recovers", T, async (t) => {
    const { gw, client, up } = await failoverGateway(t, [A, B], {
      yaml: "breaker:\n  consecutiveFailures: 2\n  cooldownMs: 300\n  maxCooldownMs: 1000\n",
    });
    up[A]!.otherwise({ kind: "flap" });
    up[A]!.down = true;

    // Down: the first request meets two 503s (a retry), which open the breaker; model-b answers.
    const first = await ask(client, "auto", { stream: false });
    assert.equal(first.text, up[B]!.text);
    assert.equal(up[A]!.count, 2);
    const tripped = await modelHealth(gw, A);
    assert.equal(tripped.consecutive_failures, 2);
    assert.ok(
      (tripped.state === "open" && tripped.cooldown_remaining_ms > 0 && tripped.cooldown_remaining_ms <= 300) || tripped.state === "half_open",
      JSON.stringify(tripped),
    );

    // Still down for ~1.3 s of steady traffic: every request is answered (by model-b), and model-a only
    // sees half-open probes, each at least one (growing) cooldown after the last.
    const downSince = performance.now();
    let served = 0;
    for (let i = 0; i < 200 && performance.now() - downSince < 1_300; i++) {
      const answer = await ask(client, "auto", { stream: i % 2 === 1 });
      assert.equal(answer.text, up[B]!.text, "a request failed while one model was healthy");
      served++;
      await pause(10);
    }
    assert.ok(served >= 5, `only ${served} requests in 1.3 s`);
    const downTimes = up[A]!.times();
    const probes = downTimes.slice(2);
    assert.ok(probes.length >= 1, "no probe reached the down model within 1.3 s (cooldown 300 ms)");
    assert.ok(probes.length <= 6, `the down model got ${probes.length} requests in 1.3 s: breaker not holding`);
    assert.ok(served - probes.length >= 3, "model-b did not carry the traffic");

    // Up again: within about one max cooldown a probe reaches it, succeeds, and it is back in rotation.
    up[A]!.down = false;
    const upSince = performance.now();
    const before = up[A]!.count;
    const back = await untilServed(up[A]!, () => ask(client, "auto", { stream: false }), 50, 60, before);
    const recoveredAfter = performance.now() - upSince;
    assert.equal(back.text, up[A]!.text, "the probe after recovery did not answer");
    assert.equal(up[A]!.count, before + 1, "exactly one probe request");
    assert.ok(recoveredAfter < 1_000 + SLACK_MS, `back only after ${recoveredAfter} ms`);
    const closed = await modelHealth(gw, A);
    assert.equal(closed.state, "closed");
    assert.equal(closed.consecutive_failures, 0);
    assert.equal(closed.cooldown_remaining_ms, 0);

    // Back in rotation: round-robin gives it its share again.
    const used: (string | null)[] = [];
    for (let i = 0; i < 4; i++) used.push((await ask(client, "auto", { stream: i % 2 === 1 })).headers.get("x-gateway-model-used"));
    assert.equal(used.filter((m) => m === A).length, 2, used.join(","));
    assert.equal(used.filter((m) => m === B).length, 2, used.join(","));

    // While it was down: one probe per cooldown (300, 600, 1000 ms: growing on each failed probe), never a
    // second request on a model whose breaker is open.
    const spacing = gaps(downTimes.slice(1)).map(Math.round);
    spacing.forEach((gap, i) => {
      const cooldown = Math.min(1_000, 300 * 2 ** i);
      assert.ok(gap >= cooldown - TOL, `request ${i + 3} to the down model came ${gap} ms after the one before, inside a ${cooldown} ms open-breaker cooldown (gaps: ${spacing.join(", ")} ms)`);
    });
  });
});

/**
 * Sends requests with `call` (bounded: `maxTries`, `intervalMs` apart) until
 * `upstream` has received more than `before` requests; resolves with the answer
 * of the request that reached it.
 */
async function untilServed(
  upstream: { readonly count: number; readonly name: string },
  call: () => Promise<Answer>,
  intervalMs: number,
  maxTries: number,
  before = upstream.count,
): Promise<Answer> {
  for (let i = 0; i < maxTries; i++) {
    const answer = await call();
    if (upstream.count > before) return answer;
    await pause(intervalMs);
  }
  throw new Error(`${upstream.name} got no request in ${maxTries} tries, ${intervalMs} ms apart`);
}
