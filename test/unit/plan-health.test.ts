import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { buildConfig } from "../../src/config/load.js";
import type { GatewayConfig } from "../../src/config/types.js";
import { DEFAULT_HEALTH_POLICY, type HealthPolicy } from "../../src/routing/health.js";
import { planCandidates, type Plan } from "../../src/routing/plan.js";
import { MemoryStore } from "../../src/routing/store.js";

const ROUTES = `
routes:
  - name: ra
    url: https://a.example/v1
    model: a
  - name: rb
    url: https://b.example/v1
    models: [b, c]
  - name: rd
    url: https://d.example/v1
    model: d
  - name: off
    url: https://off.example/v1
    model: x
    enabled: false
`;

const WITH_GROUPS = `${ROUTES}
groups:
  fast: [b, c, d]
  steady:
    models: [c, a]
    strategy: ordered
fallbacks:
  a: [b, fast]
`;

function config(yaml: string, env: Record<string, string> = {}): GatewayConfig {
  const result = buildConfig(yaml, env, { routesFile: "routes.yml" });
  assert.deepEqual(result.problems, []);
  assert.ok(result.config);
  return result.config;
}

function models(plan: Plan): (string | null)[] {
  assert.ok(plan.ok, `expected a plan, got ${JSON.stringify(plan)}`);
  return plan.candidates.map((c) => c.model);
}

function routeOf(cfg: GatewayConfig, model: string): string {
  const route = cfg.modelRoutes.get(model);
  assert.ok(route, `no route for ${model}`);
  return route.name;
}

/** Opens `model`'s breaker at `now` (consecutive failures); it is blocked for the base cooldown. */
function trip(cfg: GatewayConfig, store: MemoryStore, model: string, now: number, p: HealthPolicy = DEFAULT_HEALTH_POLICY): void {
  const health = store.health(routeOf(cfg, model), model);
  for (let i = 0; i < p.consecutiveFailures; i++) health.recordFailure(now);
  assert.equal(health.view(now).state, "open");
}

/** Puts `model` in a rate-limit cooldown of `ms` from `now`. */
function cool(cfg: GatewayConfig, store: MemoryStore, model: string, now: number, ms: number): void {
  store.health(routeOf(cfg, model), model).recordFailure(now, { rateLimited: true, retryAfterMs: ms });
}

const plan = (cfg: GatewayConfig, store: MemoryStore, model: string | null, now = 1000, list?: string[]) => planCandidates(cfg, store, model, list, now);

describe("plan + health: blocked models are left out", () => {
  test("auto leaves out a model with an open breaker and one cooling down", () => {
    const cfg = config(ROUTES);
    const store = new MemoryStore();
    trip(cfg, store, "b", 0);
    cool(cfg, store, "d", 0, 10_000);
    for (let i = 0; i < 4; i++) {
      const got = models(plan(cfg, store, "auto"));
      assert.deepEqual([...got].sort(), ["a", "c"], JSON.stringify(got));
    }
  });

  test("a group leaves out blocked members", () => {
    const cfg = config(WITH_GROUPS);
    const store = new MemoryStore();
    cool(cfg, store, "c", 0, 10_000);
    for (let i = 0; i < 3; i++) assert.deepEqual([...models(plan(cfg, store, "fast"))].sort(), ["b", "d"]);
  });

  test("a pinned model's fallback chain leaves out blocked models", () => {
    const cfg = config(WITH_GROUPS);
    const store = new MemoryStore();
    assert.deepEqual(models(plan(cfg, store, "a")), ["a", "b", "c", "d"], "a, then b, then the group fast (b deduplicated)");
    cool(cfg, store, "c", 0, 10_000);
    assert.deepEqual(models(plan(cfg, store, "a")), ["a", "b", "d"]);
    trip(cfg, store, "a", 0);
    assert.deepEqual(models(plan(cfg, store, "a")), ["b", "d"], "the pinned model itself is skipped while blocked");
  });

  test("blocked models come back once their cooldown is over", () => {
    const cfg = config(WITH_GROUPS);
    const store = new MemoryStore();
    cool(cfg, store, "c", 0, 10_000);
    assert.deepEqual(models(plan(cfg, store, "a", 9_999)), ["a", "b", "d"]);
    assert.deepEqual(models(plan(cfg, store, "a", 10_000)), ["a", "b", "c", "d"]);
  });

  test("health is per model: a blocked model does not block its route's other models", () => {
    const cfg = config(ROUTES);
    const store = new MemoryStore();
    trip(cfg, store, "b", 0);
    assert.deepEqual(models(plan(cfg, store, "c")), ["c"]);
    assert.ok(models(plan(cfg, store, "auto")).includes("c"));
  });
});

