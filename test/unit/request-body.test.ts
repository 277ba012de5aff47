import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { prng } from "../helpers/prng.js";
import { inspectBody as inspectWithSpan, topLevelValueSpan, withModel, type BodyInfo } from "../../src/proxy/request-body.js";

/** inspectBody without the model's span (a position in the buffer): what the body says, for comparing with deepEqual. */
function inspectBody(body: Buffer, type: string | undefined): BodyInfo {
  const info = inspectWithSpan(body, type);
  if (info.kind !== "json" || !info.modelSpan) return info;
  const { modelSpan: _span, ...rest } = info;
  return rest;
}


/** withModel on a JSON body, which can always be rewritten. */
function rewrite(body: Buffer, model: string): Buffer {
  const out = withModel(body, { kind: "json", model: null }, model);
  assert.ok(out, "a JSON body can always be rewritten");
  return out;
}

const b = (text: string) => Buffer.from(text, "utf8");

describe("inspectBody", () => {
  test("JSON with a model", () => {
    assert.deepEqual(inspectBody(b('{"model":"gpt-4o","messages":[]}'), "application/json"), { kind: "json", model: "gpt-4o" });
    assert.deepEqual(inspectBody(b('{"model":"gpt-4o"}'), "application/json; charset=utf-8"), { kind: "json", model: "gpt-4o" });
    assert.deepEqual(inspectBody(b('{"model":"gpt-4o"}'), "Application/JSON"), { kind: "json", model: "gpt-4o" });
  });

  test("JSON model is trimmed; empty, blank, non-string or missing model is null", () => {
    assert.deepEqual(inspectBody(b('{"model":"  auto "}'), "application/json"), { kind: "json", model: "auto" });
    for (const text of ['{"model":""}', '{"model":"   "}', '{"model":5}', '{"model":null}', '{"model":["a"]}', '{"messages":[{"model":"nested"}]}', "[]", '["model"]', '"model"', "{}"]) {
      assert.deepEqual(inspectBody(b(text), "application/json"), { kind: "json", model: null }, text);
    }
  });

  test("empty JSON body has no model", () => {
    assert.deepEqual(inspectBody(b(""), "application/json"), { kind: "json", model: null });
  });

  test("invalid JSON is reported with a message", () => {
    for (const text of ['{"model": "a",}', "{", "model=gpt", "\u0000"]) {
      const info = inspectBody(b(text), "application/json");
      assert.equal(info.kind, "invalid_json", text);
      assert.ok(info.kind === "invalid_json" && /not valid JSON/.test(info.message), text);
    }
  });

  test("curl -d: JSON sent as x-www-form-urlencoded (or text/plain, or no type) is read as JSON", () => {
    for (const type of ["application/x-www-form-urlencoded", "application/x-www-form-urlencoded; charset=utf-8", "text/plain", undefined, ""]) {
      assert.deepEqual(inspectBody(b('  {"model":"gpt-4o-mini","messages":[]}'), type), { kind: "json", model: "gpt-4o-mini" }, String(type));
    }
  });

  test("a real form body, or a broken JSON-looking form body, is opaque (not a 400)", () => {
    assert.deepEqual(inspectBody(b("model=gpt-4o&x=1"), "application/x-www-form-urlencoded"), { kind: "opaque", model: null });
    assert.deepEqual(inspectBody(b("{not json"), "application/x-www-form-urlencoded"), { kind: "opaque", model: null });
    assert.deepEqual(inspectBody(b("{not json"), undefined), { kind: "opaque", model: null });
  });

  test("other content types are opaque", () => {
    assert.deepEqual(inspectBody(b('{"model":"a"}'), "application/octet-stream"), { kind: "opaque", model: null });
    assert.deepEqual(inspectBody(b("RIFF...."), "audio/wav"), { kind: "opaque", model: null });
  });

  const BOUNDARY = "----form123";
  function multipart(parts: { name: string; filename?: string; value: string }[]): Buffer {
    let text = "";
    for (const part of parts) {
      text += `--${BOUNDARY}\r\nContent-Disposition: form-data; name="${part.name}"${part.filename ? `; filename="${part.filename}"` : ""}\r\n`;
      if (part.filename) text += "Content-Type: application/octet-stream\r\n";
      text += `\r\n${part.value}\r\n`;
    }
    return b(`${text}--${BOUNDARY}--\r\n`);
  }
  const MULTIPART = `multipart/form-data; boundary=${BOUNDARY}`;

  test("multipart: the model field is read", () => {
    const body = multipart([
      { name: "file", filename: "audio.wav", value: "RIFFDATA" },
      { name: "model", value: "whisper-1" },
      { name: "language", value: "en" },
    ]);
    assert.deepEqual(inspectBody(body, MULTIPART), { kind: "multipart", model: "whisper-1", boundary: BOUNDARY });
  });

  test("multipart without a model field, and a field merely starting with 'model'", () => {
    assert.deepEqual(inspectBody(multipart([{ name: "file", filename: "a.wav", value: "x" }]), MULTIPART), { kind: "multipart", model: null, boundary: BOUNDARY });
    assert.deepEqual(inspectBody(multipart([{ name: "model_version", value: "2" }]), MULTIPART), { kind: "multipart", model: null, boundary: BOUNDARY });
  });

  test("multipart: a file part with filename=\"model\" is not the model field", () => {
    const body = multipart([
      { name: "file", filename: "model", value: "binary-audio-bytes" },
      { name: "model", value: "whisper-1" },
    ]);
    assert.deepEqual(inspectBody(body, MULTIPART), { kind: "multipart", model: "whisper-1", boundary: BOUNDARY });
  });

  test("withModel rewrites the model of a multipart body that inspectBody read one from", () => {
    // The attempt loop calls withModel whenever a candidate's model differs from the
    // requested one, e.g. `model=auto` on /v1/audio/transcriptions.
    const body = multipart([
      { name: "file", filename: "a.wav", value: "RIFFDATA" },
      { name: "model", value: "auto" },
    ]);
    assert.deepEqual(inspectBody(body, MULTIPART), { kind: "multipart", model: "auto", boundary: BOUNDARY });
    const out = withModel(body, inspectBody(body, MULTIPART), "whisper-1");
    assert.ok(out);
    assert.deepEqual(inspectBody(out, MULTIPART), { kind: "multipart", model: "whisper-1", boundary: BOUNDARY });
    assert.ok(out.includes("RIFFDATA"));
  });
});

