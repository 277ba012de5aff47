import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { parse as parseDotenv } from "dotenv";
import { buildConfig, loadConfig } from "../../src/config/load.js";
import { envShape, noticeShape, routeDefaultsShape, routeShape, routesFileShape } from "../../src/config/schema.js";
import { ENV_TEMPLATE, ROUTES_TEMPLATE } from "../../src/config/template.js";

/** Keys that are documented by name as aliases rather than written out as YAML keys. */
const ALIASES = new Set(["global", "auth"]);

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** Whether `key` appears as a YAML key (`key:` at a line start, after `- `, or in a comment). */
function hasYamlKey(text: string, key: string): boolean {
  return new RegExp(`^[ \\t]*(?:#[ \\t]*)?(?:-[ \\t]+)?${escape(key)}:`, "m").test(text);
}

/** The environment variables the routes template names with apiKeyEnv. */
function namedKeyVars(): string[] {
  return [...ROUTES_TEMPLATE.matchAll(/^[ \t]*apiKeyEnv:[ \t]*([A-Z0-9_]+)/gm)].map((m) => m[1] as string);
}

describe("ROUTES_TEMPLATE documents the schema", () => {
  const groups: [string, object][] = [
    ["routesFileShape", routesFileShape],
    ["routeDefaultsShape", routeDefaultsShape],
    ["routeShape", routeShape],
    ["noticeShape", noticeShape],
  ];
  for (const [group, shape] of groups) {
    for (const key of Object.keys(shape)) {
      test(`${group}.${key} appears in ROUTES_TEMPLATE`, () => {
        if (ALIASES.has(key)) {
          assert.ok(ROUTES_TEMPLATE.includes(`"${key}"`), `alias "${key}" is not mentioned`);
        } else {
          assert.ok(hasYamlKey(ROUTES_TEMPLATE, key), `no "${key}:" in the template`);
        }
      });
    }
  }

  test("the wildcard route and notice modes are documented", () => {
    assert.match(ROUTES_TEMPLATE, /model: "\*"/);
    for (const mode of ["comment", "event", "off"]) assert.match(ROUTES_TEMPLATE, new RegExp(`\\b${mode}\\b`));
  });
});

describe("ENV_TEMPLATE documents the environment", () => {
  for (const key of Object.keys(envShape)) {
    test(`${key} appears in ENV_TEMPLATE`, () => {
      assert.match(ENV_TEMPLATE, new RegExp(`^(?:#[ \\t]*)?${key}=`, "m"));
    });
  }

  test("every apiKeyEnv of the routes template is listed", () => {
    const names = namedKeyVars();
    assert.ok(names.length >= 2);
    for (const name of names) assert.match(ENV_TEMPLATE, new RegExp(`^${name}=`, "m"));
  });
});

describe("the templates are valid", () => {
  test("ROUTES_TEMPLATE parses with buildConfig without problems or warnings (keys set)", () => {
    const env = Object.fromEntries(namedKeyVars().map((name) => [name, `key-for-${name}`]));
    const result = buildConfig(ROUTES_TEMPLATE, env, { routesFile: "routes.yml" });
    assert.deepEqual(result.problems, []);
    assert.deepEqual(result.warnings, []);
    assert.ok(result.config);
    assert.ok(result.config.routes.length >= 2);
    assert.deepEqual([...result.config.retryStatusCodes].sort(), [412, 429, 500, 502, 503, 504]);
    for (const route of result.config.routes) assert.equal(route.apiKey, `key-for-${namedKeyVarOf(route.name)}`, route.name);
  });

  test("every commented-out block of ROUTES_TEMPLATE is valid too once uncommented", () => {
    const uncommented = ROUTES_TEMPLATE.split("\n")
      .map((line) => line.replace(/^(\s+)# (?=\s*[-a-zA-Z]+[a-zA-Z]*:|\s*- )/, "$1"))
      .join("\n");
    assert.notEqual(uncommented, ROUTES_TEMPLATE);
    const env = Object.fromEntries(namedKeyVars().map((name) => [name, "k"]));
    const result = buildConfig(uncommented, { ...env, SHARED_API_KEY: "k" }, { routesFile: "routes.yml" });
    assert.deepEqual(result.problems, [], uncommented);
    assert.ok(result.config?.wildcard, "the catch-all example becomes the wildcard");
  });

  test("ENV_TEMPLATE parses and validates as an environment", () => {
    const env = parseDotenv(ENV_TEMPLATE);
    const result = buildConfig("routes: []", Object.fromEntries(Object.entries(env).filter(([, v]) => v !== "")), { routesFile: "routes.yml" });
    assert.deepEqual(result.problems, []);
    assert.equal(result.config?.host, "127.0.0.1");
    assert.equal(result.config?.port, 8787);
    assert.equal(result.config?.maxBodyBytes, 50 * 1024 * 1024);
  });

  test("init's two files together load (empty keys in .env are unset)", () => {
    const dir = mkdtempSync(path.join(tmpdir(), "autoproxy-template-"));
    try {
      writeFileSync(path.join(dir, "routes.yml"), ROUTES_TEMPLATE);
      writeFileSync(path.join(dir, ".env"), ENV_TEMPLATE);
      const { config, warnings } = loadConfig({ cwd: dir, env: {} });
      assert.ok(config.routes.length >= 2);
      assert.ok(warnings.every((w) => /apiKeyEnv/.test(w)), warnings.join("\n"));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

function namedKeyVarOf(routeName: string): string {
  const lines = ROUTES_TEMPLATE.split("\n");
  const start = lines.findIndex((line) => new RegExp(`^\\s*- name: ${escape(routeName)}\\s*$`).test(line));
  assert.ok(start >= 0, routeName);
  for (let i = start + 1; i < lines.length && !/^\s*- name:/.test(lines[i] as string); i++) {
    const match = /^\s*apiKeyEnv:\s*([A-Z0-9_]+)/.exec(lines[i] as string);
    if (match) return match[1] as string;
  }
  assert.fail(`route ${routeName} has no apiKeyEnv`);
}
