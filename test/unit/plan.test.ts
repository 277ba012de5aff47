import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { buildConfig } from "../../src/config/load.js";
import type { GatewayConfig } from "../../src/config/types.js";
import { planCandidates, rotate, type Plan } from "../../src/routing/plan.js";
import { MemoryStore } from "../../src/routing/store.js";

const THREE_ROUTES = `
routes:
  - name: ra
    url: https://a.example/v1
    model: a
  - name: rb
    url: https://b.example/v1
    models: [b, c]
  - name: off
    url: https://off.example/v1
    model: d
    enabled: false
`;

const WITH_WILDCARD = `${THREE_ROUTES}
  - name: star
    url: https://star.example/v1
    model: "*"
`;

function config(yaml: string, env: Record<string, string> = {}): GatewayConfig {
  const result = buildConfig(yaml, env, { routesFile: "routes.yml" });
  assert.deepEqual(result.problems, []);
  assert.ok(result.config);
  return result.config;
}

/** [model, route name] pairs of a successful plan. */
function pairs(plan: Plan): [string | null, string][] {
  assert.ok(plan.ok, `expected a plan, got ${JSON.stringify(plan)}`);
  return plan.candidates.map((c) => [c.model, c.route.name]);
}

function models(plan: Plan): (string | null)[] {
  return pairs(plan).map(([model]) => model);
}

describe("plan: auto", () => {
  test("candidates are every enabled route model, rotated round-robin across calls", () => {
    const cfg = config(THREE_ROUTES);
    const store = new MemoryStore();
    const first = planCandidates(cfg, store, "auto", undefined, 0);
    assert.ok(first.ok);
    assert.equal(first.mode, "auto");
    assert.deepEqual(pairs(first), [
      ["a", "ra"],
      ["b", "rb"],
      ["c", "rb"],
    ]);
    assert.deepEqual(models(planCandidates(cfg, store, "auto", undefined, 0)), ["b", "c", "a"]);
    assert.deepEqual(models(planCandidates(cfg, store, "auto", undefined, 0)), ["c", "a", "b"]);
    assert.deepEqual(models(planCandidates(cfg, store, "auto", undefined, 0)), ["a", "b", "c"]);
  });

  test("over many calls each model leads equally often", () => {
    const cfg = config(THREE_ROUTES);
    const store = new MemoryStore();
    const leads = new Map<string | null, number>();
    for (let i = 0; i < 30; i++) {
      const lead = models(planCandidates(cfg, store, "auto", undefined, 0))[0] as string | null;
      leads.set(lead, (leads.get(lead) ?? 0) + 1);
    }
    assert.deepEqual(Object.fromEntries(leads), { a: 10, b: 10, c: 10 });
  });

  test('"AUTO" is automatic mode too', () => {
    const plan = planCandidates(config(THREE_ROUTES), new MemoryStore(), "AUTO", undefined, 0);
    assert.ok(plan.ok);
    assert.equal(plan.mode, "auto");
  });

  test("the wildcard route is not an auto candidate", () => {
    const cfg = config(WITH_WILDCARD);
    const store = new MemoryStore();
    for (let i = 0; i < 4; i++) {
      const plan = planCandidates(cfg, store, "auto", undefined, 0);
      assert.ok(plan.ok);
      assert.equal(plan.candidates.length, 3);
      for (const c of plan.candidates) {
        assert.notEqual(c.model, "*");
        assert.notEqual(c.route.name, "star");
      }
    }
  });

  test("disabled route models are not auto candidates", () => {
    assert.ok(!models(planCandidates(config(THREE_ROUTES), new MemoryStore(), "auto", undefined, 0)).includes("d"));
  });

  test("auto with no route models is an error", () => {
    for (const yaml of ["routes: []", `routes:\n  - name: star\n    url: https://s.example/v1\n    model: "*"\n`]) {
      const plan = planCandidates(config(yaml), new MemoryStore(), "auto", undefined, 0);
      assert.equal(plan.ok, false);
      assert.ok(!plan.ok);
      assert.ok(plan.status >= 400 && plan.status < 600);
      assert.equal(plan.code, "no_candidates");
      assert.match(plan.message, /auto/);
    }
  });

  test("auto does not use fallback maps", () => {
    const cfg = config(THREE_ROUTES, { GLOBAL_FALLBACK_MODELS: "a", MODEL_FALLBACK_MAP: '{"auto": ["b"]}' });
    assert.deepEqual(models(planCandidates(cfg, new MemoryStore(), "auto", undefined, 0)), ["a", "b", "c"]);
  });

  test("round-robin state is per store", () => {
    const cfg = config(THREE_ROUTES);
    const s1 = new MemoryStore();
    planCandidates(cfg, s1, "auto", undefined, 0);
    assert.deepEqual(models(planCandidates(cfg, new MemoryStore(), "auto", undefined, 0)), ["a", "b", "c"]);
    assert.deepEqual(models(planCandidates(cfg, s1, "auto", undefined, 0)), ["b", "c", "a"]);
  });
});

