import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { buildConfig, ConfigError, loadConfig } from "../../src/config/load.js";
import type { GatewayConfig, Route } from "../../src/config/types.js";

const FILE = "/etc/gw/routes.yml";

function build(yaml: string, env: Record<string, string> = {}) {
  return buildConfig(yaml, env, { routesFile: FILE });
}

/** The config of a file that must be valid; fails with its problems otherwise. */
function ok(yaml: string, env: Record<string, string> = {}): GatewayConfig {
  const result = build(yaml, env);
  assert.deepEqual(result.problems, [], "expected no problems");
  assert.ok(result.config, "expected a config");
  return result.config;
}

/** The problems of a file that must be invalid. */
function problems(yaml: string, env: Record<string, string> = {}): string[] {
  const result = build(yaml, env);
  assert.equal(result.config, undefined, "an invalid file must not produce a config");
  assert.ok(result.problems.length > 0, "expected at least one problem");
  return result.problems;
}

function route(config: GatewayConfig, model: string): Route {
  const found = config.modelRoutes.get(model);
  assert.ok(found, `no route for ${model}`);
  return found;
}

function one(list: string[], pattern: RegExp): string {
  const hits = list.filter((p) => pattern.test(p));
  assert.equal(hits.length, 1, `expected exactly one message matching ${pattern}, got:\n${list.join("\n")}`);
  return hits[0] as string;
}

