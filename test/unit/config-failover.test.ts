import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { buildConfig } from "../../src/config/load.js";
import type { GatewayConfig, Route } from "../../src/config/types.js";
import { DEFAULT_HEALTH_POLICY } from "../../src/routing/health.js";

const FILE = "/etc/gw/routes.yml";

const ROUTES = `
routes:
  - name: ra
    url: https://a.example/v1
    model: a
  - name: rb
    url: https://b.example/v1
    models: [b, c]
  - name: off
    url: https://off.example/v1
    model: x
    enabled: false
`;

function build(yaml: string, env: Record<string, string> = {}) {
  return buildConfig(yaml, env, { routesFile: FILE });
}

function ok(yaml: string, env: Record<string, string> = {}): { config: GatewayConfig; warnings: string[] } {
  const result = build(yaml, env);
  assert.deepEqual(result.problems, [], "expected no problems");
  assert.ok(result.config, "expected a config");
  return { config: result.config, warnings: result.warnings };
}

function problems(yaml: string, env: Record<string, string> = {}): string[] {
  const result = build(yaml, env);
  assert.equal(result.config, undefined, "an invalid file must not produce a config");
  assert.ok(result.problems.length > 0, "expected at least one problem");
  return result.problems;
}

function one(list: string[], pattern: RegExp): string {
  const hits = list.filter((p) => pattern.test(p));
  assert.equal(hits.length, 1, `expected exactly one message matching ${pattern}, got:\n${list.join("\n")}`);
  return hits[0] as string;
}

function route(config: GatewayConfig, model: string): Route {
  const found = config.modelRoutes.get(model);
  assert.ok(found, `no route for ${model}`);
  return found;
}

const esc = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
const F = esc(FILE);

describe("config: groups", () => {
  test("a group as a list: round-robin by default", () => {
    const { config } = ok(`${ROUTES}groups:\n  fast: [b, a]\n`);
    assert.deepEqual(config.groups.get("fast"), { models: ["b", "a"], strategy: "round-robin" });
  });

  test("a group as {models, strategy}", () => {
    const { config } = ok(`${ROUTES}groups:\n  steady:\n    models: [c, a]\n    strategy: ordered\n  best:\n    models: [a, b]\n    strategy: health\n  plain:\n    models: [a]\n`);
    assert.deepEqual(config.groups.get("steady"), { models: ["c", "a"], strategy: "ordered" });
    assert.deepEqual(config.groups.get("best"), { models: ["a", "b"], strategy: "health" });
    assert.deepEqual(config.groups.get("plain"), { models: ["a"], strategy: "round-robin" });
  });

  test("no groups: an empty map", () => {
    assert.equal(ok(ROUTES).config.groups.size, 0);
  });

  test("a group named like a model is a problem naming the file and the group", () => {
    const list = problems(`${ROUTES}groups:\n  b: [a, c]\n`);
    const message = one(list, /groups/);
    assert.match(message, new RegExp(`^${F}`));
    assert.match(message, /"b"/);
    assert.match(message, /model/);
  });

  test('a group named "auto" (any case) is a problem', () => {
    for (const name of ["auto", "Auto"]) {
      const message = one(problems(`${ROUTES}groups:\n  ${name}: [a, c]\n`), /groups/);
      assert.match(message, new RegExp(`^${F}`));
      assert.match(message, new RegExp(`"${name}"`));
    }
  });

  test("unknown and disabled group members are warned about and left out", () => {
    const { config, warnings } = ok(`${ROUTES}groups:\n  fast: [a, ghost, x, b]\n`);
    assert.deepEqual(config.groups.get("fast")?.models, ["a", "b"]);
    const ghost = one(warnings, /ghost/);
    assert.match(ghost, new RegExp(`^${F}`));
    assert.match(ghost, /groups\.fast/);
    assert.match(one(warnings, /"x"/), /groups\.fast/);
  });

  test("a group with no routable member is warned about", () => {
    const { config, warnings } = ok(`${ROUTES}groups:\n  empty: [ghost]\n`);
    assert.deepEqual(config.groups.get("empty")?.models, []);
    assert.ok(warnings.some((w) => /groups\.empty/.test(w) && /no member/.test(w)), warnings.join("\n"));
  });

  test("bad group values are problems naming the group", () => {
    for (const value of ["[]", "fast", "\n    models: [a]\n    strategy: random", "\n    strategy: ordered"]) {
      const list = problems(`${ROUTES}groups:\n  g: ${value}\n`);
      assert.ok(list.some((p) => p.startsWith(FILE) && /groups\.g/.test(p)), `${value}:\n${list.join("\n")}`);
    }
  });
});