describe("topLevelValueSpan", () => {
  test("finds the span of a top-level string value, quotes included", () => {
    const text = '{"a":1,"model":"gpt-4o","b":2}';
    const span = topLevelValueSpan(b(text), "model");
    assert.ok(span);
    assert.equal(text.slice(span[0], span[1]), '"gpt-4o"');
  });

  test("a value of any type is found", () => {
    for (const [text, value] of [['{"model":5}', "5"], ['{"model":null}', "null"], ['{"model":{"name":"x"}}', '{"name":"x"}']] as const) {
      const span = topLevelValueSpan(b(text), "model");
      assert.ok(span, text);
      assert.equal(text.slice(span[0], span[1]), value);
    }
  });

  test("null when absent, nested only, or not an object", () => {
    for (const text of ['{"a":1}', '{"messages":[{"model":"x"}]}', '{"meta":{"model":"x"}}', '["model","x"]', '"model"', "", "   "]) {
      assert.equal(topLevelValueSpan(b(text), "model"), null, text);
    }
  });

  test("a string value that mentions the key is not the key", () => {
    const text = '{"content":"\\"model\\":\\"fake\\"","model":"real"}';
    const span = topLevelValueSpan(b(text), "model");
    assert.ok(span);
    assert.equal(text.slice(span[0], span[1]), '"real"');
  });

  test("the last of duplicate keys", () => {
    const text = '{"model":"first","x":[1,{"model":"n"}],"model":"last"}';
    const span = topLevelValueSpan(b(text), "model");
    assert.ok(span);
    assert.equal(text.slice(span[0], span[1]), '"last"');
  });

  test("byte offsets with multi-byte characters before the key", () => {
    const buf = b('{"c":"日本🌍","model":"m"}');
    const span = topLevelValueSpan(buf, "model");
    assert.ok(span);
    assert.equal(buf.toString("utf8", span[0], span[1]), '"m"');
  });
});