describe("config: routes.yml keys and aliases", () => {
  test("routes[] with model as a string", () => {
    const config = ok(`
routes:
  - name: a
    url: https://a.example/v1/chat/completions
    model: gpt-a
`);
    assert.equal(config.routes.length, 1);
    const r = route(config, "gpt-a");
    assert.equal(r.name, "a");
    assert.deepEqual(r.models, ["gpt-a"]);
    assert.equal(r.url, "https://a.example/v1/chat/completions");
    assert.equal(r.origin, "https://a.example");
    assert.equal(r.basePath, "/v1/chat/completions");
    assert.equal(r.isBaseUrl, false);
    assert.equal(r.enabled, true);
    assert.deepEqual(config.autoModels, ["gpt-a"]);
  });

  test("model as a list, models as a string and as a list", () => {
    const config = ok(`
routes:
  - name: a
    url: https://a.example/v1
    model: [m1, m2]
  - name: b
    url: https://b.example/v1
    models: m3
  - name: c
    url: https://c.example/v1
    models:
      - m4
      - m5
`);
    assert.deepEqual(route(config, "m1").models, ["m1", "m2"]);
    assert.equal(route(config, "m2").name, "a");
    assert.deepEqual(route(config, "m3").models, ["m3"]);
    assert.equal(route(config, "m3").name, "b");
    assert.deepEqual(route(config, "m5").models, ["m4", "m5"]);
    assert.deepEqual(config.autoModels, ["m1", "m2", "m3", "m4", "m5"]);
  });

  test("a top-level array is the routes list", () => {
    const config = ok(`
- name: a
  url: https://a.example/v1
  model: m1
- url: https://b.example/v1
  models: [m2]
`);
    assert.deepEqual(config.autoModels, ["m1", "m2"]);
    assert.equal(route(config, "m2").name, "routes[1]", "an unnamed route is called routes[i]");
  });

  for (const alias of ["defaults", "global", "auth"]) {
    test(`"${alias}" block is inherited by routes`, () => {
      const config = ok(
        `
${alias}:
  authHeader: X-Api-Key
  authPrefix: ""
  apiKey: shared-key
  headers:
    X-Team: research
  isBaseUrl: true
routes:
  - name: a
    url: https://a.example/v1
    model: m1
`,
      );
      const r = route(config, "m1");
      assert.equal(r.authHeader, "x-api-key");
      assert.equal(r.authPrefix, "");
      assert.equal(r.apiKey, "shared-key");
      assert.deepEqual(r.headers, { "x-team": "research" });
      assert.equal(r.isBaseUrl, true);
    });
  }

  test("authHeader and authPrefix default to authorization and 'Bearer '; authHeader is lower-cased", () => {
    const config = ok(`
routes:
  - name: plain
    url: https://a.example/v1
    model: m1
  - name: cf
    url: https://b.example/v1
    model: m2
    authHeader: CF-AIG-Authorization
    authPrefix: "Token "
`);
    assert.equal(route(config, "m1").authHeader, "authorization");
    assert.equal(route(config, "m1").authPrefix, "Bearer ");
    assert.equal(route(config, "m2").authHeader, "cf-aig-authorization");
    assert.equal(route(config, "m2").authPrefix, "Token ");
  });

  test("a route's authHeader/authPrefix/isBaseUrl win over defaults", () => {
    const config = ok(`
defaults:
  authHeader: x-api-key
  authPrefix: ""
  isBaseUrl: true
routes:
  - name: a
    url: https://a.example/v1/chat/completions
    model: m1
    authHeader: Authorization
    authPrefix: "Bearer "
    isBaseUrl: false
`);
    const r = route(config, "m1");
    assert.equal(r.authHeader, "authorization");
    assert.equal(r.authPrefix, "Bearer ");
    assert.equal(r.isBaseUrl, false);
  });

  test("apiKey inline on a route", () => {
    const config = ok(`
routes:
  - name: a
    url: https://a.example/v1
    model: m1
    apiKey: sk-inline
  - name: b
    url: https://b.example/v1
    model: m2
`);
    assert.equal(route(config, "m1").apiKey, "sk-inline");
    assert.equal(route(config, "m2").apiKey, "", "a route with no key has an empty apiKey");
  });

  test("apiKeyEnv reads the key from the environment", () => {
    const config = ok(
      `
routes:
  - name: a
    url: https://a.example/v1
    model: m1
    apiKeyEnv: A_KEY
`,
      { A_KEY: "sk-from-env" },
    );
    assert.equal(route(config, "m1").apiKey, "sk-from-env");
  });

  test("apiKeyEnv naming an unset variable: warning, empty key, not an error", () => {
    const result = build(`
routes:
  - name: a
    url: https://a.example/v1
    model: m1
    apiKeyEnv: MISSING_KEY
`);
    assert.deepEqual(result.problems, []);
    assert.equal(result.config?.modelRoutes.get("m1")?.apiKey, "");
    const warning = one(result.warnings, /MISSING_KEY/);
    assert.match(warning, /route "a"/);
    assert.match(warning, /apiKeyEnv/);
    assert.ok(warning.includes(FILE));
  });

  test("defaults apiKeyEnv is inherited", () => {
    const config = ok(
      `
defaults:
  apiKeyEnv: SHARED
routes:
  - name: a
    url: https://a.example/v1
    model: m1
`,
      { SHARED: "sk-shared" },
    );
    assert.equal(route(config, "m1").apiKey, "sk-shared");
  });

  test("a route's apiKey wins over defaults apiKey and apiKeyEnv", () => {
    const config = ok(
      `
defaults:
  apiKey: sk-default
  apiKeyEnv: SHARED
routes:
  - name: a
    url: https://a.example/v1
    model: m1
    apiKey: sk-route
`,
      { SHARED: "sk-shared" },
    );
    assert.equal(route(config, "m1").apiKey, "sk-route");
  });

  test("a route's apiKeyEnv wins over defaults apiKey and apiKeyEnv", () => {
    const config = ok(
      `
defaults:
  apiKey: sk-default
routes:
  - name: a
    url: https://a.example/v1
    model: m1
    apiKeyEnv: ROUTE_KEY
  - name: b
    url: https://b.example/v1
    model: m2
`,
      { ROUTE_KEY: "sk-route-env" },
    );
    assert.equal(route(config, "m1").apiKey, "sk-route-env");
    assert.equal(route(config, "m2").apiKey, "sk-default");

    const config2 = ok(
      `
defaults:
  apiKeyEnv: SHARED
routes:
  - name: a
    url: https://a.example/v1
    model: m1
    apiKeyEnv: ROUTE_KEY
`,
      { SHARED: "sk-shared", ROUTE_KEY: "sk-route-env" },
    );
    assert.equal(route(config2, "m1").apiKey, "sk-route-env");
  });

  test("a route's apiKey wins over its own apiKeyEnv", () => {
    const config = ok(
      `
routes:
  - name: a
    url: https://a.example/v1
    model: m1
    apiKey: sk-inline
    apiKeyEnv: ROUTE_KEY
`,
      { ROUTE_KEY: "sk-env" },
    );
    assert.equal(route(config, "m1").apiKey, "sk-inline");
  });

  test("headers: defaults and route merged, names lower-cased, route wins, values stringified", () => {
    const config = ok(`
defaults:
  headers:
    X-Team: research
    X-Shared: "1"
routes:
  - name: a
    url: https://a.example/v1
    model: m1
    headers:
      x-team: override
      X-Route-Only: 42
      X-Flag: true
  - name: b
    url: https://b.example/v1
    model: m2
`);
    assert.deepEqual(route(config, "m1").headers, { "x-team": "override", "x-shared": "1", "x-route-only": "42", "x-flag": "true" });
    assert.deepEqual(route(config, "m2").headers, { "x-team": "research", "x-shared": "1" });
  });

  test("isBaseUrl is read per route", () => {
    const config = ok(`
routes:
  - name: a
    url: https://a.example/v1
    model: m1
    isBaseUrl: true
  - name: b
    url: https://b.example/v1/chat/completions
    model: m2
`);
    assert.equal(route(config, "m1").isBaseUrl, true);
    assert.equal(route(config, "m2").isBaseUrl, false);
  });

  test("enabled: false routes are excluded from routing and auto", () => {
    const config = ok(`
routes:
  - name: on
    url: https://a.example/v1
    model: m1
  - name: off
    url: https://b.example/v1
    model: m2
    enabled: false
`);
    assert.deepEqual(config.routes.map((r) => r.name), ["on"]);
    assert.equal(config.modelRoutes.has("m2"), false);
    assert.deepEqual(config.autoModels, ["m1"]);
  });

  test("defaults.enabled: false disables routes that do not enable themselves", () => {
    const config = ok(`
defaults:
  enabled: false
routes:
  - name: a
    url: https://a.example/v1
    model: m1
  - name: b
    url: https://b.example/v1
    model: m2
    enabled: true
`);
    assert.deepEqual(config.routes.map((r) => r.name), ["b"]);
    assert.deepEqual(config.autoModels, ["m2"]);
  });

  test("wildcard route '*' is the catch-all and not an auto candidate", () => {
    const config = ok(`
routes:
  - name: a
    url: https://a.example/v1
    model: m1
  - name: any
    url: https://any.example/v1
    isBaseUrl: true
    model: "*"
`);
    assert.equal(config.wildcard?.name, "any");
    assert.equal(config.modelRoutes.get("*")?.name, "any");
    assert.deepEqual(config.autoModels, ["m1"]);
  });

  test("a disabled '*' route is no catch-all", () => {
    const config = ok(`
routes:
  - name: a
    url: https://a.example/v1
    model: m1
  - name: any
    url: https://any.example/v1
    model: "*"
    enabled: false
`);
    assert.equal(config.wildcard, undefined);
  });

  test("notice defaults to comment + json, and is read from the file", () => {
    assert.deepEqual(ok("routes: []").notice, { sse: "comment", json: true });
    assert.deepEqual(ok("notice:\n  sse: event\n  json: false\nroutes: []").notice, { sse: "event", json: false });
    assert.deepEqual(ok("notice:\n  sse: off\nroutes: []").notice, { sse: "off", json: true });
  });

  test("an empty routes list is valid but warns", () => {
    const result = build("routes: []\n");
    assert.deepEqual(result.problems, []);
    assert.ok(result.config);
    assert.deepEqual(result.config.routes, []);
    assert.ok(result.warnings.some((w) => /no enabled routes/.test(w)));
  });
});