describe("plan + health: every candidate blocked", () => {
  function allBlocked() {
    const cfg = config(WITH_GROUPS);
    const store = new MemoryStore();
    cool(cfg, store, "a", 0, 20_000); // until 20 000
    cool(cfg, store, "b", 0, 8_000); // until 8 000
    trip(cfg, store, "c", 0); // open until 5 000
    cool(cfg, store, "d", 0, 30_000); // until 30 000
    return { cfg, store };
  }

  test("auto keeps only the model that recovers first", () => {
    const { cfg, store } = allBlocked();
    for (let i = 0; i < 4; i++) assert.deepEqual(models(plan(cfg, store, "auto")), ["c"]);
  });

  test("a group keeps only the member that recovers first", () => {
    const { cfg, store } = allBlocked();
    assert.deepEqual(models(plan(cfg, store, "fast")), ["c"]);
    assert.deepEqual(models(plan(cfg, store, "steady")), ["c"]);
  });

  test("a pinned chain keeps only the model that recovers first", () => {
    const { cfg, store } = allBlocked();
    assert.deepEqual(models(plan(cfg, store, "a")), ["c"]);
  });

  test("a pinned model without fallbacks stays, blocked or not", () => {
    const { cfg, store } = allBlocked();
    assert.deepEqual(models(plan(cfg, store, "d")), ["d"]);
  });

  test("the soonest is judged at plan time", () => {
    const cfg = config(ROUTES);
    const store = new MemoryStore();
    cool(cfg, store, "a", 0, 3000);
    cool(cfg, store, "b", 0, 9000);
    cool(cfg, store, "c", 1000, 4000); // until 5 000
    cool(cfg, store, "d", 0, 7000);
    assert.deepEqual(models(plan(cfg, store, "auto", 2000)), ["a"]);
    assert.deepEqual(models(plan(cfg, store, "auto", 3000)), ["a"], "a is free again");
    assert.deepEqual([...models(plan(cfg, store, "auto", 5000))].sort(), ["a", "c"]);
  });
});

describe("plan + health: half-open models", () => {
  test("a model ready for its probe goes first in auto", () => {
    const cfg = config(ROUTES);
    const store = new MemoryStore();
    trip(cfg, store, "d", 0);
    assert.ok(!models(plan(cfg, store, "auto", 1000)).includes("d"));
    const got = models(plan(cfg, store, "auto", 6000));
    assert.equal(got[0], "d", JSON.stringify(got));
    assert.deepEqual([...got].sort(), ["a", "b", "c", "d"]);
  });

  test("a member ready for its probe goes first in a group, whatever the strategy", () => {
    const cfg = config(WITH_GROUPS);
    const store = new MemoryStore();
    trip(cfg, store, "a", 0);
    assert.deepEqual(models(plan(cfg, store, "steady", 1000)), ["c"]);
    assert.deepEqual(models(plan(cfg, store, "steady", 6000)), ["a", "c"]);
    trip(cfg, store, "d", 0);
    for (let i = 0; i < 3; i++) assert.equal(models(plan(cfg, store, "fast", 6000))[0], "d");
  });

  test("a probe in flight blocks the model for other plans", () => {
    const cfg = config(WITH_GROUPS);
    const store = new MemoryStore();
    trip(cfg, store, "d", 0);
    store.health("rd", "d").begin(6000);
    assert.deepEqual([...models(plan(cfg, store, "fast", 6001))].sort(), ["b", "c"]);
  });

  test("a pinned chain keeps its order with a probe-ready model", () => {
    const cfg = config(WITH_GROUPS);
    const store = new MemoryStore();
    trip(cfg, store, "c", 0);
    assert.deepEqual(models(plan(cfg, store, "a", 6000)), ["a", "b", "c", "d"]);
  });
});