describe("plan: pinned", () => {
  test("a pinned model without fallbacks has one candidate", () => {
    const plan = planCandidates(config(THREE_ROUTES), new MemoryStore(), "b", undefined, 0);
    assert.ok(plan.ok);
    assert.equal(plan.mode, "pinned");
    assert.deepEqual(pairs(plan), [["b", "rb"]]);
  });

  test("pinned requests do not move the auto cursor or rotate", () => {
    const cfg = config(THREE_ROUTES);
    const store = new MemoryStore();
    for (let i = 0; i < 3; i++) assert.deepEqual(models(planCandidates(cfg, store, "c", undefined, 0)), ["c"]);
    assert.deepEqual(models(planCandidates(cfg, store, "auto", undefined, 0)), ["a", "b", "c"]);
  });

  test("GLOBAL_FALLBACK_MODELS follow a pinned model", () => {
    const cfg = config(THREE_ROUTES, { GLOBAL_FALLBACK_MODELS: "c,a" });
    assert.deepEqual(pairs(planCandidates(cfg, new MemoryStore(), "b", undefined, 0)), [
      ["b", "rb"],
      ["c", "rb"],
      ["a", "ra"],
    ]);
  });

  test("MODEL_FALLBACK_MAP wins over GLOBAL_FALLBACK_MODELS for its model", () => {
    const cfg = config(THREE_ROUTES, { GLOBAL_FALLBACK_MODELS: "c", MODEL_FALLBACK_MAP: '{"a": ["b"]}' });
    assert.deepEqual(models(planCandidates(cfg, new MemoryStore(), "a", undefined, 0)), ["a", "b"]);
    assert.deepEqual(models(planCandidates(cfg, new MemoryStore(), "b", undefined, 0)), ["b", "c"], "other models use the global list");
  });

  test("an empty MODEL_FALLBACK_MAP entry means no fallback, even with a global list", () => {
    const cfg = config(THREE_ROUTES, { GLOBAL_FALLBACK_MODELS: "c", MODEL_FALLBACK_MAP: '{"a": []}' });
    assert.deepEqual(models(planCandidates(cfg, new MemoryStore(), "a", undefined, 0)), ["a"]);
  });

  test("fallback chains are deduplicated and never contain the requested model twice", () => {
    const cfg = config(THREE_ROUTES, { MODEL_FALLBACK_MAP: '{"a": ["a", "b", "b", "c", "a"]}' });
    assert.deepEqual(models(planCandidates(cfg, new MemoryStore(), "a", undefined, 0)), ["a", "b", "c"]);
  });

  test("unroutable fallbacks (unknown or disabled) are skipped", () => {
    const cfg = config(THREE_ROUTES, { GLOBAL_FALLBACK_MODELS: "ghost,d,c" });
    assert.deepEqual(models(planCandidates(cfg, new MemoryStore(), "a", undefined, 0)), ["a", "c"]);
  });

  test('"auto" never appears in a fallback chain', () => {
    const cfg = config(THREE_ROUTES, { GLOBAL_FALLBACK_MODELS: "auto,b", MODEL_FALLBACK_MAP: '{"c": ["AUTO", "a"]}' });
    assert.deepEqual(models(planCandidates(cfg, new MemoryStore(), "a", undefined, 0)), ["a", "b"]);
    assert.deepEqual(models(planCandidates(cfg, new MemoryStore(), "c", undefined, 0)), ["c", "a"]);
  });

  test("with a wildcard, unknown fallbacks go to the catch-all", () => {
    const cfg = config(WITH_WILDCARD, { GLOBAL_FALLBACK_MODELS: "ghost" });
    assert.deepEqual(pairs(planCandidates(cfg, new MemoryStore(), "a", undefined, 0)), [
      ["a", "ra"],
      ["ghost", "star"],
    ]);
  });

  test("an unrouted model with a wildcard goes to the catch-all, keeping its name", () => {
    const plan = planCandidates(config(WITH_WILDCARD), new MemoryStore(), "some-new-model", undefined, 0);
    assert.ok(plan.ok);
    assert.equal(plan.mode, "pinned");
    assert.deepEqual(pairs(plan), [["some-new-model", "star"]]);
  });

  test("a model of a disabled route with a wildcard goes to the catch-all", () => {
    assert.deepEqual(pairs(planCandidates(config(WITH_WILDCARD), new MemoryStore(), "d", undefined, 0)), [["d", "star"]]);
  });

  test("UPSTREAM_BASE_URL serves unrouted models", () => {
    const cfg = config(THREE_ROUTES, { UPSTREAM_BASE_URL: "https://up.example/v1" });
    assert.deepEqual(pairs(planCandidates(cfg, new MemoryStore(), "other", undefined, 0)), [["other", "UPSTREAM_BASE_URL"]]);
  });

  test("an unknown model without a wildcard is 404 model_not_found", () => {
    const plan = planCandidates(config(THREE_ROUTES), new MemoryStore(), "ghost", undefined, 0);
    assert.equal(plan.ok, false);
    assert.ok(!plan.ok);
    assert.equal(plan.status, 404);
    assert.equal(plan.code, "model_not_found");
    assert.match(plan.message, /ghost/);
  });

  test("a model of a disabled route without a wildcard is 404", () => {
    const plan = planCandidates(config(THREE_ROUTES), new MemoryStore(), "d", undefined, 0);
    assert.ok(!plan.ok);
    assert.equal(plan.status, 404);
  });

  test("an unknown model with fallbacks is still 404 (its fallbacks do not serve it)", () => {
    const cfg = config(THREE_ROUTES, { MODEL_FALLBACK_MAP: '{"ghost": ["a"]}' });
    const plan = planCandidates(cfg, new MemoryStore(), "ghost", undefined, 0);
    assert.ok(!plan.ok);
    assert.equal(plan.status, 404);
  });
});

