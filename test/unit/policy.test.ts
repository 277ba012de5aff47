import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { buildConfig } from "../../src/config/load.js";
import { DEFAULT_RETRY_STATUS_CODES } from "../../src/config/schema.js";
import type { GatewayConfig } from "../../src/config/types.js";
import {
  CONTENT_POLICY_CODES,
  CONTEXT_LENGTH_CODES,
  DEFAULT_RETRY_POLICY,
  DEFAULT_RULES,
  backoffMs,
  decide,
  errorFacts,
  matchRule,
  retryAfterMs,
  type Action,
  type DecisionContext,
  type FailureFacts,
  type RetryPolicy,
  type Rule,
} from "../../src/routing/policy.js";

const RETRY_SET = new Set<number>(DEFAULT_RETRY_STATUS_CODES);

/** Facts of a failure; `inRetrySet` follows the default retry set unless given. */
function facts(input: Partial<FailureFacts> & { status: number | null }): FailureFacts {
  return {
    codes: [],
    message: "",
    kind: input.status === null ? "network" : "status",
    keyedRoute: false,
    inRetrySet: input.status !== null && RETRY_SET.has(input.status),
    ...input,
  };
}

/** A body as an upstream sends it, through errorFacts, into facts. */
function fromBody(status: number, payload: unknown, extra: Partial<FailureFacts> = {}): FailureFacts {
  return facts({ status, ...errorFacts(payload), ...extra });
}

function config(yaml: string): GatewayConfig {
  const result = buildConfig(yaml, {}, { routesFile: "routes.yml" });
  assert.deepEqual(result.problems, []);
  assert.ok(result.config);
  return result.config;
}

const ROUTE = `
routes:
  - name: ra
    url: https://a.example/v1
    model: a
`;

interface Case {
  readonly name: string;
  readonly facts: FailureFacts;
  /** The expected action, or null: no rule, the answer is passed through. */
  readonly action: Action | null;
  readonly rule?: string;
}

const openaiError = (code: string, message = "error", type = "invalid_request_error") => ({ error: { message, type, param: null, code } });

const CASES: Case[] = [
  { name: "429 in the retry set", facts: facts({ status: 429 }), action: "retry", rule: "rate-limited" },
  ...[500, 502, 503, 504].map((status) => ({ name: `${status} in the retry set`, facts: facts({ status }), action: "retry" as const, rule: "server-error" })),
  ...[429, 500, 502, 503, 504].map((status) => ({ name: `${status} out of the retry set`, facts: facts({ status, inRetrySet: false }), action: null })),
  { name: "412 in the retry set", facts: facts({ status: 412 }), action: "failover", rule: "retry-status" },
  { name: "412 out of the retry set", facts: facts({ status: 412, inRetrySet: false }), action: null },
  { name: "418 added to the retry set", facts: facts({ status: 418, inRetrySet: true }), action: "failover", rule: "retry-status" },
  ...CONTEXT_LENGTH_CODES.map((code) => ({
    name: `400 ${code}`,
    facts: fromBody(400, openaiError(code)),
    action: "failover" as const,
    rule: "context-length",
  })),
  {
    name: "400 with OpenAI's maximum context length message and no code",
    facts: fromBody(400, { error: { message: "This model's maximum context length is 8192 tokens. However, your messages resulted in 9000 tokens.", type: "invalid_request_error" } }),
    action: "failover",
    rule: "context-length",
  },
  {
    name: "400 Anthropic prompt is too long",
    facts: fromBody(400, { type: "error", error: { type: "invalid_request_error", message: "prompt is too long: 210000 tokens > 200000 maximum" } }),
    action: "failover",
    rule: "context-length",
  },
  { name: "413 context_length_exceeded", facts: fromBody(413, openaiError("context_length_exceeded")), action: "failover", rule: "context-length" },
  ...CONTENT_POLICY_CODES.flatMap((code) =>
    [400, 403, 422, 429, 500, 200].map((status) => ({
      name: `${status} ${code}`,
      facts: fromBody(status, openaiError(code, "Your request was rejected as a result of our safety system.")),
      action: "final" as const,
      rule: "content-policy",
    })),
  ),
  {
    name: "Azure content_filter (code only, 400)",
    facts: fromBody(400, { error: { code: "content_filter", message: "The response was filtered", innererror: { code: "ResponsibleAIPolicyViolation" } } }),
    action: "final",
    rule: "content-policy",
  },
  { name: "other 400 (invalid_request_error)", facts: fromBody(400, openaiError("invalid_value", "Invalid value for 'temperature'")), action: null },
  { name: "400 without a body", facts: facts({ status: 400 }), action: null },
  { name: "401 on an unkeyed route", facts: fromBody(401, openaiError("invalid_api_key", "Incorrect API key provided")), action: null },
  { name: "403 on an unkeyed route", facts: facts({ status: 403 }), action: null },
  { name: "404", facts: fromBody(404, openaiError("model_not_found", "The model does not exist")), action: null },
  { name: "422", facts: fromBody(422, { detail: [{ msg: "field required" }] }), action: null },
  { name: "401 on a keyed route", facts: fromBody(401, openaiError("invalid_api_key"), { keyedRoute: true }), action: "failover", rule: "route-key-rejected" },
  { name: "403 on a keyed route", facts: facts({ status: 403, keyedRoute: true }), action: "failover", rule: "route-key-rejected" },
  { name: "timeout", facts: facts({ status: null, kind: "timeout" }), action: "failover", rule: "timeout" },
  { name: "connection reset before headers", facts: facts({ status: null, kind: "reset" }), action: "retry", rule: "connection-reset" },
  { name: "network error (refused, DNS)", facts: facts({ status: null, kind: "network" }), action: "failover", rule: "unreachable" },
  { name: "200 without an error code", facts: facts({ status: 200 }), action: null },
];