describe("config: retry status codes", () => {
  const yaml = "routes:\n  - name: a\n    url: https://a.example/v1\n    model: m1\n";

  test("default is 412, 429, 500, 502, 503, 504", () => {
    assert.deepEqual([...ok(yaml).retryStatusCodes].sort(), [412, 429, 500, 502, 503, 504]);
  });

  test("RETRY_STATUS_CODES env wins over the default", () => {
    assert.deepEqual([...ok(yaml, { RETRY_STATUS_CODES: "429, 503,,418" }).retryStatusCodes].sort(), [418, 429, 503]);
  });

  test("routes.yml retryStatusCodes wins over RETRY_STATUS_CODES", () => {
    const config = ok(`retryStatusCodes: [429, "503"]\n${yaml}`, { RETRY_STATUS_CODES: "500,502" });
    assert.deepEqual([...config.retryStatusCodes].sort(), [429, 503]);
  });

  test("a bad RETRY_STATUS_CODES value is an error naming the variable", () => {
    const p = problems(yaml, { RETRY_STATUS_CODES: "429,abc" });
    const message = one(p, /RETRY_STATUS_CODES/);
    assert.match(message, /environment/);
    assert.match(message, /status code/);
  });

  test("retryStatusCodes: [abc] and out-of-range codes are errors with field and line", () => {
    const p = problems(`routes: []\nretryStatusCodes: [429, abc, 700]\n`);
    assert.equal(p.length, 2, p.join("\n"));
    for (const message of p) {
      assert.ok(message.startsWith(FILE), message);
      assert.match(message, /field "retryStatusCodes\.\d"/);
      assert.match(message, /\(line 2\)/);
    }
    assert.match(p.join("\n"), /retryStatusCodes\.1/);
    assert.match(p.join("\n"), /retryStatusCodes\.2/);
  });

  test("retryStatusCodes that is not a list is an error", () => {
    const message = one(problems(`routes: []\nretryStatusCodes: 429\n`), /retryStatusCodes/);
    assert.match(message, /list/);
    assert.match(message, /\(line 2\)/);
  });
});