describe("plan: no model", () => {
  test("no model + wildcard → passthrough to the catch-all with model null", () => {
    const plan = planCandidates(config(WITH_WILDCARD), new MemoryStore(), null, undefined, 0);
    assert.ok(plan.ok);
    assert.equal(plan.mode, "passthrough");
    assert.deepEqual(pairs(plan), [[null, "star"]]);
  });

  test("no model + UPSTREAM_BASE_URL → passthrough", () => {
    const plan = planCandidates(config(THREE_ROUTES, { UPSTREAM_BASE_URL: "https://up.example" }), new MemoryStore(), null, undefined, 0);
    assert.ok(plan.ok);
    assert.equal(plan.mode, "passthrough");
  });

  test("no model and no wildcard → 400 model_required", () => {
    const plan = planCandidates(config(THREE_ROUTES), new MemoryStore(), null, undefined, 0);
    assert.ok(!plan.ok);
    assert.equal(plan.status, 400);
    assert.equal(plan.code, "model_required");
  });
});

describe("plan: rotate and MemoryStore", () => {
  test("rotate", () => {
    assert.deepEqual(rotate(["a", "b", "c"], 0), ["a", "b", "c"]);
    assert.deepEqual(rotate(["a", "b", "c"], 1), ["b", "c", "a"]);
    assert.deepEqual(rotate(["a", "b", "c"], 5), ["c", "a", "b"]);
    assert.deepEqual(rotate([], 3), []);
    const input = ["x"];
    assert.notEqual(rotate(input, 0), input, "returns a copy");
  });

  test("MemoryStore cursors advance per key modulo size", () => {
    const store = new MemoryStore();
    assert.deepEqual([0, 1, 2, 3].map(() => store.nextCursor("k", 3)), [0, 1, 2, 0]);
    assert.equal(store.nextCursor("other", 3), 0);
    assert.equal(store.nextCursor("k", 2), 1, "shrinking the size keeps the cursor in range");
    assert.equal(store.nextCursor("k", 0), 0);
  });
});