describe("policy: the classification table (DEFAULT_RULES)", () => {
  for (const c of CASES) {
    test(`${c.name} → ${c.action ?? "pass through"}`, () => {
      const rule = matchRule(c.facts, DEFAULT_RULES);
      assert.equal(rule?.action ?? null, c.action, `rule: ${rule?.name}`);
      if (c.rule) assert.equal(rule?.name, c.rule);
    });
  }

  test("matchRule uses DEFAULT_RULES when no rules are given", () => {
    assert.equal(matchRule(facts({ status: 429 }))?.name, "rate-limited");
    assert.equal(matchRule(facts({ status: 404 })), undefined);
  });

  test("content policy beats the retry set and the context-length rule", () => {
    const both = facts({ status: 400, codes: ["content_policy_violation", "context_length_exceeded"], inRetrySet: true });
    assert.equal(matchRule(both)?.action, "final");
  });

  test("rules are checked in order: the first match decides", () => {
    const rules: Rule[] = [
      { name: "first", action: "final", statuses: [503] },
      { name: "second", action: "failover", statuses: [503] },
    ];
    assert.equal(matchRule(facts({ status: 503 }), rules)?.name, "first");
    assert.equal(matchRule(facts({ status: 502 }), rules), undefined);
  });
});

describe("policy: configured passthrough and failover codes", () => {
  const cfg = config(`${ROUTE}
retry:
  passthroughCodes: [Insufficient_Quota, context_length_exceeded]
  failoverCodes: [model_overloaded, invalid_value]
`);

  test("the configured rules come first, passthrough before failover", () => {
    assert.deepEqual(
      cfg.rules.slice(0, 2).map((rule) => [rule.name, rule.action]),
      [
        ["configured-passthrough", "final"],
        ["configured-failover", "failover"],
      ],
    );
    assert.deepEqual(cfg.rules.slice(2), [...DEFAULT_RULES]);
  });

  test("a passthrough code wins over a retryable status (codes are lower-cased)", () => {
    const rule = matchRule(fromBody(429, openaiError("insufficient_quota", "You exceeded your current quota")), cfg.rules);
    assert.equal(rule?.action, "final");
    assert.equal(rule?.name, "configured-passthrough");
    assert.equal(matchRule(fromBody(429, openaiError("insufficient_quota")), DEFAULT_RULES)?.action, "retry", "without the config: retry");
  });

  test("a passthrough code wins over a built-in failover rule", () => {
    assert.equal(matchRule(fromBody(400, openaiError("context_length_exceeded")), cfg.rules)?.action, "final");
  });

  test("a failover code wins over a transient 5xx and over pass-through", () => {
    assert.equal(matchRule(fromBody(503, openaiError("model_overloaded")), cfg.rules)?.action, "failover");
    assert.equal(matchRule(fromBody(400, openaiError("invalid_value")), cfg.rules)?.action, "failover");
    assert.equal(matchRule(fromBody(400, openaiError("invalid_value")), DEFAULT_RULES), undefined, "without the config: pass through");
  });

  test("passthrough beats failover when a body carries both codes", () => {
    const both = facts({ status: 500, codes: ["model_overloaded", "insufficient_quota"] });
    assert.equal(matchRule(both, cfg.rules)?.action, "final");
  });

  test("without retry codes, the rules are the built-in ones", () => {
    assert.deepEqual(config(ROUTE).rules, [...DEFAULT_RULES]);
  });
});