describe("withModel: only the model value changes", () => {
  function check(text: string, model: string, expected: string) {
    const out = rewrite(b(text), model).toString("utf8");
    assert.equal(out, expected);
    assert.deepEqual(JSON.parse(out), { ...(JSON.parse(text) as object), model });
  }

  test("compact body", () => {
    check('{"model":"auto","messages":[{"role":"user","content":"hi"}],"stream":true}', "gpt-4o", '{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"stream":true}');
  });

  test("whitespace, key order and number formatting are kept", () => {
    check(
      '{\n  "temperature" : 1.0,\n  "model"   :   "auto" ,\n  "seed": 12345678901234567890,\n  "x": 1e3\n}\n',
      "m",
      '{\n  "temperature" : 1.0,\n  "model"   :   "m" ,\n  "seed": 12345678901234567890,\n  "x": 1e3\n}\n',
    );
  });

  test("nested model keys inside messages and objects are untouched", () => {
    check(
      '{"messages":[{"role":"user","content":"x","model":"nested"}],"meta":{"model":"inner","deep":{"model":"deeper"}},"model":"auto","tools":[{"model":"t"}]}',
      "new",
      '{"messages":[{"role":"user","content":"x","model":"nested"}],"meta":{"model":"inner","deep":{"model":"deeper"}},"model":"new","tools":[{"model":"t"}]}',
    );
  });

  test("duplicate top-level keys: the last one (the one JSON.parse keeps) is replaced", () => {
    check('{"model":"a","x":1,"model":"b"}', "c", '{"model":"a","x":1,"model":"c"}');
  });

  test("escaped quotes and backslashes in strings before the key", () => {
    check('{"content":"say \\"model\\": \\"x\\" \\\\","model":"auto"}', "m", '{"content":"say \\"model\\": \\"x\\" \\\\","model":"m"}');
    check('{"a":"\\\\","model":"auto"}', "m", '{"a":"\\\\","model":"m"}');
    check('{"a":"}]{[","b":["}",{"c":"]"}],"model":"auto"}', "m", '{"a":"}]{[","b":["}",{"c":"]"}],"model":"m"}');
  });

  test("a model value with escapes is replaced whole", () => {
    check('{"model":"a\\"b\\\\c\\u00e9","n":1}', "m", '{"model":"m","n":1}');
  });

  test("unicode: other bytes identical, new model encoded as UTF-8 JSON", () => {
    const text = '{"content":"héllo 🌍 \\u00e9 日本","model":"auto","z":"ü"}';
    const out = rewrite(b(text), "modèle-é 🚀");
    assert.ok(out.equals(b('{"content":"héllo 🌍 \\u00e9 日本","model":"modèle-é 🚀","z":"ü"}')));
  });

  test('a model that needs escaping ("quotes", backslash, newline) stays valid JSON', () => {
    const out = rewrite(b('{"model":"auto"}'), 'we"ird\\name\n');
    assert.deepEqual(JSON.parse(out.toString("utf8")), { model: 'we"ird\\name\n' });
  });

  test("model absent → added", () => {
    const out = rewrite(b('{"messages":[{"model":"nested"}]}'), "m");
    assert.deepEqual(JSON.parse(out.toString("utf8")), { messages: [{ model: "nested" }], model: "m" });
    assert.deepEqual(JSON.parse(rewrite(b("{}"), "m").toString("utf8")), { model: "m" });
  });

  test("non-string model → replaced", () => {
    for (const text of ['{"model":null,"a":1}', '{"model":5}', '{"model":{"id":"x"}}']) {
      assert.deepEqual(JSON.parse(rewrite(b(text), "m").toString("utf8")), { ...(JSON.parse(text) as object), model: "m" }, text);
    }
  });

  test("duplicate keys whose last value is not a string: the result's model is still the new one", () => {
    const text = '{"model":"a","model":null}';
    assert.deepEqual(JSON.parse(rewrite(b(text), "m").toString("utf8")), { model: "m" });
  });

  test("a plain key followed by an escaped duplicate (\\u0065): the result's model is still the new one", () => {
    const text = '{"model":"a","mod\\u0065l":"b"}';
    assert.equal(JSON.parse(text).model, "b");
    assert.deepEqual(JSON.parse(rewrite(b(text), "m").toString("utf8")), { model: "m" });
  });
});