describe("plan: strategies", () => {
  test("round-robin rotates a group per call", () => {
    const cfg = config(WITH_GROUPS);
    const store = new MemoryStore();
    const seen = [0, 1, 2, 3].map(() => models(plan(cfg, store, "fast")));
    assert.deepEqual(seen, [
      ["b", "c", "d"],
      ["c", "d", "b"],
      ["d", "b", "c"],
      ["b", "c", "d"],
    ]);
  });

  test("a group's cursor is independent of auto's", () => {
    const cfg = config(WITH_GROUPS);
    const store = new MemoryStore();
    assert.deepEqual(models(plan(cfg, store, "auto")), ["a", "b", "c", "d"]);
    assert.deepEqual(models(plan(cfg, store, "auto")), ["b", "c", "d", "a"]);
    assert.deepEqual(models(plan(cfg, store, "fast")), ["b", "c", "d"], "the group starts at its own beginning");
    assert.deepEqual(models(plan(cfg, store, "auto")), ["c", "d", "a", "b"], "auto did not move for the group");
    assert.deepEqual(models(plan(cfg, store, "fast")), ["c", "d", "b"]);
  });

  test("ordered keeps file order on every call", () => {
    const cfg = config(WITH_GROUPS);
    const store = new MemoryStore();
    for (let i = 0; i < 3; i++) assert.deepEqual(models(plan(cfg, store, "steady")), ["c", "a"]);
    const auto = config(`${ROUTES}\nauto:\n  strategy: ordered\n`);
    for (let i = 0; i < 3; i++) assert.deepEqual(models(plan(auto, store, "auto")), ["a", "b", "c", "d"]);
  });

  test("health orders by success rate in 10% steps, then by p50 latency", () => {
    const cfg = config(`${ROUTES}\nauto:\n  strategy: health\n`);
    // A window large enough for the outcomes below, and no breaker trips.
    const store = new MemoryStore({ ...DEFAULT_HEALTH_POLICY, windowSize: 100, minRequests: 1000, consecutiveFailures: 1000 });
    const record = (model: string, oks: number, fails: number, latency: number) => {
      const health = store.health(routeOf(cfg, model), model);
      for (let i = 0; i < oks; i++) health.recordSuccess(500, latency);
      for (let i = 0; i < fails; i++) health.recordFailure(500);
    };
    record("a", 8, 2, 10); // 80%: fastest, but a step lower
    record("b", 39, 1, 50); // 97.5%: rounds to the top step, fast
    record("c", 20, 0, 200); // 100%, slower
    // d: no data, counts as healthy with unknown latency
    for (let i = 0; i < 4; i++) assert.deepEqual(models(plan(cfg, store, "auto")), ["b", "c", "d", "a"], `call ${i}`);
  });

  test("health with equal scores keeps round-robin among them", () => {
    const cfg = config(`${ROUTES}\nauto:\n  strategy: health\n`);
    const store = new MemoryStore();
    const leads = new Set<string | null>();
    for (let i = 0; i < 4; i++) leads.add(models(plan(cfg, store, "auto"))[0] as string | null);
    assert.deepEqual([...leads].sort(), ["a", "b", "c", "d"]);
  });

  test("health strategy on a group", () => {
    const cfg = config(`${ROUTES}\ngroups:\n  g:\n    models: [a, b]\n    strategy: health\n`);
    const store = new MemoryStore();
    store.health("ra", "a").recordSuccess(500, 900);
    store.health("rb", "b").recordSuccess(500, 100);
    for (let i = 0; i < 3; i++) assert.deepEqual(models(plan(cfg, store, "g")), ["b", "a"]);
  });
});