describe("config: auto", () => {
  test("auto.models restricts auto, in the file's order; strategy defaults to round-robin", () => {
    const { config } = ok(`${ROUTES}auto:\n  models: [c, a]\n`);
    assert.deepEqual(config.autoModels, ["c", "a"]);
    assert.equal(config.autoStrategy, "round-robin");
    assert.equal(ok(`${ROUTES}auto:\n  strategy: health\n`).config.autoStrategy, "health");
    assert.deepEqual(ok(ROUTES).config.autoModels, ["a", "b", "c"]);
  });

  test("unknown auto.models are warned about and skipped", () => {
    const { config, warnings } = ok(`${ROUTES}auto:\n  models: [ghost, b]\n`);
    assert.deepEqual(config.autoModels, ["b"]);
    assert.match(one(warnings, /ghost/), /auto\.models/);
  });

  test("a bad strategy is a problem naming the field", () => {
    const message = one(problems(`${ROUTES}auto:\n  strategy: random\n`), /auto/);
    assert.match(message, /field "auto\.strategy"/);
    assert.match(message, /round-robin/);
  });
});

describe("config: fallbacks", () => {
  test("top-level fallbacks are read per model", () => {
    const { config, warnings } = ok(`${ROUTES}fallbacks:\n  a: [b, c]\n  c: [a]\n`);
    assert.deepEqual(config.fallbacks.get("a"), ["b", "c"]);
    assert.deepEqual(config.fallbacks.get("c"), ["a"]);
    assert.deepEqual(warnings, []);
  });

  test("route fallbacks are read", () => {
    const { config } = ok(ROUTES.replace("    model: a\n", "    model: a\n    fallbacks: [b]\n"));
    assert.deepEqual(route(config, "a").fallbacks, ["b"]);
    assert.deepEqual(route(config, "b").fallbacks, []);
  });

  test("a group name in a chain is kept without a warning", () => {
    const { config, warnings } = ok(`${ROUTES}groups:\n  pool: [b, c]\nfallbacks:\n  a: [pool]\n`);
    assert.deepEqual(config.fallbacks.get("a"), ["pool"]);
    assert.deepEqual(warnings, []);
  });

  test("unknown fallback entries are warned about and skipped", () => {
    const { config, warnings } = ok(`${ROUTES}fallbacks:\n  a: [ghost, b, x]\n`);
    assert.deepEqual(config.fallbacks.get("a"), ["b"]);
    const ghost = one(warnings, /"ghost"/);
    assert.match(ghost, new RegExp(`^${F}`));
    assert.match(ghost, /fallbacks\.a/);
    assert.match(one(warnings, /"x"/), /fallbacks\.a/);
  });

  test("a chain for an unknown model is warned about", () => {
    const { warnings } = ok(`${ROUTES}fallbacks:\n  ghost: [a]\n`);
    assert.match(one(warnings, /ghost/), /fallbacks/);
  });

  test("an unknown entry in a route's fallbacks is warned about, naming the route", () => {
    const { warnings } = ok(ROUTES.replace("    model: a\n", "    model: a\n    fallbacks: [ghost, b]\n"));
    const message = one(warnings, /ghost/);
    assert.match(message, new RegExp(`^${F}`));
    assert.match(message, /ra/);
    assert.match(message, /fallbacks/);
  });

  test("a group name in GLOBAL_FALLBACK_MODELS or MODEL_FALLBACK_MAP is not reported as unroutable", () => {
    const yaml = `${ROUTES}groups:\n  pool: [b, c]\n`;
    assert.deepEqual(ok(yaml, { GLOBAL_FALLBACK_MODELS: "pool" }).warnings, []);
    assert.deepEqual(ok(yaml, { MODEL_FALLBACK_MAP: '{"a": ["pool"]}' }).warnings, []);
    assert.equal(one(ok(yaml, { GLOBAL_FALLBACK_MODELS: "ghost" }).warnings, /ghost/).startsWith("environment"), true);
  });

  test("a bad chain is a problem naming the field", () => {
    const message = one(problems(`${ROUTES}fallbacks:\n  a: b\n`), /fallbacks/);
    assert.match(message, /field "fallbacks\.a"/);
    const routeLevel = one(problems(ROUTES.replace("    model: a\n", "    model: a\n    fallbacks: b\n")), /fallbacks/);
    assert.match(routeLevel, /route "ra" \(routes\[0\]\) field "fallbacks"/);
  });
});