describe("policy: errorFacts", () => {
  test("OpenAI shape: code and type, lower-cased, and the message", () => {
    const out = errorFacts({
      error: { message: "This model's maximum context length is 4097 tokens.", type: "invalid_request_error", param: "messages", code: "Context_Length_Exceeded" },
    });
    assert.ok(out.codes.includes("context_length_exceeded"), JSON.stringify(out.codes));
    assert.ok(out.codes.includes("invalid_request_error"), JSON.stringify(out.codes));
    assert.equal(out.message, "This model's maximum context length is 4097 tokens.");
  });

  test("Anthropic shape: the nested error type and message", () => {
    const out = errorFacts({ type: "error", error: { type: "overloaded_error", message: "Overloaded" } });
    assert.ok(out.codes.includes("overloaded_error"), JSON.stringify(out.codes));
    assert.equal(out.message, "Overloaded");
  });

  test("errors[] shape: every entry's code, the first message", () => {
    const out = errorFacts({ errors: [{ code: "RATE_LIMIT", message: "slow down" }, { errorCode: "Quota", message: "second" }] });
    assert.ok(out.codes.includes("rate_limit"), JSON.stringify(out.codes));
    assert.ok(out.codes.includes("quota"), JSON.stringify(out.codes));
    assert.equal(out.message, "slow down");
  });

  test("Google shape: numeric code and status string", () => {
    const out = errorFacts({ error: { code: 429, message: "Resource has been exhausted", status: "RESOURCE_EXHAUSTED" } });
    assert.ok(out.codes.includes("429"));
    assert.ok(out.codes.includes("resource_exhausted"));
    assert.equal(out.message, "Resource has been exhausted");
  });

  test("top-level code and message", () => {
    const out = errorFacts({ code: "content_filter", message: "filtered" });
    assert.deepEqual(out, { codes: ["content_filter"], message: "filtered" });
  });

  test("non-objects and empty objects give nothing", () => {
    for (const payload of [null, undefined, "error", 42, [], [{ code: "x" }], {}, { error: "plain string" }]) {
      assert.deepEqual(errorFacts(payload), { codes: [], message: "" }, JSON.stringify(payload));
    }
  });

  test("errorFacts feeds the table: an Anthropic 529 overloaded is transient, not a context error", () => {
    const f = fromBody(529, { type: "error", error: { type: "overloaded_error", message: "Overloaded" } });
    assert.equal(matchRule(f)?.name, "overloaded", "529 is retried, then failed over, even outside the retry set");
    assert.equal(matchRule(f)?.action, "retry");
  });
});

