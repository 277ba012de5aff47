import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { DEFAULT_HEALTH_POLICY, ModelHealth, type HealthPolicy } from "../../src/routing/health.js";

/** The default policy with overrides; every clock value below is a plain number. */
const policy = (over: Partial<HealthPolicy> = {}): HealthPolicy => ({ ...DEFAULT_HEALTH_POLICY, ...over });

/** Only consecutive failures trip it (the failure-rate rule needs more outcomes than the tests make). */
const CONSECUTIVE_ONLY = policy({ consecutiveFailures: 3, minRequests: 1000, baseCooldownMs: 5000, maxCooldownMs: 30_000 });
/** Only the failure rate trips it. */
const RATE_ONLY = policy({ consecutiveFailures: 1000, minRequests: 5, failureRate: 0.5, windowMs: 60_000, windowSize: 20 });

function failTimes(health: ModelHealth, n: number, now: number): void {
  for (let i = 0; i < n; i++) health.recordFailure(now);
}

/** A breaker tripped at `at` (three consecutive failures). */
function tripped(p: HealthPolicy = CONSECUTIVE_ONLY, at = 1000): ModelHealth {
  const health = new ModelHealth(p);
  failTimes(health, p.consecutiveFailures, at);
  assert.equal(health.view(at).state, "open");
  return health;
}

describe("health: defaults", () => {
  test("the documented defaults", () => {
    assert.equal(DEFAULT_HEALTH_POLICY.consecutiveFailures, 3);
    assert.equal(DEFAULT_HEALTH_POLICY.baseCooldownMs, 5000);
    assert.equal(DEFAULT_HEALTH_POLICY.maxCooldownMs, 30_000, "a recovered model is back within 30 s");
    assert.ok(DEFAULT_HEALTH_POLICY.failureRate > 0 && DEFAULT_HEALTH_POLICY.failureRate <= 1);
  });

  test("a new model is closed, admitted, with no outcomes", () => {
    const health = new ModelHealth();
    assert.equal(health.admission(0), "ok");
    assert.deepEqual(health.view(0), {
      state: "closed",
      blockedUntil: 0,
      cooldownRemainingMs: 0,
      successRate: null,
      p50LatencyMs: null,
      requests: 0,
      consecutiveFailures: 0,
      trips: 0,
    });
  });
});

describe("health: opening the breaker", () => {
  test("closed → open after consecutiveFailures", () => {
    const health = new ModelHealth(CONSECUTIVE_ONLY);
    health.recordFailure(1000);
    health.recordFailure(1100);
    assert.equal(health.view(1100).state, "closed");
    assert.equal(health.admission(1100), "ok");
    health.recordFailure(1200);
    const view = health.view(1200);
    assert.equal(view.state, "open");
    assert.equal(view.trips, 1);
    assert.equal(view.consecutiveFailures, 3);
    assert.equal(view.cooldownRemainingMs, 5000);
    assert.equal(view.blockedUntil, 6200);
    assert.equal(health.admission(1200), "blocked");
  });

  test("a success resets the consecutive count", () => {
    const health = new ModelHealth(CONSECUTIVE_ONLY);
    health.recordFailure(0);
    health.recordFailure(0);
    health.recordSuccess(0, 10);
    assert.equal(health.view(0).consecutiveFailures, 0);
    health.recordFailure(0);
    health.recordFailure(0);
    assert.equal(health.view(0).state, "closed");
    health.recordFailure(0);
    assert.equal(health.view(0).state, "open");
  });

  test("opens on the failure rate once minRequests outcomes are in the window", () => {
    const health = new ModelHealth(RATE_ONLY);
    let t = 0;
    health.recordSuccess((t += 100), 10);
    health.recordFailure((t += 100));
    health.recordSuccess((t += 100), 10);
    health.recordFailure((t += 100));
    assert.equal(health.view(t).state, "closed", "4 outcomes: fewer than minRequests");
    health.recordSuccess((t += 100), 10);
    assert.equal(health.view(t).state, "closed", "5 outcomes, 2 failures: 40%");
    health.recordFailure((t += 100));
    assert.equal(health.view(t).state, "open", "6 outcomes, 3 failures: 50%");
    assert.equal(health.admission(t), "blocked");
  });

  test("below the failure rate it stays closed", () => {
    const health = new ModelHealth(RATE_ONLY);
    for (let i = 0; i < 10; i++) {
      health.recordSuccess(i * 10, 10);
      health.recordSuccess(i * 10 + 1, 10);
      health.recordFailure(i * 10 + 2);
    }
    assert.equal(health.view(100).state, "closed");
    assert.equal(health.view(100).consecutiveFailures, 1);
  });

  test("outcomes older than windowMs do not count", () => {
    const p = policy({ ...RATE_ONLY, windowMs: 60_000 });
    const old = new ModelHealth(p);
    failTimes(old, 4, 0);
    old.recordFailure(60_001);
    assert.equal(old.view(60_001).state, "closed", "the 4 old failures left the window");
    assert.equal(old.view(60_001).requests, 1);

    const recent = new ModelHealth(p);
    failTimes(recent, 4, 0);
    recent.recordFailure(30_000);
    assert.equal(recent.view(30_000).state, "open", "the same 5 failures inside the window open it");
  });

  test("the window keeps at most windowSize outcomes", () => {
    const health = new ModelHealth(policy({ windowSize: 3 }));
    for (let i = 0; i < 5; i++) health.recordSuccess(i, 100 + i);
    const view = health.view(10);
    assert.equal(view.requests, 3);
    assert.equal(view.p50LatencyMs, 103, "the oldest two are gone: [102, 103, 104]");
  });
});