describe("plan: groups and auto configuration", () => {
  test("a group is callable as a model: mode group, interchangeable, each member on its route", () => {
    const cfg = config(WITH_GROUPS);
    const p = plan(cfg, new MemoryStore(), "fast");
    assert.ok(p.ok);
    assert.equal(p.mode, "group");
    assert.equal(p.interchangeable, true);
    assert.deepEqual(
      p.candidates.map((c) => [c.model, c.route.name]),
      [
        ["b", "rb"],
        ["c", "rb"],
        ["d", "rd"],
      ],
    );
  });

  test("auto is interchangeable, a pinned model is not", () => {
    const cfg = config(WITH_GROUPS);
    const auto = plan(cfg, new MemoryStore(), "auto");
    assert.ok(auto.ok && auto.mode === "auto" && auto.interchangeable);
    const pinned = plan(cfg, new MemoryStore(), "a");
    assert.ok(pinned.ok && pinned.mode === "pinned" && !pinned.interchangeable);
  });

  test("auto: {models, strategy} restricts and orders auto", () => {
    const ordered = config(`${ROUTES}\nauto:\n  models: [d, b]\n  strategy: ordered\n`);
    const store = new MemoryStore();
    for (let i = 0; i < 3; i++) assert.deepEqual(models(plan(ordered, store, "auto")), ["d", "b"]);
    const rr = config(`${ROUTES}\nauto:\n  models: [d, b]\n`);
    assert.deepEqual(models(plan(rr, store, "auto")), ["d", "b"]);
    assert.deepEqual(models(plan(rr, store, "auto")), ["b", "d"]);
    assert.deepEqual(models(plan(rr, store, "auto")), ["d", "b"]);
  });

  test("models outside auto.models are still callable by name", () => {
    const cfg = config(`${ROUTES}\nauto:\n  models: [d, b]\n`);
    assert.deepEqual(models(plan(cfg, new MemoryStore(), "a")), ["a"]);
  });
});

describe("plan: fallback precedence", () => {
  const FIVE = `${ROUTES}
  - name: re
    url: https://e.example/v1
    model: e
`;
  const withRouteFallbacks = FIVE.replace("    model: a\n", "    model: a\n    fallbacks: [c]\n");
  const env = { MODEL_FALLBACK_MAP: '{"a": ["d"]}', GLOBAL_FALLBACK_MODELS: "e" };

  test("top-level fallbacks > route fallbacks > MODEL_FALLBACK_MAP > GLOBAL_FALLBACK_MODELS", () => {
    const store = new MemoryStore();
    assert.deepEqual(models(plan(config(`${withRouteFallbacks}fallbacks:\n  a: [b]\n`, env), store, "a")), ["a", "b"]);
    assert.deepEqual(models(plan(config(withRouteFallbacks, env), store, "a")), ["a", "c"]);
    assert.deepEqual(models(plan(config(FIVE, env), store, "a")), ["a", "d"]);
    assert.deepEqual(models(plan(config(FIVE, { GLOBAL_FALLBACK_MODELS: "e" }), store, "a")), ["a", "e"]);
  });

  test("a route's fallbacks serve every model of the route", () => {
    const cfg = config(FIVE.replace("    models: [b, c]\n", "    models: [b, c]\n    fallbacks: [a, e]\n"));
    const store = new MemoryStore();
    assert.deepEqual(models(plan(cfg, store, "b")), ["b", "a", "e"]);
    assert.deepEqual(models(plan(cfg, store, "c")), ["c", "a", "e"]);
    assert.deepEqual(models(plan(cfg, store, "a")), ["a"], "other routes' models are unaffected");
  });

  test("a top-level entry for one model does not change the others", () => {
    const cfg = config(`${FIVE}fallbacks:\n  a: [b]\n`, { GLOBAL_FALLBACK_MODELS: "e" });
    assert.deepEqual(models(plan(cfg, new MemoryStore(), "c")), ["c", "e"]);
  });

  test("a group name inside a chain expands to its models", () => {
    const groups = "groups:\n  pool: [d, e]\n";
    const store = new MemoryStore();
    assert.deepEqual(models(plan(config(`${FIVE}${groups}fallbacks:\n  a: [pool, b]\n`), store, "a")), ["a", "d", "e", "b"]);
    assert.deepEqual(models(plan(config(`${withRouteFallbacks.replace("fallbacks: [c]", "fallbacks: [pool]")}${groups}`), store, "a")), ["a", "d", "e"]);
    assert.deepEqual(models(plan(config(`${FIVE}${groups}`, { MODEL_FALLBACK_MAP: '{"a": ["pool"]}' }), store, "a")), ["a", "d", "e"]);
    assert.deepEqual(models(plan(config(`${FIVE}${groups}`, { GLOBAL_FALLBACK_MODELS: "pool,a" }), store, "b")), ["b", "d", "e", "a"]);
  });

  test("no model twice in a chain, the requested model included", () => {
    const cfg = config(`${FIVE}groups:\n  pool: [a, d, b]\nfallbacks:\n  a: [b, a, pool, d, b]\n`);
    assert.deepEqual(models(plan(cfg, new MemoryStore(), "a")), ["a", "b", "d"]);
  });

  test("unroutable chain entries are skipped", () => {
    const result = buildConfig(`${FIVE}fallbacks:\n  a: [ghost, x, c]\n`, {}, { routesFile: "routes.yml" });
    assert.ok(result.config);
    assert.deepEqual(models(plan(result.config, new MemoryStore(), "a")), ["a", "c"]);
    const routeLevel = config(withRouteFallbacks.replace("fallbacks: [c]", "fallbacks: [ghost, x, c, auto]"));
    assert.deepEqual(models(plan(routeLevel, new MemoryStore(), "a")), ["a", "c"]);
  });
});