describe("config: environment", () => {
  const yaml = "routes:\n  - name: a\n    url: https://a.example/v1\n    model: m1\n";

  test("defaults: HOST 127.0.0.1, PORT 8787, REQUEST_TIMEOUT_MS 60000, MAX_BODY_BYTES 50 MiB", () => {
    const config = ok(yaml);
    assert.equal(config.host, "127.0.0.1");
    assert.equal(config.port, 8787);
    assert.equal(config.timeouts.headersMs, 60_000);
    assert.equal(config.maxBodyBytes, 50 * 1024 * 1024);
    assert.deepEqual(config.globalFallbackModels, []);
    assert.deepEqual(config.modelFallbackMap, {});
    assert.equal(config.wildcard, undefined);
  });

  test("HOST, PORT, REQUEST_TIMEOUT_MS, MAX_BODY_BYTES are read", () => {
    const config = ok(yaml, { HOST: "0.0.0.0", PORT: "9000", REQUEST_TIMEOUT_MS: "1500", MAX_BODY_BYTES: "2048" });
    assert.equal(config.host, "0.0.0.0");
    assert.equal(config.port, 9000);
    assert.equal(config.timeouts.headersMs, 1500);
    assert.equal(config.maxBodyBytes, 2048);
  });

  test("overrides (command-line flags) win over the environment", () => {
    const result = buildConfig(yaml, { HOST: "0.0.0.0", PORT: "9000" }, { routesFile: FILE, overrides: { host: "::1", port: 7000 } });
    assert.equal(result.config?.host, "::1");
    assert.equal(result.config?.port, 7000);
  });

  for (const bad of ["abc", "70000", "-1", "80.5"]) {
    test(`PORT=${bad} is an error naming PORT and the value`, () => {
      const message = one(problems(yaml, { PORT: bad }), /PORT/);
      assert.match(message, /^environment: /);
      assert.ok(message.includes(JSON.stringify(bad)), message);
      assert.match(message, /port/i);
    });
  }

  test("GLOBAL_FALLBACK_MODELS is a comma-separated list", () => {
    const config = ok(yaml, { GLOBAL_FALLBACK_MODELS: " m1, b ,, c " });
    assert.deepEqual(config.globalFallbackModels, ["m1", "b", "c"]);
  });

  test("MODEL_FALLBACK_MAP is parsed as JSON", () => {
    const config = ok(yaml, { MODEL_FALLBACK_MAP: '{"m1": ["x", "y"], "z": []}' });
    assert.deepEqual(config.modelFallbackMap, { m1: ["x", "y"], z: [] });
  });

  for (const bad of ["not json", '["m1"]', '{"m1": "x"}', '{"m1": [1]}', "null"]) {
    test(`MODEL_FALLBACK_MAP=${bad} is an error naming the variable`, () => {
      const message = one(problems(yaml, { MODEL_FALLBACK_MAP: bad }), /MODEL_FALLBACK_MAP/);
      assert.match(message, /^environment: /);
      assert.match(message, /JSON/);
    });
  }

  test("fallback models without a route produce a warning", () => {
    const result = build(yaml, { GLOBAL_FALLBACK_MODELS: "m1,ghost" });
    assert.deepEqual(result.problems, []);
    one(result.warnings, /"ghost"/);
    assert.equal(result.warnings.filter((w) => /"m1"/.test(w)).length, 0);
  });

  test("UPSTREAM_BASE_URL is the catch-all only when set", () => {
    assert.equal(ok(yaml).wildcard, undefined);
    const config = ok(yaml, { UPSTREAM_BASE_URL: "https://up.example/v1", UPSTREAM_API_KEY: "sk-up" });
    const w = config.wildcard;
    assert.ok(w);
    assert.equal(w.origin, "https://up.example");
    assert.equal(w.basePath, "/v1");
    assert.equal(w.isBaseUrl, true);
    assert.equal(w.apiKey, "sk-up");
    assert.equal(w.authHeader, "authorization");
    assert.equal(w.authPrefix, "Bearer ");
    assert.deepEqual(config.autoModels, ["m1"], "the catch-all is not an auto candidate");
    assert.equal(config.modelRoutes.get("m1")?.name, "a", "named routes still win");
  });

  test("a '*' route in routes.yml wins over UPSTREAM_BASE_URL", () => {
    const config = ok(`${yaml}  - name: star\n    url: https://star.example/v1\n    model: "*"\n`, { UPSTREAM_BASE_URL: "https://up.example/v1" });
    assert.equal(config.wildcard?.name, "star");
  });

  test("a bad UPSTREAM_BASE_URL is an error", () => {
    one(problems(yaml, { UPSTREAM_BASE_URL: "ftp://x" }), /UPSTREAM_BASE_URL/);
  });

  test("environment problems and file problems are reported together", () => {
    const p = problems("routes:\n  - name: a\n    url: nope\n    model: m1\n", { PORT: "abc" });
    one(p, /PORT/);
    one(p, /field "url"/);
  });
});