describe("health: open, half-open, closed", () => {
  test("admission is blocked while open and becomes probe after the cooldown", () => {
    const health = tripped(CONSECUTIVE_ONLY, 1000);
    assert.equal(health.admission(1000), "blocked");
    assert.equal(health.admission(5999), "blocked");
    assert.equal(health.view(3000).cooldownRemainingMs, 3000);
    assert.equal(health.admission(6000), "probe");
    assert.equal(health.view(6000).state, "half_open", "ready for a probe");
    assert.equal(health.view(6000).cooldownRemainingMs, 0);
  });

  test("begin() makes it half-open with one probe at a time, until probeTimeoutMs", () => {
    const p = policy({ ...CONSECUTIVE_ONLY, probeTimeoutMs: 20_000 });
    const health = tripped(p, 1000);
    health.begin(6000);
    assert.equal(health.view(6000).state, "half_open");
    assert.equal(health.admission(6000), "blocked", "the probe is in flight");
    assert.equal(health.admission(25_999), "blocked");
    assert.equal(health.admission(26_000), "probe", "the probe is presumed lost");
  });

  test("begin() before the cooldown ends does not make a probe", () => {
    const health = tripped(CONSECUTIVE_ONLY, 1000);
    health.begin(2000);
    assert.equal(health.view(2000).state, "open");
    assert.equal(health.admission(2000), "blocked");
    assert.equal(health.admission(6000), "probe");
  });

  test("begin() on a closed breaker changes nothing", () => {
    const health = new ModelHealth(CONSECUTIVE_ONLY);
    health.begin(0);
    health.begin(1);
    assert.equal(health.admission(2), "ok");
    assert.equal(health.view(2).state, "closed");
  });

  test("probe success closes it: trips reset, window cleared", () => {
    const health = tripped(CONSECUTIVE_ONLY, 1000);
    health.begin(6000);
    health.recordSuccess(6500, 120);
    const view = health.view(6500);
    assert.equal(view.state, "closed");
    assert.equal(view.trips, 0);
    assert.equal(view.consecutiveFailures, 0);
    assert.equal(view.requests, 1, "only the probe's success is left");
    assert.equal(view.successRate, 1);
    assert.equal(view.p50LatencyMs, 120);
    assert.equal(health.admission(6500), "ok");
    // A fresh trip starts again from the base cooldown.
    failTimes(health, 3, 7000);
    assert.equal(health.view(7000).cooldownRemainingMs, 5000);
    assert.equal(health.view(7000).trips, 1);
  });

  test("probe failure re-opens with the cooldown doubled, capped at maxCooldownMs", () => {
    const health = tripped(CONSECUTIVE_ONLY, 0);
    let openUntil = 5000;
    const expected = [10_000, 20_000, 30_000, 30_000];
    for (const cooldown of expected) {
      health.begin(openUntil);
      assert.equal(health.admission(openUntil), "blocked");
      const failedAt = openUntil + 100;
      health.recordFailure(failedAt);
      const view = health.view(failedAt);
      assert.equal(view.state, "open");
      assert.equal(view.cooldownRemainingMs, cooldown);
      assert.equal(health.admission(failedAt + cooldown - 1), "blocked");
      assert.equal(health.admission(failedAt + cooldown), "probe");
      openUntil = failedAt + cooldown;
    }
    assert.equal(health.view(openUntil).trips, 5);
  });

  test("the cap is the policy's", () => {
    const health = tripped(policy({ ...CONSECUTIVE_ONLY, baseCooldownMs: 1000, maxCooldownMs: 1500 }), 0);
    health.begin(1000);
    health.recordFailure(1000);
    assert.equal(health.view(1000).cooldownRemainingMs, 1500);
  });
});

