import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { inspectBody as inspectWithSpan, withoutKey, type BodyInfo } from "../../src/proxy/request-body.js";

/** inspectBody without the model's span (a position in the buffer): what the body says, for comparing with deepEqual. */
function inspectBody(body: Buffer, type: string | undefined): BodyInfo {
  const info = inspectWithSpan(body, type);
  if (info.kind !== "json" || !info.modelSpan) return info;
  const { modelSpan: _span, ...rest } = info;
  return rest;
}


const b = (text: string) => Buffer.from(text, "utf8");
const strip = (text: string) => text.replace(/\s+/g, "");

/**
 * Checks that `out` is `text` with exactly one contiguous span cut out, and
 * that this span is the `key` member (`memberText`, whitespace aside) with the
 * one comma that separated it and whitespace: every other byte is unchanged.
 */
function assertCut(text: string, out: string, memberText: string): void {
  const k = text.length - out.length;
  assert.ok(k > 0, "something was removed");
  const member = strip(memberText);
  const allowed = new Set([member, `,${member}`, `${member},`]);
  const onlyMember = strip(text) === `{${member}}`;
  let found = false;
  for (let i = 0; i <= out.length && !found; i++) {
    if (text.slice(0, i) + text.slice(i + k) !== out) continue;
    const removed = strip(text.slice(i, i + k));
    if (onlyMember ? removed === member : allowed.has(removed) && removed !== member) found = true;
  }
  assert.ok(found, `not a single cut of the member:\n  in:  ${JSON.stringify(text)}\n  out: ${JSON.stringify(out)}`);
}

/** withoutKey on a body: the result is valid JSON equal to the original minus the key, cut as a single span. */
function check(text: string, key: string, memberText: string): string {
  const out = withoutKey(b(text), key).toString("utf8");
  const expected = JSON.parse(text) as Record<string, unknown>;
  delete expected[key];
  assert.deepEqual(JSON.parse(out), expected, `${JSON.stringify(text)} → ${JSON.stringify(out)}`);
  assertCut(text, out, memberText);
  return out;
}

