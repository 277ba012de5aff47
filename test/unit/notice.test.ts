import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { buildNotice, jsonWithNotice, sseError, sseNotice, type FailedAttempt, type GatewayNotice } from "../../src/proxy/notice.js";

const FAILED: FailedAttempt[] = [
  { model: "a", route: "ra", reason: "status", status: 429 },
  { model: "b", route: "rb", reason: "timeout", status: null },
];

function notice(): GatewayNotice {
  const n = buildNotice(FAILED, "c", "rc");
  assert.ok(n);
  return n;
}

describe("buildNotice", () => {
  test("no failed attempts → no notice", () => {
    assert.equal(buildNotice([], "a", "ra"), undefined);
  });

  test("the 1.0.0 fields describe the last failure and the model used", () => {
    const n = notice();
    assert.equal(n.trigger_status, null);
    assert.equal(n.from_model, "b");
    assert.equal(n.from_route, "rb");
    assert.equal(n.to_model, "c");
    assert.equal(n.to_route, "rc");
    assert.equal(n.reason, "timeout");
    assert.deepEqual(n.failed_attempts, FAILED);
  });

  test("one failure by status", () => {
    assert.deepEqual(buildNotice([FAILED[0] as FailedAttempt], "b", "rb"), {
      trigger_status: 429,
      from_model: "a",
      from_route: "ra",
      to_model: "b",
      to_route: "rb",
      reason: "status",
      failed_attempts: [FAILED[0]],
    });
  });
});

describe("sseNotice", () => {
  test("comment: one SSE comment line with the notice JSON, then a blank line", () => {
    const buf = sseNotice(notice(), "comment");
    assert.ok(buf);
    const text = buf.toString("utf8");
    assert.ok(text.startsWith(": gateway_notice {"), text);
    assert.ok(text.endsWith("\n\n"));
    const lines = text.slice(0, -2).split("\n");
    assert.equal(lines.length, 1, "a single line: every line of a comment must start with ':'");
    assert.deepEqual(JSON.parse(text.slice(": gateway_notice ".length)), notice());
  });

  test("event: a named gateway_notice event whose data has type and choices []", () => {
    const buf = sseNotice(notice(), "event");
    assert.ok(buf);
    const text = buf.toString("utf8");
    assert.ok(text.endsWith("\n\n"));
    const lines = text.slice(0, -2).split("\n");
    assert.equal(lines.length, 2);
    assert.equal(lines[0], "event: gateway_notice");
    assert.ok(lines[1]?.startsWith("data: "));
    const data = JSON.parse((lines[1] as string).slice("data: ".length)) as Record<string, unknown>;
    assert.equal(data.type, "gateway_notice");
    assert.deepEqual(data.choices, []);
    const { type: _type, choices: _choices, ...rest } = data;
    assert.deepEqual(rest, notice());
  });

  test("off: nothing", () => {
    assert.equal(sseNotice(notice(), "off"), undefined);
  });

  test("model names with newlines cannot break the SSE framing", () => {
    const n = buildNotice([{ model: "a\nevil: x", route: "r\r\n", reason: "status", status: 429 }], "b\n\ndata: [DONE]", "rb");
    assert.ok(n);
    for (const mode of ["comment", "event"] as const) {
      const text = (sseNotice(n, mode) as Buffer).toString("utf8");
      assert.equal(text.indexOf("\n\n"), text.length - 2, mode);
      assert.ok(!text.slice(0, -2).includes("\r"), mode);
    }
  });
});

describe("jsonWithNotice", () => {
  test("adds a top-level gateway_notice to an object, keeping the original bytes before it", () => {
    const body = Buffer.from('{"id":"chatcmpl-1","choices":[{"index":0,"message":{"role":"assistant","content":"hi }"}}]}');
    const out = jsonWithNotice(body, notice());
    const parsed = JSON.parse(out.toString("utf8")) as Record<string, unknown>;
    assert.deepEqual(parsed.gateway_notice, notice());
    assert.deepEqual({ ...parsed, gateway_notice: undefined }, { ...(JSON.parse(body.toString()) as object), gateway_notice: undefined });
    assert.ok(out.subarray(0, body.length - 1).equals(body.subarray(0, body.length - 1)), "prefix unchanged");
    assert.equal(out[out.length - 1], 0x7d);
  });

  test("empty object", () => {
    for (const text of ["{}", "{ }", " {\n}\n"]) {
      const out = jsonWithNotice(Buffer.from(text), notice());
      assert.deepEqual(JSON.parse(out.toString("utf8")), { gateway_notice: notice() }, JSON.stringify(text));
    }
  });

  test("pretty-printed object with trailing whitespace", () => {
    const text = '{\n  "a": 1,\n  "b": [1, 2]\n}\n\n';
    const out = jsonWithNotice(Buffer.from(text), notice()).toString("utf8");
    assert.deepEqual(JSON.parse(out), { a: 1, b: [1, 2], gateway_notice: notice() });
    assert.ok(out.endsWith("}\n\n"), "trailing whitespace kept");
    assert.ok(out.startsWith('{\n  "a": 1,\n  "b": [1, 2]\n'));
  });

  test("an existing gateway_notice field is replaced in the parsed result", () => {
    const out = jsonWithNotice(Buffer.from('{"gateway_notice":"old","a":1}'), notice());
    assert.deepEqual(JSON.parse(out.toString("utf8")), { a: 1, gateway_notice: notice() });
  });

  test("unicode content is kept byte for byte", () => {
    const body = Buffer.from('{"content":"héllo 🌍 日本"}');
    const out = jsonWithNotice(body, notice());
    assert.equal((JSON.parse(out.toString("utf8")) as { content: string }).content, "héllo 🌍 日本");
  });

  test("a body that only looks like an object stays what it was: not JSON", () => {
    for (const text of ['{"a": }', '{"a":1}\n{"b":2}', "{not json}"]) {
      const out = jsonWithNotice(Buffer.from(text), notice()).toString("utf8");
      assert.throws(() => JSON.parse(out), SyntaxError, text);
      assert.ok(out.startsWith(text.slice(0, -1)), "its bytes are kept");
    }
  });

  for (const text of ["[]", '[{"a":1}]', "null", "42", '"str"', "not json", "{broken", '{"a":1} trailing', "", "  "]) {
    test(`${JSON.stringify(text)} is returned unchanged`, () => {
      const body = Buffer.from(text);
      const out = jsonWithNotice(body, notice());
      assert.ok(out.equals(body));
    });
  }
});

describe("sseError", () => {
  test("an in-band OpenAI-shaped error event", () => {
    const text = sseError("upstream went away", "upstream_error").toString("utf8");
    assert.ok(text.startsWith("data: "));
    assert.ok(text.endsWith("\n\n"));
    assert.deepEqual(JSON.parse(text.slice(6)), { error: { message: "upstream went away", type: "gateway_error", code: "upstream_error" } });
  });
});