describe("config: errors name the file, the route, the field and the line", () => {
  test('enabled: "yes" is a type error', () => {
    const p = problems(`routes:
  - name: alpha
    url: https://a.example/v1
    model: m1
    enabled: "yes"
`);
    const message = one(p, /enabled/);
    assert.ok(message.startsWith(`${FILE}: `), message);
    assert.match(message, /route "alpha" \(routes\[0\]\)/);
    assert.match(message, /field "enabled"/);
    assert.match(message, /true or false/);
    assert.match(message, /\(line 5\)/);
  });

  test("an unnamed route is named routes[i]", () => {
    const p = problems(`routes:
  - url: https://a.example/v1
    model: m1
  - url: https://b.example/v1
    model: m2
    isBaseUrl: 1
`);
    const message = one(p, /isBaseUrl/);
    assert.match(message, /routes\[1\]/);
    assert.match(message, /field "isBaseUrl"/);
    assert.match(message, /\(line 6\)/);
  });

  test("an empty url is one error (not also 'must be an absolute URL')", () => {
    const message = one(
      problems(`routes:
  - name: a
    url: ""
    model: m1
`),
      /url/,
    );
    assert.match(message, /must be a non-empty URL/);
    assert.ok(message.startsWith(FILE));
    assert.match(message, /route "a"/);
    assert.match(message, /field "url"/);
    assert.match(message, /\(line 3\)/);
  });

  test("a non-http url is an error", () => {
    for (const url of ["ftp://a.example/v1", "a.example/v1", "/v1/chat/completions"]) {
      const message = one(
        problems(`routes:
  - name: a
    url: ${url}
    model: m1
`),
        /url/,
      );
      assert.match(message, /route "a"/);
      assert.match(message, /field "url"/);
      assert.match(message, /http/);
      assert.match(message, /\(line 3\)/);
    }
  });

  test("a missing url is an error", () => {
    const message = one(problems(`routes:\n  - name: a\n    model: m1\n`), /url/);
    assert.match(message, /route "a"/);
    assert.match(message, /field "url"/);
    assert.match(message, /required/);
    assert.match(message, /\(line 2\)/);
  });

  test("a missing model is an error", () => {
    const message = one(problems(`routes:\n  - name: a\n    url: https://a.example/v1\n`), /model/);
    assert.ok(message.startsWith(FILE));
    assert.match(message, /route "a" \(routes\[0\]\)/);
    assert.match(message, /field "model"/);
    assert.match(message, /required/);
    assert.match(message, /\(line 2\)/);
  });

  test("an empty model list or empty model name is an error", () => {
    one(problems(`routes:\n  - name: a\n    url: https://a.example/v1\n    models: []\n`), /field "models"/);
    one(problems(`routes:\n  - name: a\n    url: https://a.example/v1\n    model: "  "\n`), /field "model"/);
  });

  test("a route with url and model both missing: both reported", () => {
    const p = problems(`routes:\n  - name: a\n    isBaseUrl: true\n`);
    one(p, /field "url"/);
    one(p, /field "model"/);
  });

  test("a model in two enabled routes is an error naming both routes, the field and the line", () => {
    const p = problems(`routes:
  - name: first
    url: https://a.example/v1
    model: [m1, shared]
  - name: second
    url: https://b.example/v1
    model: shared
`);
    const message = one(p, /shared/);
    assert.ok(message.startsWith(FILE));
    assert.match(message, /route "second" \(routes\[1\]\)/);
    assert.match(message, /"first"/);
    assert.match(message, /field "model"/);
    assert.match(message, /\(line 7\)/);
  });

  test("the duplicate model line points at a `models:` key too", () => {
    const p = problems(`routes:
  - name: first
    url: https://a.example/v1
    models: [shared]
  - name: second
    url: https://b.example/v1
    models: [shared]
`);
    const message = one(p, /shared/);
    assert.match(message, /route "second"/);
    assert.match(message, /field "models"/, message);
    assert.match(message, /\(line 7\)/, message);
  });

  test("a model in an enabled and a disabled route is not an error", () => {
    const config = ok(`routes:
  - name: first
    url: https://a.example/v1
    model: shared
  - name: second
    url: https://b.example/v1
    model: shared
    enabled: false
`);
    assert.equal(config.modelRoutes.get("shared")?.name, "first");
    const config2 = ok(`routes:
  - name: first
    url: https://a.example/v1
    model: shared
    enabled: false
  - name: second
    url: https://b.example/v1
    model: shared
`);
    assert.equal(config2.modelRoutes.get("shared")?.name, "second");
  });

  test("a duplicate in the top-level array form has the right line", () => {
    const message = one(
      problems(`- name: first
  url: https://a.example/v1
  model: shared
- name: second
  url: https://b.example/v1
  model: shared
`),
      /shared/,
    );
    assert.match(message, /route "second" \(routes\[1\]\)/);
    assert.match(message, /\(line 6\)/);
  });

  test("wrong-type problems in the top-level array form have the right line", () => {
    const message = one(problems(`- name: first\n  url: https://a.example/v1\n  model: m1\n  enabled: "no"\n`), /enabled/);
    assert.match(message, /route "first" \(routes\[0\]\)/);
    assert.match(message, /\(line 4\)/);
  });

  test('the model "auto" is reserved', () => {
    const message = one(problems(`routes:\n  - name: a\n    url: https://a.example/v1\n    model: auto\n`), /auto/);
    assert.match(message, /route "a"/);
    assert.match(message, /field "model"/);
  });

  test("two bad routes give two messages, all at once", () => {
    const p = problems(`routes:
  - name: one
    url: ftp://a.example
    model: m1
  - name: two
    url: https://b.example/v1
    model: m2
    enabled: "yes"
`);
    assert.equal(p.length, 2, p.join("\n"));
    one(p, /route "one".*field "url".*\(line 3\)/);
    one(p, /route "two".*field "enabled".*\(line 8\)/);
  });

  test("bad YAML names the file and the line", () => {
    const p = problems(`routes:
  - name: a
    url: [unclosed
    model: m1
`);
    assert.ok(p.length >= 1);
    const first = p[0] as string;
    assert.ok(first.startsWith(FILE), first);
    assert.match(first, /YAML/);
    assert.match(first, /(\(line [345]\)|:[345]:\d+)/, first);
  });

  test("bad YAML: the line number is the offending line", () => {
    const p = problems(`routes:\n  - name: a\n    url: https://a.example/v1\n    model: m1\n   bad: indentation\n`);
    const first = p[0] as string;
    assert.ok(first.startsWith(FILE));
    assert.match(first, /(\(line 5\)|:5:\d+)/, first);
  });

  test("a duplicate YAML key is an error with its line", () => {
    const p = problems(`routes:\n  - name: a\n    url: https://a.example/v1\n    model: m1\n    model: m2\n`);
    assert.match(p[0] as string, /(\(line 5\)|:5:\d+)/);
  });

  test("an empty file is an error", () => {
    const message = one(problems(""), /empty/);
    assert.ok(message.startsWith(FILE));
  });

  test("routes that is not a list, and a file that is a scalar, are errors", () => {
    const message = one(problems("routes: yes\n"), /routes/);
    assert.ok(message.startsWith(FILE));
    assert.match(message, /list/);
    assert.match(message, /\(line 1\)/);
    assert.ok(problems("just a string\n").every((m) => m.startsWith(FILE)));
  });

  test("a missing routes key is an error", () => {
    one(problems("defaults:\n  isBaseUrl: true\n"), /routes/);
  });

  test("a wrong-typed defaults field names the block and field", () => {
    const message = one(problems(`global:\n  isBaseUrl: "no"\nroutes: []\n`), /isBaseUrl/);
    assert.match(message, /field "global\.isBaseUrl"/);
    assert.match(message, /\(line 2\)/);
  });

  test('notice.sse must be "comment", "event" or "off"', () => {
    const message = one(problems(`notice:\n  sse: loud\nroutes: []\n`), /sse/);
    assert.match(message, /field "notice\.sse"/);
    assert.match(message, /\(line 2\)/);
  });
});