describe("health: rate-limit cooldowns", () => {
  test("a 429 with retryAfterMs blocks for exactly that long", () => {
    const health = new ModelHealth(CONSECUTIVE_ONLY);
    health.recordFailure(1000, { rateLimited: true, retryAfterMs: 7000 });
    assert.equal(health.admission(1000), "blocked");
    assert.equal(health.admission(7999), "blocked");
    assert.equal(health.admission(8000), "ok");
    const view = health.view(1000);
    assert.equal(view.cooldownRemainingMs, 7000);
    assert.equal(view.blockedUntil, 8000);
    assert.equal(view.state, "closed", "a cooldown is not a breaker trip");
  });

  test("a 429 without Retry-After blocks for rateLimitCooldownMs", () => {
    const health = new ModelHealth(policy({ ...CONSECUTIVE_ONLY, rateLimitCooldownMs: 4000 }));
    health.recordFailure(1000, { rateLimited: true });
    assert.equal(health.view(1000).cooldownRemainingMs, 4000);
    assert.equal(health.admission(4999), "blocked");
    assert.equal(health.admission(5000), "ok");
  });

  test("a longer cooldown is not shortened by a later short one", () => {
    const health = new ModelHealth(CONSECUTIVE_ONLY);
    health.recordFailure(0, { rateLimited: true, retryAfterMs: 10_000 });
    health.recordFailure(100, { rateLimited: true, retryAfterMs: 1000 });
    assert.equal(health.admission(5000), "blocked");
    assert.equal(health.admission(10_000), "ok");
  });

  test("a plain failure does not start a cooldown", () => {
    const health = new ModelHealth(CONSECUTIVE_ONLY);
    health.recordFailure(0);
    assert.equal(health.admission(0), "ok");
    assert.equal(health.view(0).cooldownRemainingMs, 0);
  });

  test("success clears a rate-limit cooldown", () => {
    const health = new ModelHealth(CONSECUTIVE_ONLY);
    health.recordFailure(1000, { rateLimited: true, retryAfterMs: 30_000 });
    assert.equal(health.admission(2000), "blocked");
    health.recordSuccess(2000, 50);
    assert.equal(health.admission(2000), "ok");
    assert.equal(health.view(2000).cooldownRemainingMs, 0);
  });

  test("a cooldown longer than an open breaker's keeps it blocked after the breaker is ready", () => {
    const health = tripped(CONSECUTIVE_ONLY, 0);
    health.recordFailure(0, { rateLimited: true, retryAfterMs: 20_000 });
    assert.equal(health.admission(5000), "blocked");
    assert.equal(health.view(5000).cooldownRemainingMs, 15_000);
    assert.equal(health.admission(20_000), "probe");
  });
});