describe("plan: per-request models", () => {
  test("with a pinned model: [model, ...models], replacing the configured chain", () => {
    const cfg = config(WITH_GROUPS);
    const p = plan(cfg, new MemoryStore(), "a", 1000, ["d", "c"]);
    assert.deepEqual(models(p), ["a", "d", "c"]);
    assert.ok(p.ok && p.mode === "pinned" && !p.interchangeable);
  });

  test('with "auto", a group or no model: the list itself', () => {
    const cfg = config(WITH_GROUPS);
    const store = new MemoryStore();
    assert.deepEqual(models(plan(cfg, store, "auto", 1000, ["d", "a"])), ["d", "a"]);
    assert.deepEqual(models(plan(cfg, store, "AUTO", 1000, ["c", "a"])), ["c", "a"]);
    assert.deepEqual(models(plan(cfg, store, "fast", 1000, ["a", "b"])), ["a", "b"]);
    assert.deepEqual(models(plan(cfg, store, null, 1000, ["b", "d"])), ["b", "d"]);
  });

  test("a list does not move the round-robin cursors", () => {
    const cfg = config(WITH_GROUPS);
    const store = new MemoryStore();
    plan(cfg, store, "auto", 1000, ["d", "a"]);
    plan(cfg, store, "fast", 1000, ["d", "a"]);
    assert.deepEqual(models(plan(cfg, store, "auto")), ["a", "b", "c", "d"]);
    assert.deepEqual(models(plan(cfg, store, "fast")), ["b", "c", "d"]);
  });

  test("an empty list is no list for auto and groups", () => {
    const cfg = config(WITH_GROUPS);
    assert.deepEqual(models(plan(cfg, new MemoryStore(), "fast", 1000, [])), ["b", "c", "d"]);
  });

  test("group names in the list expand", () => {
    const cfg = config(WITH_GROUPS);
    assert.deepEqual(models(plan(cfg, new MemoryStore(), "a", 1000, ["steady"])), ["a", "c"]);
    assert.deepEqual(models(plan(cfg, new MemoryStore(), "auto", 1000, ["d", "fast"])), ["d", "b", "c"]);
  });

  test("no model twice; unroutable entries skipped", () => {
    const cfg = config(WITH_GROUPS);
    assert.deepEqual(models(plan(cfg, new MemoryStore(), "a", 1000, ["a", "b", "ghost", "x", "b", "auto", "c"])), ["a", "b", "c"]);
    assert.deepEqual(models(plan(cfg, new MemoryStore(), "auto", 1000, ["ghost", "c", "c", "b"])), ["c", "b"]);
  });

  test("a list with no routable entry is 404", () => {
    const cfg = config(WITH_GROUPS);
    const p = plan(cfg, new MemoryStore(), "auto", 1000, ["ghost", "x"]);
    assert.ok(!p.ok);
    assert.equal(p.status, 404);
    assert.match(p.message, /ghost/);
  });

  test("blocked entries of the list are left out", () => {
    const cfg = config(WITH_GROUPS);
    const store = new MemoryStore();
    cool(cfg, store, "d", 0, 10_000);
    assert.deepEqual(models(plan(cfg, store, "a", 1000, ["d", "c"])), ["a", "c"]);
    assert.deepEqual(models(plan(cfg, store, "auto", 1000, ["d", "c"])), ["c"]);
  });
});