describe("config: unknown keys are warnings with their line", () => {
  test("unknown keys at the top level, in defaults, in notice and in a route", () => {
    const result = build(`defaults:
  isBaseUrl: true
  colour: red
notice:
  sse: comment
  volume: 11
retries: 3
routes:
  - name: a
    url: https://a.example/v1
    model: m1
    timeout: 5
  - url: https://b.example/v1
    model: m2
    modle: typo
`);
    assert.deepEqual(result.problems, []);
    assert.ok(result.config);
    const w = result.warnings;
    assert.match(one(w, /"colour"/), /defaults.*\(line 3\)/);
    assert.match(one(w, /"volume"/), /notice.*\(line 6\)/);
    assert.match(one(w, /"retries"/), /\(line 7\)/);
    assert.match(one(w, /"timeout"/), /route "a" \(routes\[0\]\).*\(line 12\)/);
    assert.match(one(w, /"modle"/), /routes\[1\].*\(line 15\)/);
    for (const warning of w.filter((x) => /unknown key/.test(x))) assert.ok(warning.startsWith(FILE), warning);
  });

  test("unknown keys in the top-level array form are warnings with their line", () => {
    const result = build(`- name: a\n  url: https://a.example/v1\n  model: m1\n  extra: 1\n`);
    assert.deepEqual(result.problems, []);
    assert.match(one(result.warnings, /"extra"/), /route "a".*\(line 4\)/);
  });

  test("a known-key-only file has no warnings", () => {
    const result = build(`routes:\n  - name: a\n    url: https://a.example/v1\n    model: m1\n`);
    assert.deepEqual(result.warnings, []);
  });
});