describe("health: view", () => {
  test("success rate, p50 latency (of successes), requests, consecutive failures", () => {
    const health = new ModelHealth(CONSECUTIVE_ONLY);
    health.recordSuccess(0, 100);
    health.recordSuccess(10, 300);
    health.recordSuccess(20, 200);
    health.recordFailure(30, { latencyMs: 9000 });
    health.recordSuccess(40, 400);
    health.recordSuccess(50, 250);
    health.recordFailure(60, { latencyMs: 5 });
    const view = health.view(60);
    assert.equal(view.requests, 7);
    assert.equal(view.successRate, 5 / 7);
    assert.equal(view.p50LatencyMs, 250, "median of 100, 200, 250, 300, 400");
    assert.equal(view.consecutiveFailures, 1);
    assert.equal(view.state, "closed");
    assert.equal(view.cooldownRemainingMs, 0);
    assert.equal(view.blockedUntil, 0);
  });

  test("only failures: success rate 0, no latency", () => {
    const health = new ModelHealth(CONSECUTIVE_ONLY);
    health.recordFailure(0);
    health.recordFailure(0);
    assert.equal(health.view(0).successRate, 0);
    assert.equal(health.view(0).p50LatencyMs, null);
    assert.equal(health.view(0).consecutiveFailures, 2);
  });

  test("the view forgets outcomes older than the window", () => {
    const health = new ModelHealth(policy({ windowMs: 10_000 }));
    health.recordSuccess(0, 100);
    health.recordFailure(5000);
    assert.equal(health.view(5000).requests, 2);
    assert.equal(health.view(10_001).requests, 1);
    assert.equal(health.view(10_001).successRate, 0);
    assert.equal(health.view(15_001).successRate, null);
  });

  test("view() has no side effects", () => {
    const health = tripped(CONSECUTIVE_ONLY, 0);
    health.view(5000);
    health.view(100_000);
    assert.equal(health.admission(1000), "blocked", "viewing later did not move the breaker on");
  });
});

describe("health: the window against a plain list", () => {
  /** The window as a list filtered and sorted on every read: slow, obviously right. */
  class ListWindow {
    private outcomes: { at: number; ok: boolean; latencyMs: number }[] = [];
    constructor(private readonly p: HealthPolicy) {}
    push(at: number, ok: boolean, latencyMs: number): void {
      this.outcomes.push({ at, ok, latencyMs });
      if (this.outcomes.length > this.p.windowSize) this.outcomes.shift();
    }
    figures(now: number) {
      const recent = this.outcomes.filter((o) => now - o.at <= this.p.windowMs);
      const latencies = recent.filter((o) => o.ok).map((o) => o.latencyMs).sort((a, b) => a - b);
      return {
        requests: recent.length,
        successRate: recent.length ? latencies.length / recent.length : null,
        p50LatencyMs: latencies.length ? (latencies[(latencies.length - 1) >> 1] as number) : null,
      };
    }
  }

  test("3,000 random histories: the same requests, success rate and p50 at every step", () => {
    let seed = 7;
    const random = (n: number) => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return (seed >>> 8) % n;
    };
    for (let run = 0; run < 3000; run++) {
      // The breaker never trips here, so every outcome stays in the window as recorded.
      const p = policy({ windowSize: 1 + random(40), windowMs: 1 + random(500), consecutiveFailures: 1e9, minRequests: 1e9 });
      const health = new ModelHealth(p);
      const list = new ListWindow(p);
      let now = random(1000);
      const steps = 1 + random(80);
      for (let step = 0; step < steps; step++) {
        now += random(4) === 0 ? random(300) : random(3);
        // Few distinct latencies, so equal values are removed and inserted often.
        const latency = random(6) * 10;
        if (random(3) === 0) {
          health.recordFailure(now, { latencyMs: latency });
          list.push(now, false, latency);
        } else {
          health.recordSuccess(now, latency);
          list.push(now, true, latency);
        }
        // Sometimes only time passes before the window is read.
        if (random(4) === 0) now += random(400);
        const got = health.view(now);
        assert.deepEqual(
          { requests: got.requests, successRate: got.successRate, p50LatencyMs: got.p50LatencyMs },
          list.figures(now),
          `run ${run}, step ${step}`,
        );
      }
    }
  });

  test("a latency that is not a number counts as 0 and takes no other success's place", () => {
    const health = new ModelHealth(policy({ windowSize: 3 }));
    health.recordSuccess(0, 50);
    health.recordSuccess(1, Number.NaN);
    health.recordSuccess(2, 70);
    assert.equal(health.view(2).p50LatencyMs, 50, "median of 0, 50, 70");
    health.recordSuccess(3, 90);
    assert.equal(health.view(3).p50LatencyMs, 70, "the oldest (50) left: 0, 70, 90");
    health.recordSuccess(4, 10);
    assert.equal(health.view(4).p50LatencyMs, 70, "the 0 left: 10, 70, 90");
  });
});