describe("policy: retryAfterMs", () => {
  test("retry-after in seconds", () => {
    assert.equal(retryAfterMs({ "retry-after": "3" }), 3000);
    assert.equal(retryAfterMs({ "retry-after": "0" }), 0);
    assert.equal(retryAfterMs({ "retry-after": " 2 " }), 2000);
    assert.equal(retryAfterMs({ "retry-after": "120" }), 120_000);
  });

  test("fractional seconds", () => {
    assert.equal(retryAfterMs({ "retry-after": "1.5" }), 1500);
    assert.equal(retryAfterMs({ "retry-after": "0.25" }), 250);
  });

  test("an HTTP date, against the injected clock", () => {
    const now = Date.parse("Wed, 21 Oct 2015 07:28:00 GMT");
    assert.equal(retryAfterMs({ "retry-after": "Wed, 21 Oct 2015 07:28:10 GMT" }, now), 10_000);
    assert.equal(retryAfterMs({ "retry-after": "Wed, 21 Oct 2015 07:30:00 GMT" }, now), 120_000);
    assert.equal(retryAfterMs({ "retry-after": "Wed, 21 Oct 2015 07:27:00 GMT" }, now), 0, "a date in the past: no wait");
  });

  test("retry-after-ms wins over retry-after", () => {
    assert.equal(retryAfterMs({ "retry-after-ms": "250", "retry-after": "10" }), 250);
    assert.equal(retryAfterMs({ "retry-after-ms": "12.3" }), 13, "rounded up");
  });

  test("an unusable retry-after-ms falls back to retry-after", () => {
    assert.equal(retryAfterMs({ "retry-after-ms": "soon", "retry-after": "2" }), 2000);
  });

  test("a list value: the first", () => {
    assert.equal(retryAfterMs({ "retry-after": ["4", "9"] }), 4000);
  });

  test("absent or garbage → undefined", () => {
    const now = Date.parse("Wed, 21 Oct 2015 07:28:00 GMT");
    assert.equal(retryAfterMs({}, now), undefined);
    assert.equal(retryAfterMs({ "retry-after": undefined }, now), undefined);
    for (const value of ["", "   ", "soon", "1e3", "0x10", "Infinity", "tomorrow"]) {
      assert.equal(retryAfterMs({ "retry-after": value }, now), undefined, JSON.stringify(value));
    }
    for (const value of ["soon", "-1", ""]) {
      assert.equal(retryAfterMs({ "retry-after-ms": value }, now), undefined, `retry-after-ms ${JSON.stringify(value)}`);
    }
  });

  test("garbage that V8's lenient Date.parse accepts is still garbage, not a wait of 0", () => {
    // Date.parse("-5"), Date.parse("abc 12") and Date.parse("later 3") are dates in 2001 in V8.
    const now = Date.parse("Wed, 21 Oct 2015 07:28:00 GMT");
    for (const value of ["-5", "abc 12", "later 3", "x 1"]) {
      assert.equal(retryAfterMs({ "retry-after": value }, now), undefined, JSON.stringify(value));
    }
  });
});

describe("policy: backoffMs", () => {
  const policy = DEFAULT_RETRY_POLICY;

  test("defaults: base 250, max 2000", () => {
    assert.equal(policy.backoffBaseMs, 250);
    assert.equal(policy.backoffMaxMs, 2000);
  });

  test("bounds for n = 1..5: half to all of base·2^(n-1), capped", () => {
    const expected: [number, number][] = [
      [125, 250],
      [250, 500],
      [500, 1000],
      [1000, 2000],
      [1000, 2000],
    ];
    expected.forEach(([low, high], index) => {
      const n = index + 1;
      assert.equal(backoffMs(policy, n, () => 0), low, `n=${n} random 0`);
      assert.equal(backoffMs(policy, n, () => 1), high, `n=${n} random 1`);
      const mid = backoffMs(policy, n, () => 0.5);
      assert.ok(mid > low && mid < high, `n=${n} random 0.5 → ${mid}`);
    });
  });

  test("follows the policy's base and cap", () => {
    const custom: RetryPolicy = { ...policy, backoffBaseMs: 100, backoffMaxMs: 300 };
    assert.equal(backoffMs(custom, 1, () => 1), 100);
    assert.equal(backoffMs(custom, 2, () => 1), 200);
    assert.equal(backoffMs(custom, 3, () => 1), 300);
    assert.equal(backoffMs(custom, 3, () => 0), 150);
    assert.equal(backoffMs(custom, 10, () => 0), 150);
  });

  test("with Math.random, always inside the bounds", () => {
    for (let i = 0; i < 200; i++) {
      const delay = backoffMs(policy, 2);
      assert.ok(delay >= 250 && delay <= 500, String(delay));
    }
  });
});