describe("withoutKey", () => {
  test("the first member", () => {
    assert.equal(check('{"models":["a","b"],"model":"x","messages":[]}', "models", '"models":["a","b"]'), '{"model":"x","messages":[]}');
  });

  test("a middle member", () => {
    assert.equal(check('{"model":"x","models":["a","b"],"stream":true}', "models", '"models":["a","b"]'), '{"model":"x","stream":true}');
  });

  test("the last member", () => {
    assert.equal(check('{"model":"x","messages":[{"role":"user","content":"hi"}],"models":["a"]}', "models", '"models":["a"]'), '{"model":"x","messages":[{"role":"user","content":"hi"}]}');
  });

  test("the only member", () => {
    assert.equal(check('{"models":["a"]}', "models", '"models":["a"]'), "{}");
    assert.deepEqual(JSON.parse(check('{ "models" : [ "a" ] }', "models", '"models":["a"]')), {});
  });

  test("odd whitespace: first, middle, last", () => {
    check('{ \n\t"models" :\t[ "a" ,\r\n "b" ] ,\n  "model":"x" }', "models", '"models":["a","b"]');
    check('{\n  "model" : "x" ,\n  "models" :\t[ "a" , "b" ]  ,\n\n  "stream": true\n}', "models", '"models":["a","b"]');
    check('{\n  "model" : "x" ,\n  "models" :\t[ "a" , "b" ]\n}\n', "models", '"models":["a","b"]');
    check('  {"model":"x"  ,  "models":["a"]  }  ', "models", '"models":["a"]');
  });

  test("other values keep their exact bytes (escapes, numbers, unicode)", () => {
    const text = '{"model":"m\\u00e9","temperature":1.50,"models":["a"],"messages":[{"content":"caf\u00e9 \\"models\\": [1]"}],"n":1e2}';
    const out = check(text, "models", '"models":["a"]');
    assert.equal(out, '{"model":"m\\u00e9","temperature":1.50,"messages":[{"content":"caf\u00e9 \\"models\\": [1]"}],"n":1e2}');
  });

  test("values of other kinds are removed whole", () => {
    for (const value of ['"a,b"', "null", "42", "true", '{"x":[1,{"y":"}"}]}', '[["a"],{"b":"]"}]']) {
      check(`{"model":"x","models":${value},"stream":false}`, "models", `"models":${value}`);
      check(`{"models":${value},"model":"x"}`, "models", `"models":${value}`);
      check(`{"model":"x","models":${value}}`, "models", `"models":${value}`);
    }
  });

  test("nested keys are untouched", () => {
    const text = '{"model":"x","messages":[{"role":"user","models":["n"]}],"metadata":{"models":["m"]}}';
    const body = b(text);
    assert.equal(withoutKey(body, "models"), body, "no top-level key: the same buffer");
    const withTop = '{"metadata":{"models":["m"]},"models":["a"],"messages":[{"models":["n"]}]}';
    const out = check(withTop, "models", '"models":["a"]');
    assert.equal(out, '{"metadata":{"models":["m"]},"messages":[{"models":["n"]}]}');
  });

  test("a string value that looks like the key is untouched", () => {
    const text = '{"note":"\\"models\\":[\\"z\\"],","model":"x"}';
    const body = b(text);
    assert.equal(withoutKey(body, "models"), body);
  });

  test("an absent key: the same buffer", () => {
    for (const text of ['{"model":"x"}', "{}", "", "[]", '["models"]', "not json", '{"modelsx":1,"xmodels":2}']) {
      const body = b(text);
      assert.equal(withoutKey(body, "models"), body, JSON.stringify(text));
    }
  });

  test("a key written with escapes is the same key", () => {
    check('{"model":"x","\\u006dodels":["a"]}', "models", '"\\u006dodels":["a"]');
  });

  test("duplicate keys: none is left", () => {
    const out = withoutKey(b('{"models":["a"],"model":"x","models":["b"]}'), "models").toString("utf8");
    assert.deepEqual(JSON.parse(out), { model: "x" }, out);
    assert.ok(!out.includes('"models"'), out);
  });
});

describe("inspectBody: models and stream", () => {
  test("a JSON body's models list is returned (trimmed)", () => {
    assert.deepEqual(inspectBody(b('{"model":"a","models":["b"," c "]}'), "application/json"), { kind: "json", model: "a", models: ["b", "c"] });
    assert.deepEqual(inspectBody(b('{"models":["b"]}'), "application/json"), { kind: "json", model: null, models: ["b"] });
    assert.deepEqual(inspectBody(b('{"model":"auto","models":["b","c"]}'), "application/x-www-form-urlencoded"), { kind: "json", model: "auto", models: ["b", "c"] });
  });

  test("no models: no models field", () => {
    const info = inspectBody(b('{"model":"a"}'), "application/json");
    assert.deepEqual(info, { kind: "json", model: "a" });
    assert.ok(!("models" in info));
  });

  test("models that is not a list of non-empty strings → invalid_json naming models", () => {
    for (const value of ['"b"', "5", "true", '{"b":1}', "[1]", '["b", 2]', '[""]', '["  "]', '[["b"]]', '["b", null]']) {
      const info = inspectBody(b(`{"model":"a","models":${value}}`), "application/json");
      assert.equal(info.kind, "invalid_json", value);
      assert.ok(info.kind === "invalid_json" && /"models"/.test(info.message), `${value}: ${JSON.stringify(info)}`);
    }
  });

  test("stream: true is reported; other values are not", () => {
    assert.deepEqual(inspectBody(b('{"model":"a","stream":true}'), "application/json"), { kind: "json", model: "a", stream: true });
    assert.deepEqual(inspectBody(b('{"model":"a","stream":true,"models":["b"]}'), "application/json"), { kind: "json", model: "a", stream: true, models: ["b"] });
    for (const value of ["false", '"true"', "1", "null"]) {
      const info = inspectBody(b(`{"model":"a","stream":${value}}`), "application/json");
      assert.deepEqual(info, { kind: "json", model: "a" }, value);
    }
  });
});