describe("config: retry", () => {
  test("defaults", () => {
    assert.deepEqual(ok(ROUTES).config.retry, { retries: 1, backoffBaseMs: 250, backoffMaxMs: 2000, retryAfterCapMs: 5000, minSpacingMs: 1500 });
  });

  test("values are read", () => {
    const { config } = ok(`${ROUTES}retry:\n  retries: 3\n  backoffMs: 100\n  maxBackoffMs: 800\n  retryAfterCapMs: 0\n`);
    assert.deepEqual(config.retry, { retries: 3, backoffBaseMs: 100, backoffMaxMs: 800, retryAfterCapMs: 0, minSpacingMs: 1500 });
  });

  test("retries: 0 is allowed", () => {
    assert.equal(ok(`${ROUTES}retry:\n  retries: 0\n`).config.retry.retries, 0);
  });

  test("bad values are problems naming the field", () => {
    const cases: [string, string][] = [
      ["retries: -1", "retry.retries"],
      ["retries: 1.5", "retry.retries"],
      ['retries: "2"', "retry.retries"],
      ["retries: 99", "retry.retries"],
      ["backoffMs: -5", "retry.backoffMs"],
      ["backoffMs: fast", "retry.backoffMs"],
      ["maxBackoffMs: 0", "retry.maxBackoffMs"],
      ["retryAfterCapMs: -1", "retry.retryAfterCapMs"],
      ["retryAfterCapMs: soon", "retry.retryAfterCapMs"],
      ["passthroughCodes: insufficient_quota", "retry.passthroughCodes"],
      ["failoverCodes: 5", "retry.failoverCodes"],
    ];
    for (const [line, field] of cases) {
      const list = problems(`${ROUTES}retry:\n  ${line}\n`);
      const message = one(list, new RegExp(esc(field)));
      assert.match(message, new RegExp(`^${F}: field "${esc(field)}`), line);
    }
  });
});

describe("config: timeouts", () => {
  test("defaults", () => {
    const { config } = ok(ROUTES);
    assert.deepEqual(config.timeouts, { connectMs: 10_000, headersMs: 60_000, firstTokenMs: 10_000, idleMs: 30_000 });
    assert.equal(config.deadlineMs, 600_000);
    assert.deepEqual(route(config, "a").timeouts, config.timeouts);
  });

  test("headersMs from REQUEST_TIMEOUT_MS, connectMs from CONNECT_TIMEOUT_MS", () => {
    const { config } = ok(ROUTES, { REQUEST_TIMEOUT_MS: "15000", CONNECT_TIMEOUT_MS: "2000" });
    assert.equal(config.timeouts.headersMs, 15_000);
    assert.equal(config.timeouts.connectMs, 2000);
    assert.equal(route(config, "b").timeouts.headersMs, 15_000);
  });

  test("routes.yml timeouts win over the environment", () => {
    const yaml = `${ROUTES}timeouts:\n  headersMs: 7000\n  connectMs: 3000\n  firstTokenMs: 4000\n  idleMs: 9000\n  deadlineMs: 120000\n`;
    const { config } = ok(yaml, { REQUEST_TIMEOUT_MS: "15000", CONNECT_TIMEOUT_MS: "2000" });
    assert.deepEqual(config.timeouts, { connectMs: 3000, headersMs: 7000, firstTokenMs: 4000, idleMs: 9000 });
    assert.equal(config.deadlineMs, 120_000);
  });

  test("route timeouts override the global ones field by field", () => {
    const yaml = `${ROUTES.replace("    model: a\n", "    model: a\n    timeouts:\n      firstTokenMs: 2000\n      connectMs: 500\n")}timeouts:\n  idleMs: 9000\n`;
    const { config } = ok(yaml, { REQUEST_TIMEOUT_MS: "15000" });
    assert.deepEqual(route(config, "a").timeouts, { connectMs: 500, headersMs: 15_000, firstTokenMs: 2000, idleMs: 9000 });
    assert.deepEqual(route(config, "b").timeouts, { connectMs: 10_000, headersMs: 15_000, firstTokenMs: 10_000, idleMs: 9000 });
  });

  test("bad values are problems naming the field", () => {
    const cases: [string, string][] = [
      ["timeouts:\n  firstTokenMs: -1\n", 'field "timeouts.firstTokenMs"'],
      ["timeouts:\n  idleMs: 0\n", 'field "timeouts.idleMs"'],
      ['timeouts:\n  headersMs: "5000"\n', 'field "timeouts.headersMs"'],
      ["timeouts:\n  connectMs: 1.5\n", 'field "timeouts.connectMs"'],
      ["timeouts:\n  deadlineMs: forever\n", 'field "timeouts.deadlineMs"'],
      ["timeouts: 5000\n", 'field "timeouts"'],
    ];
    for (const [yaml, field] of cases) {
      const message = one(problems(`${ROUTES}${yaml}`), /timeouts/);
      assert.match(message, new RegExp(`^${F}: ${esc(field)}`), yaml);
    }
  });

  test("bad route timeouts are problems naming the route and the field", () => {
    const yaml = ROUTES.replace("    model: a\n", "    model: a\n    timeouts:\n      idleMs: -3\n      firstTokenMs: soon\n");
    const list = problems(yaml);
    assert.match(one(list, /idleMs/), /route "ra" \(routes\[0\]\) field "timeouts\.idleMs"/);
    assert.match(one(list, /firstTokenMs/), /route "ra" \(routes\[0\]\) field "timeouts\.firstTokenMs"/);
  });
});