describe("policy: decide", () => {
  const rule = (name: string) => DEFAULT_RULES.find((r) => r.name === name) as Rule;
  const T0 = 1_000_000;
  const base: DecisionContext = {
    rule: rule("server-error"),
    status: 503,
    retryAfterMs: undefined,
    interchangeable: false,
    healthyAlternative: true,
    attemptTimes: [T0],
    now: T0 + 100,
    remainingMs: 600_000,
    policy: DEFAULT_RETRY_POLICY,
    random: () => 0.5,
  };
  const ctx = (over: Partial<DecisionContext>): DecisionContext => ({ ...base, ...over });

  test("no rule or a final rule → deliver", () => {
    assert.deepEqual(decide(ctx({ rule: undefined, status: 404 })), { next: "deliver" });
    assert.deepEqual(decide(ctx({ rule: rule("content-policy"), status: 400 })), { next: "deliver" });
    assert.deepEqual(decide(ctx({ rule: rule("content-policy"), status: 429 })), { next: "deliver" });
  });

  test("a failover rule → failover at once; cooldown only for a 429", () => {
    assert.deepEqual(decide(ctx({ rule: rule("context-length"), status: 400 })), { next: "failover", cooldown: false });
    assert.deepEqual(decide(ctx({ rule: rule("timeout"), status: null })), { next: "failover", cooldown: false });
    assert.deepEqual(decide(ctx({ rule: rule("unreachable"), status: null })), { next: "failover", cooldown: false });
    assert.deepEqual(decide(ctx({ rule: rule("retry-status"), status: 412 })), { next: "failover", cooldown: false });
    const configured: Rule = { name: "configured-failover", action: "failover", codes: ["model_overloaded"] };
    assert.deepEqual(decide(ctx({ rule: configured, status: 429 })), { next: "failover", cooldown: true });
    assert.deepEqual(decide(ctx({ rule: rule("timeout"), status: null, attemptTimes: [T0] })), { next: "failover", cooldown: false }, "even with budget left");
  });

  test("a transient 5xx is retried after a backoff within bounds while the budget lasts, then fails over", () => {
    for (const random of [0, 0.3, 1]) {
      const decision = decide(ctx({ random: () => random }));
      assert.equal(decision.next, "retry");
      assert.ok(decision.next === "retry" && decision.delayMs >= 125 && decision.delayMs <= 250, JSON.stringify(decision));
    }
    // The second attempt failed too: the default budget (1 retry) is spent.
    assert.deepEqual(decide(ctx({ attemptTimes: [T0, T0 + 2000], now: T0 + 2100 })), { next: "failover", cooldown: false });
  });

  test("a larger budget: the backoff grows with the retry number", () => {
    const policy: RetryPolicy = { ...DEFAULT_RETRY_POLICY, retries: 3 };
    const second = decide(ctx({ policy, attemptTimes: [T0, T0 + 2000], now: T0 + 2100, random: () => 1 }));
    assert.deepEqual(second, { next: "retry", delayMs: 500 });
    const third = decide(ctx({ policy, attemptTimes: [T0, T0 + 2000, T0 + 4000], now: T0 + 4100, random: () => 0 }));
    assert.deepEqual(third, { next: "retry", delayMs: 500 });
    assert.equal(decide(ctx({ policy, attemptTimes: [T0, T0 + 2000, T0 + 4000, T0 + 6000], now: T0 + 6100 })).next, "failover");
  });

  test("retries: 0 → a transient failure fails over at once", () => {
    const policy: RetryPolicy = { ...DEFAULT_RETRY_POLICY, retries: 0 };
    assert.deepEqual(decide(ctx({ policy })), { next: "failover", cooldown: false });
  });

  test("a reset before headers is retried like a 5xx", () => {
    const decision = decide(ctx({ rule: rule("connection-reset"), status: null }));
    assert.equal(decision.next, "retry");
  });

  test("429, interchangeable, with a healthy alternative → failover at once with cooldown", () => {
    const rateLimited = ctx({ rule: rule("rate-limited"), status: 429, interchangeable: true, healthyAlternative: true });
    assert.deepEqual(decide(rateLimited), { next: "failover", cooldown: true });
    assert.deepEqual(decide({ ...rateLimited, retryAfterMs: 100 }), { next: "failover", cooldown: true }, "even with a short Retry-After");
  });

  test("429, interchangeable, no healthy alternative → the pinned rules apply", () => {
    const decision = decide(ctx({ rule: rule("rate-limited"), status: 429, interchangeable: true, healthyAlternative: false, retryAfterMs: 1000 }));
    assert.equal(decision.next, "retry");
    assert.ok(decision.next === "retry" && decision.delayMs >= 1000);
  });

  test("429 pinned, Retry-After ≤ cap → retry after at least what it asks", () => {
    for (const wait of [0, 300, 3000, 5000]) {
      for (const random of [0, 1]) {
        const decision = decide(ctx({ rule: rule("rate-limited"), status: 429, retryAfterMs: wait, random: () => random }));
        assert.equal(decision.next, "retry", `Retry-After ${wait}`);
        assert.ok(decision.next === "retry" && decision.delayMs >= wait, JSON.stringify(decision));
        assert.ok(decision.next === "retry" && decision.delayMs <= Math.max(wait, 250), JSON.stringify(decision));
      }
    }
  });

  test("429 pinned, Retry-After above the cap → failover with cooldown", () => {
    assert.deepEqual(decide(ctx({ rule: rule("rate-limited"), status: 429, retryAfterMs: 5001 })), { next: "failover", cooldown: true });
    assert.deepEqual(decide(ctx({ rule: rule("rate-limited"), status: 429, retryAfterMs: 60_000 })), { next: "failover", cooldown: true });
    const policy: RetryPolicy = { ...DEFAULT_RETRY_POLICY, retryAfterCapMs: 10_000 };
    assert.equal(decide(ctx({ rule: rule("rate-limited"), status: 429, retryAfterMs: 8000, policy })).next, "retry", "the cap is the policy's");
  });

  test("429 pinned without Retry-After → retry with a backoff within the budget, then failover with cooldown", () => {
    const first = decide(ctx({ rule: rule("rate-limited"), status: 429, random: () => 1 }));
    assert.deepEqual(first, { next: "retry", delayMs: 250 });
    const spent = decide(ctx({ rule: rule("rate-limited"), status: 429, attemptTimes: [T0, T0 + 2000], now: T0 + 2100 }));
    assert.deepEqual(spent, { next: "failover", cooldown: true });
  });

  test("never more than 2 attempts inside minSpacingMs", () => {
    const policy: RetryPolicy = { ...DEFAULT_RETRY_POLICY, retries: 3 };
    const t0 = T0;
    const t1 = T0 + 200;
    const now = T0 + 400;
    for (const random of [0, 1]) {
      const decision = decide(ctx({ policy, attemptTimes: [t0, t1], now, random: () => random }));
      assert.equal(decision.next, "retry");
      assert.ok(decision.next === "retry" && decision.delayMs >= t0 + 1500 - now, JSON.stringify(decision));
      assert.ok(decision.next === "retry" && now + decision.delayMs >= t0 + policy.minSpacingMs);
    }
    // A short Retry-After does not shorten the spacing either.
    const rateLimited = decide(ctx({ policy, rule: rule("rate-limited"), status: 429, retryAfterMs: 100, attemptTimes: [t0, t1], now }));
    assert.ok(rateLimited.next === "retry" && now + rateLimited.delayMs >= t0 + 1500, JSON.stringify(rateLimited));
    // With the first two attempts far apart, the spacing does not add a wait.
    const spaced = decide(ctx({ policy, attemptTimes: [T0, T0 + 5000], now: T0 + 5100, random: () => 1 }));
    assert.deepEqual(spaced, { next: "retry", delayMs: 500 });
  });

  test("a delay that would pass the deadline → failover", () => {
    assert.deepEqual(decide(ctx({ remainingMs: 100, random: () => 0 })), { next: "failover", cooldown: false }, "backoff ≥ 125 > 100 left");
    assert.equal(decide(ctx({ remainingMs: 10_000 })).next, "retry");
    const rateLimited = decide(ctx({ rule: rule("rate-limited"), status: 429, retryAfterMs: 3000, remainingMs: 2000 }));
    assert.deepEqual(rateLimited, { next: "failover", cooldown: true });
    const policy: RetryPolicy = { ...DEFAULT_RETRY_POLICY, retries: 3 };
    const spacing = decide(ctx({ policy, attemptTimes: [T0, T0 + 200], now: T0 + 400, remainingMs: 1000 }));
    assert.equal(spacing.next, "failover", "the 1100 ms spacing wait does not fit in 1000 ms");
  });
});