describe("config: loadConfig reads files", () => {
  function withDir(files: Record<string, string>, fn: (dir: string) => void): void {
    const dir = mkdtempSync(path.join(tmpdir(), "autoproxy-config-"));
    try {
      for (const [name, text] of Object.entries(files)) writeFileSync(path.join(dir, name), text);
      fn(dir);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }

  const routes = "routes:\n  - name: a\n    url: https://a.example/v1\n    model: m1\n    apiKeyEnv: A_KEY\n";

  test("reads routes.yml and .env from cwd", () => {
    withDir({ "routes.yml": routes, ".env": "PORT=9100\nA_KEY=sk-dotenv\n" }, (dir) => {
      const { config, warnings } = loadConfig({ cwd: dir, env: {} });
      assert.equal(config.port, 9100);
      assert.equal(config.modelRoutes.get("m1")?.apiKey, "sk-dotenv");
      assert.equal(config.source.routesFile, path.join(dir, "routes.yml"));
      assert.equal(config.source.envFile, path.join(dir, ".env"));
      assert.deepEqual(warnings, []);
    });
  });

  test("the process environment wins over .env", () => {
    withDir({ "routes.yml": routes, ".env": "PORT=9100\nA_KEY=sk-dotenv\nHOST=10.0.0.1\n" }, (dir) => {
      const { config } = loadConfig({ cwd: dir, env: { PORT: "9200", A_KEY: "sk-process" } });
      assert.equal(config.port, 9200);
      assert.equal(config.modelRoutes.get("m1")?.apiKey, "sk-process");
      assert.equal(config.host, "10.0.0.1");
    });
  });

  test("empty values are unset: an empty process variable does not hide .env, an empty .env value means default", () => {
    withDir({ "routes.yml": routes, ".env": "PORT=9100\nRETRY_STATUS_CODES=\nREQUEST_TIMEOUT_MS=\nA_KEY=\n" }, (dir) => {
      const { config } = loadConfig({ cwd: dir, env: { PORT: "", A_KEY: "  ", HOST: "" } });
      assert.equal(config.port, 9100);
      assert.equal(config.host, "127.0.0.1");
      assert.equal(config.timeouts.headersMs, 60_000);
      assert.deepEqual([...config.retryStatusCodes].sort(), [412, 429, 500, 502, 503, 504]);
      assert.equal(config.modelRoutes.get("m1")?.apiKey, "");
    });
  });

  test("empty UPSTREAM_BASE_URL does not create a catch-all", () => {
    withDir({ "routes.yml": routes, ".env": "UPSTREAM_BASE_URL=\n" }, (dir) => {
      assert.equal(loadConfig({ cwd: dir, env: { UPSTREAM_BASE_URL: "" } }).config.wildcard, undefined);
    });
  });

  test("no .env file is fine; envFile: false reads none", () => {
    withDir({ "routes.yml": routes }, (dir) => {
      const { config } = loadConfig({ cwd: dir, env: {} });
      assert.equal(config.source.envFile, undefined);
    });
    withDir({ "routes.yml": routes, ".env": "PORT=9100\n" }, (dir) => {
      assert.equal(loadConfig({ cwd: dir, env: {}, envFile: false }).config.port, 8787);
    });
  });

  test("an explicit missing .env is an error", () => {
    withDir({ "routes.yml": routes }, (dir) => {
      assert.throws(
        () => loadConfig({ cwd: dir, env: {}, envFile: "prod.env" }),
        (error: unknown) => error instanceof ConfigError && error.problems.some((p) => p.includes(path.join(dir, "prod.env")) && /not found/.test(p)),
      );
    });
  });

  test("a missing routes file is an error naming the path", () => {
    withDir({}, (dir) => {
      assert.throws(
        () => loadConfig({ cwd: dir, env: {} }),
        (error: unknown) => {
          assert.ok(error instanceof ConfigError);
          assert.equal(error.problems.length, 1);
          assert.ok(error.problems[0]?.startsWith(path.join(dir, "routes.yml")), error.problems[0]);
          assert.match(error.problems[0] as string, /not found/);
          assert.equal(error.message, error.problems.join("\n"));
          return true;
        },
      );
    });
  });

  test("ROUTES_FILE (from .env or the environment) and routesFile pick the file", () => {
    withDir({ "other.yml": routes.replace("m1", "from-other"), "third.yml": routes.replace("m1", "from-third"), ".env": "ROUTES_FILE=other.yml\n" }, (dir) => {
      assert.deepEqual(loadConfig({ cwd: dir, env: {} }).config.autoModels, ["from-other"]);
      assert.deepEqual(loadConfig({ cwd: dir, env: { ROUTES_FILE: "third.yml" } }).config.autoModels, ["from-third"]);
      assert.deepEqual(loadConfig({ cwd: dir, env: { ROUTES_FILE: "other.yml" }, routesFile: "third.yml" }).config.autoModels, ["from-third"]);
    });
  });

  test("problems in the file carry its absolute path", () => {
    withDir({ "routes.yml": "routes:\n  - name: a\n    url: ftp://x\n    model: m1\n" }, (dir) => {
      assert.throws(
        () => loadConfig({ cwd: dir, env: {} }),
        (error: unknown) =>
          error instanceof ConfigError &&
          error.problems.length === 1 &&
          (error.problems[0] as string).startsWith(`${path.join(dir, "routes.yml")}: route "a"`) &&
          /\(line 3\)/.test(error.problems[0] as string),
      );
    });
  });

  test("a bad value from .env names the .env file", () => {
    withDir({ "routes.yml": routes, ".env": "PORT=abc\n" }, (dir) => {
      assert.throws(
        () => loadConfig({ cwd: dir, env: {} }),
        (error: unknown) => error instanceof ConfigError && error.problems.some((p) => p.startsWith(path.join(dir, ".env")) && /PORT/.test(p)),
      );
    });
  });

  test("a bad value from the process environment says environment", () => {
    withDir({ "routes.yml": routes }, (dir) => {
      assert.throws(
        () => loadConfig({ cwd: dir, env: { MODEL_FALLBACK_MAP: "{oops" } }),
        (error: unknown) => error instanceof ConfigError && error.problems.some((p) => p.startsWith("environment: MODEL_FALLBACK_MAP")),
      );
    });
  });

  test("warnings are returned, not thrown", () => {
    withDir({ "routes.yml": `${routes}    colour: red\n`, ".env": "A_KEY=k\n" }, (dir) => {
      const { warnings } = loadConfig({ cwd: dir, env: {} });
      assert.equal(warnings.length, 1);
      assert.match(warnings[0] as string, /"colour".*\(line 6\)/);
    });
  });
});