describe("config: breaker", () => {
  test("defaults are the health defaults", () => {
    assert.deepEqual(ok(ROUTES).config.breaker, DEFAULT_HEALTH_POLICY);
  });

  test("values are read; cooldownMs is the base cooldown", () => {
    const yaml = `${ROUTES}breaker:\n  consecutiveFailures: 5\n  failureRate: 0.25\n  minRequests: 8\n  windowSize: 50\n  windowMs: 30000\n  cooldownMs: 1000\n  maxCooldownMs: 8000\n  rateLimitCooldownMs: 2000\n`;
    assert.deepEqual(ok(yaml).config.breaker, {
      ...DEFAULT_HEALTH_POLICY,
      consecutiveFailures: 5,
      failureRate: 0.25,
      minRequests: 8,
      windowSize: 50,
      windowMs: 30_000,
      baseCooldownMs: 1000,
      maxCooldownMs: 8000,
      rateLimitCooldownMs: 2000,
    });
  });

  test("a partial breaker keeps the other defaults", () => {
    assert.deepEqual(ok(`${ROUTES}breaker:\n  consecutiveFailures: 2\n`).config.breaker, { ...DEFAULT_HEALTH_POLICY, consecutiveFailures: 2 });
  });

  test("bad values are problems naming the field", () => {
    const cases: [string, string][] = [
      ["consecutiveFailures: 0", "breaker.consecutiveFailures"],
      ["consecutiveFailures: three", "breaker.consecutiveFailures"],
      ["failureRate: 1.5", "breaker.failureRate"],
      ["failureRate: 0", "breaker.failureRate"],
      ["minRequests: -2", "breaker.minRequests"],
      ["windowSize: 0", "breaker.windowSize"],
      ["windowMs: -1", "breaker.windowMs"],
      ["cooldownMs: soon", "breaker.cooldownMs"],
      ["maxCooldownMs: 0", "breaker.maxCooldownMs"],
      ["rateLimitCooldownMs: -5", "breaker.rateLimitCooldownMs"],
    ];
    for (const [line, field] of cases) {
      const message = one(problems(`${ROUTES}breaker:\n  ${line}\n`), new RegExp(esc(field)));
      assert.match(message, new RegExp(`^${F}: field "${esc(field)}"`), line);
    }
  });
});

describe("config: unknown keys in the failover sections", () => {
  test("a misspelt or misplaced key inside retry, timeouts, breaker, auto, a group or a route's timeouts is warned about", () => {
    const cases: [string, string, RegExp][] = [
      ["retry", `${ROUTES}retry:\n  retires: 2\n`, /retires/],
      ["timeouts", `${ROUTES}timeouts:\n  firstTokenMS: 5000\n`, /firstTokenMS/],
      ["breaker", `${ROUTES}breaker:\n  cooldown: 5000\n`, /"cooldown"/],
      ["auto", `${ROUTES}auto:\n  stratgy: ordered\n`, /stratgy/],
      ["a group", `${ROUTES}groups:\n  g:\n    models: [a]\n    strategey: ordered\n`, /strategey/],
      ["a route's timeouts", ROUTES.replace("    model: a\n", "    model: a\n    timeouts:\n      deadlineMs: 5000\n"), /deadlineMs/],
    ];
    const silent: string[] = [];
    for (const [where, yaml, pattern] of cases) {
      const { warnings } = ok(yaml);
      const hits = warnings.filter((w) => pattern.test(w) && /unknown key/.test(w) && w.startsWith(FILE));
      if (hits.length !== 1) silent.push(where);
    }
    assert.deepEqual(silent, [], "unknown keys ignored without a warning in these sections");
  });
});