describe("withModel: fuzz", () => {
  const CHARS = ['a', 'z', ' ', '"', "\\", "{", "}", "[", "]", ",", ":", "\n", "\t", "é", "日", "🌍", "\u0001", "model", '"model"', "/"];

  function gen(random: () => number) {
    const int = (n: number) => Math.floor(random() * n);
    const pick = <T>(items: readonly T[]): T => items[int(items.length)] as T;
    const ws = () => pick(["", "", "", " ", "\n  ", "\t", " \r\n "]);

    function str(): string {
      let s = "";
      const n = int(6);
      for (let i = 0; i < n; i++) s += pick(CHARS);
      return s;
    }
    function encodeString(s: string): string {
      // Sometimes escape non-ASCII or plain letters as \uXXXX, which JSON.stringify never does.
      let out = JSON.stringify(s);
      if (random() < 0.3) out = out.replace(/[^\x00-\x7f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
      if (random() < 0.2) out = out.replace(/a/g, "\\u0061");
      return out;
    }
    function value(depth: number): string {
      const kind = depth > 3 ? int(4) : int(6);
      switch (kind) {
        case 0:
          return pick(["0", "-1", "3.25", "1e3", "12345678901234567890", "true", "false", "null"]);
        case 1:
        case 2:
        case 3:
          return encodeString(str());
        case 4: {
          const n = int(4);
          const items = Array.from({ length: n }, () => ws() + value(depth + 1) + ws());
          return `[${items.join(",")}${n === 0 ? ws() : ""}]`;
        }
        default:
          return object(depth + 1, false);
      }
    }
    function object(depth: number, top: boolean): string {
      const members: string[] = [];
      const n = int(5);
      for (let i = 0; i < n; i++) {
        const key = random() < 0.2 ? "model" : random() < 0.5 ? pick(["messages", "content", "role", "stream", "mod", "models", "model ", "Model"]) : str();
        // Nested objects may carry "model" keys of any type; at the top level the fuzz uses string models only.
        const val = key === "model" && top ? encodeString(str()) : value(depth);
        members.push(`${ws()}${JSON.stringify(key)}${ws()}:${ws()}${val}${ws()}`);
      }
      if (top) {
        const where = int(4); // 0: no top-level model, 1: one, 2: a duplicate, 3: a non-string one
        if (where === 1 || where === 2) members.splice(int(members.length + 1), 0, `${ws()}"model"${ws()}:${ws()}${encodeString(str())}${ws()}`);
        if (where === 2) members.splice(int(members.length + 1), 0, `"model":${encodeString(str())}`);
        if (where === 3 && !members.some((m) => /^\s*"model"\s*:/.test(m))) members.splice(int(members.length + 1), 0, `"model":${pick(["null", "7", "[]", '{"model":"x"}'])}`);
      }
      return `{${members.join(",")}${members.length === 0 ? ws() : ""}}`;
    }
    return { text: `${ws()}${object(0, true)}${ws()}`, model: str() || "m" };
  }

  test("400 random JSON objects: JSON.parse(withModel(x, m)) equals {...JSON.parse(x), model: m}, and only the model bytes change", () => {
    const random = prng(0x5eed);
    let spliced = 0;
    for (let i = 0; i < 400; i++) {
      const { text, model } = gen(random);
      const input = b(text);
      const parsed = JSON.parse(text) as Record<string, unknown>;
      const out = rewrite(input, model);
      assert.deepEqual(JSON.parse(out.toString("utf8")), { ...parsed, model }, `case ${i}: ${text}`);

      const span = topLevelValueSpan(input, "model");
      if (typeof parsed.model === "string" && span) {
        spliced++;
        const replacement = b(JSON.stringify(model));
        assert.ok(out.subarray(0, span[0]).equals(input.subarray(0, span[0])), `case ${i}: prefix changed`);
        assert.ok(out.subarray(span[0] + replacement.length).equals(input.subarray(span[1])), `case ${i}: suffix changed`);
        assert.ok(out.subarray(span[0], span[0] + replacement.length).equals(replacement), `case ${i}: replacement`);
      }
    }
    assert.ok(spliced > 100, `the fuzz must exercise the splice path (got ${spliced})`);
  });

  test("300 random JSON objects with long members (as agents send): inspectBody and withModel agree with JSON.parse", () => {
    // Long members put the walk's early stop to work: past the model, only the keys' names are searched for.
    const random = prng(0xa6e17);
    let stopped = 0;
    let spanned = 0;
    for (let i = 0; i < 300; i++) {
      const { text, model } = gen(random);
      // One or two long members around the random ones.
      const inner = text.trim().slice(1, -1);
      const pieces = inner.trim() === "" ? [] : [inner];
      const padded = random() < 0.5 ? `{${[...pieces, plainTail()].join(",")}}` : `{${[plainTail(), ...pieces, plainTail()].join(",")}}`;
      const input = b(padded);
      const parsed = JSON.parse(padded) as Record<string, unknown>;
      const info = inspectBody(input, "application/json");
      const expected = typeof parsed.model === "string" && parsed.model.trim() ? parsed.model.trim() : null;
      const models = parsed.models;
      const badModels = models !== undefined && (!Array.isArray(models) || models.some((m) => typeof m !== "string" || !m.trim()));
      assert.equal(info.kind, badModels ? "invalid_json" : "json", `case ${i}: ${padded}`);
      if (info.kind === "json") {
        assert.equal(info.model, expected, `case ${i}: ${padded}`);
        assert.equal(info.stream === true, parsed.stream === true, `case ${i}: stream`);
      }
      const out = rewrite(input, model);
      assert.deepEqual(JSON.parse(out.toString("utf8")), { ...parsed, model }, `case ${i}: ${padded}`);
      if (!badModels && stopsEarly(padded)) stopped++;
      // The span the inspection found gives the same splice as a second scan.
      const withSpan = inspectWithSpan(input, "application/json");
      if (withSpan.kind === "json" && withSpan.modelSpan) {
        spanned++;
        assert.ok(withModel(input, withSpan, model)?.equals(out), `case ${i}: the splice at the inspected span`);
        // Another buffer (the body without "models") is scanned again, not spliced at this one's offsets.
        const shifted = b(` ${padded}`);
        assert.deepEqual(JSON.parse((withModel(shifted, withSpan, model) as Buffer).toString("utf8")), { ...parsed, model }, `case ${i}: another buffer`);
      }
    }
    assert.ok(stopped > 50, `the fuzz must reach the early stop (got ${stopped})`);
    assert.ok(spanned > 100, `the fuzz must splice at inspected spans (got ${spanned})`);
  });
});

/** A long member (2.9 KB) of tool schemas that names none of the keys the walk looks for. */
function plainTail(count = 20): string {
  return `"tools":${JSON.stringify(Array.from({ length: count }, (_, i) => ({ type: "function", function: { name: `tool_${i}`, description: 'reads a file, "exactly"', parameters: { type: "object", properties: { path: { type: "string" } } } } })))}`;
}

/**
 * Whether inspectBody's walk stops before the end of this (valid) body: the
 * same body with a malformed last member is then still read as JSON, since
 * the walk never reaches it.
 */
function stopsEarly(text: string): boolean {
  const end = text.lastIndexOf("}");
  return inspectBody(b(`${text.slice(0, end)},"zz" 1}`), "application/json").kind === "json";
}

describe("inspectBody on long bodies: the walk stops early only where nothing can follow", () => {
  test("it does stop past the model when the rest names no wanted key", () => {
    const text = `{"messages":[],"model":"a",${plainTail()}}`;
    assert.deepEqual(inspectBody(b(text), "application/json"), { kind: "json", model: "a" });
    assert.equal(stopsEarly(text), true);
    // The short body is walked to its end, malformed member included.
    assert.equal(stopsEarly(`{"model":"a",${plainTail(2)}}`), false);
  });

  test("a key after the model in a long tail is still read (stream, models), and the walk goes on to it", () => {
    assert.deepEqual(inspectBody(b(`{"model":"a",${plainTail()},"stream":true}`), "application/json"), { kind: "json", model: "a", stream: true });
    assert.deepEqual(inspectBody(b(`{"model":"a",${plainTail()},"models":["b"]}`), "application/json"), { kind: "json", model: "a", models: ["b"] });
    assert.equal(stopsEarly(`{"model":"a",${plainTail()},"stream":true}`), false);
    // Past the last one, it stops again.
    assert.deepEqual(inspectBody(b(`{"model":"a",${plainTail()},"stream":true,${plainTail()}}`), "application/json"), { kind: "json", model: "a", stream: true });
    assert.equal(stopsEarly(`{"model":"a",${plainTail()},"stream":true,${plainTail()}}`), true);
  });

  test("a later duplicate model, plain or written with escapes, is the one used (as JSON.parse keeps the last)", () => {
    for (const key of ['"model"', '"mod\\u0065l"', '"\\u006dodel"']) {
      for (const text of [`{"model":"a",${plainTail()},${key}:"b"}`, `{"model":"a",${plainTail()},${key}:"b",${plainTail()}}`]) {
        assert.equal((JSON.parse(text) as { model: string }).model, "b", text.slice(-40));
        assert.equal((inspectBody(b(text), "application/json") as { model: string }).model, "b", key);
        const out = JSON.parse(rewrite(b(text), "c").toString()) as Record<string, unknown>;
        assert.deepEqual(out, { ...(JSON.parse(text) as object), model: "c" }, key);
      }
    }
  });

  test("nested model keys in the tail are not the model; the splice changes only the top-level one", () => {
    const tail = `"tools":${JSON.stringify(Array.from({ length: 60 }, (_, i) => ({ name: `t${i}`, parameters: { properties: { model: { type: "string" }, stream: { type: "boolean" } } } })))}`;
    const text = `{"messages":[],"model":"a",${tail}}`;
    assert.deepEqual(inspectBody(b(text), "application/json"), { kind: "json", model: "a" });
    const out = rewrite(b(text), "b");
    assert.equal(out.toString(), text.replace('"model":"a"', '"model":"b"'));
  });

  test("a key whose name JSON may also write escaped (a slash as \\/) is never searched for by one spelling", () => {
    const text = `{"a/b":1,${plainTail()},"a\\/b":2}`;
    const span = topLevelValueSpan(b(text), "a/b");
    assert.ok(span);
    assert.equal(b(text).toString("utf8", span[0], span[1]), "2");
  });

  test("what is not walked is not checked: a body malformed only past the stop goes to the upstream, which refuses it", () => {
    // The trade-off, pinned: a short body with the same fault gets the gateway's own 400.
    assert.deepEqual(inspectBody(b(`{"model":"a",${plainTail()},"x" 1}`), "application/json"), { kind: "json", model: "a" });
    assert.equal(inspectBody(b(`{"model":"a","x" 1}`), "application/json").kind, "invalid_json");
    // A body that does not end as an object is still refused by the gateway.
    assert.equal(inspectBody(b(`{"model":"a",${plainTail()}`), "application/json").kind, "invalid_json");
  });
});
