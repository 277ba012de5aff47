import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { bodyStatus, isTimeoutError, mayHideStatus } from "../../src/upstream/classify.js";
import { prng } from "../helpers/prng.js";
import { AttemptTimeoutError } from "../../src/upstream/client.js";

const DEFAULT = new Set([412, 429, 500, 502, 503, 504]);

describe("bodyStatus", () => {
  /** [description, body text, expected status or null (ok)] */
  const cases: [string, string, number | null][] = [
    ["top-level status", '{"status": 429}', 429],
    ["top-level code", '{"code": 503, "message": "busy"}', 503],
    ["top-level errorCode", '{"errorCode": 500}', 500],
    ["error.code", '{"error": {"code": 429, "message": "rate limited"}}', 429],
    ["error.status", '{"error": {"status": 502}}', 502],
    ["error.errorCode", '{"error": {"errorCode": 504}}', 504],
    ["errors[] entry", '{"errors": [{"code": 1001}, {"code": 503}]}', 503],
    ["errors[] entry status", '{"errors": [{"status": "429"}]}', 429],
    ["numeric string code", '{"code": "503"}', 503],
    ["numeric string with spaces", '{"error": {"code": " 429 "}}', 429],
    ["numeric string status in error", '{"error": {"status": "412"}}', 412],
    ["status not in the set", '{"error": {"code": 404}}', null],
    ["status 200 in body", '{"status": 200, "choices": []}', null],
    ["non-status string code", '{"error": {"code": "rate_limit_exceeded", "message": "slow down"}}', null],
    ["string that starts with digits", '{"code": "429abc"}', null],
    ["four-digit string", '{"code": "4290"}', null],
    ["fractional number", '{"code": 429.5}', null],
    ["out-of-range number", '{"code": 42900}', null],
    ["boolean status", '{"status": true}', null],
    ["error as a string", '{"error": "429"}', null],
    ["errors not a list", '{"errors": {"code": 429}}', null],
    ["a normal completion", '{"id": "chatcmpl-1", "object": "chat.completion", "choices": [{"index": 0, "message": {"role": "assistant", "content": "429"}}]}', null],
    ["nested deeper than error is ignored", '{"data": {"error": {"code": 429}}}', null],
    ["top-level array", '[{"code": 429}]', null],
    ["JSON scalar", "429", null],
    ["JSON null", "null", null],
    ["non-JSON body", "<html>502 Bad Gateway</html>", null],
    ["empty body", "", null],
    ["SSE text", 'data: {"code": 429}\n\n', null],
    ["first match among several fields wins if in set", '{"status": 200, "code": 503}', 503],
  ];
  for (const [what, body, expected] of cases) {
    test(`${what}: ${body.replace(/\n/g, "\\n")} → ${expected ?? "ok"}`, () => {
      let payload: unknown;
      try {
        payload = JSON.parse(body);
      } catch {
        payload = undefined; // the attempt passes what does not parse as undefined
      }
      assert.equal(bodyStatus(payload, DEFAULT), expected);
    });
  }

  // mayHideStatus is bodyStatus's fast path: a body it clears is never parsed, so it must never clear one bodyStatus flags.
  for (const [what, body, expected] of cases) {
    if (expected === null) continue;
    test(`mayHideStatus does not clear it: ${what}`, () => assert.equal(mayHideStatus(Buffer.from(body)), true));
  }

  test("mayHideStatus sees a key spelled with \\u escapes", () => {
    for (const body of ['{"error":{"c\\u006fde":429}}', '{"\\u0073tatus":503}', '{"errors":[{"errorC\\u006fde":"500"}]}']) {
      assert.equal(bodyStatus(JSON.parse(body), DEFAULT) !== null, true, body);
      assert.equal(mayHideStatus(Buffer.from(body)), true, body);
    }
  });

  test("mayHideStatus clears a plain answer, and one whose text only mentions the keys", () => {
    assert.equal(mayHideStatus(Buffer.from('{"id":"chatcmpl-1","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"hi"}}]}')), false);
    assert.equal(mayHideStatus(Buffer.from('{"choices":[{"message":{"content":"the \\"code\\" and \\"status\\" fields"}}]}')), false);
  });

  test("mayHideStatus never clears a body bodyStatus flags (random bodies of the keys, escapes and statuses)", () => {
    const random = prng(20261208);
    const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;
    const keys = ["status", "code", "errorCode", "error", "errors", "message", "c\\u006fde", "st\\u0061tus", "content"];
    const values = ["429", '"503"', "200", '"rate_limit"', "true", "null", '"\\"code\\": 429"'];
    const object = (depth: number): string => {
      const fields: string[] = [];
      const n = 1 + Math.floor(random() * 3);
      for (let i = 0; i < n; i++) {
        const key = pick(keys);
        const value = depth < 2 && random() < 0.4 ? (random() < 0.5 ? object(depth + 1) : `[${object(depth + 1)}]`) : pick(values);
        fields.push(`"${key}":${value}`);
      }
      return `{${fields.join(",")}}`;
    };
    let flagged = 0;
    for (let i = 0; i < 5000; i++) {
      const body = object(0);
      if (bodyStatus(JSON.parse(body), DEFAULT) === null) continue;
      flagged++;
      assert.equal(mayHideStatus(Buffer.from(body)), true, body);
    }
    assert.ok(flagged > 500, `only ${flagged} of the bodies had a hidden status: the generator tests too little`);
  });

  test("bodyStatus uses the given set", () => {
    assert.equal(bodyStatus({ error: { code: 418 } }, new Set([418])), 418);
    assert.equal(bodyStatus({ error: { code: 429 } }, new Set([418])), null);
    assert.equal(bodyStatus(null, DEFAULT), null);
    assert.equal(bodyStatus(undefined, DEFAULT), null);
    assert.equal(bodyStatus("503", DEFAULT), null);
  });
});

describe("isTimeoutError", () => {
  const cases: [string, unknown, "timeout" | "network_error"][] = [
    ["undici headers timeout", Object.assign(new Error("x"), { code: "UND_ERR_HEADERS_TIMEOUT" }), "timeout"],
    ["undici connect timeout", Object.assign(new Error("x"), { code: "UND_ERR_CONNECT_TIMEOUT" }), "timeout"],
    ["ETIMEDOUT", Object.assign(new Error("x"), { code: "ETIMEDOUT" }), "timeout"],
    ["TimeoutError by name", Object.assign(new Error("x"), { name: "TimeoutError" }), "timeout"],
    ["AttemptTimeoutError", new AttemptTimeoutError(100), "timeout"],
    ["DOMException TimeoutError", new DOMException("timed out", "TimeoutError"), "timeout"],
    ["ECONNREFUSED", Object.assign(new Error("x"), { code: "ECONNREFUSED" }), "network_error"],
    ["ECONNRESET", Object.assign(new Error("x"), { code: "ECONNRESET" }), "network_error"],
    ["ENOTFOUND", Object.assign(new Error("x"), { code: "ENOTFOUND" }), "network_error"],
    ["undici socket error", Object.assign(new Error("other side closed"), { code: "UND_ERR_SOCKET" }), "network_error"],
    ["plain Error", new Error("boom"), "network_error"],
    ["numeric code", Object.assign(new Error("x"), { code: 110 }), "network_error"],
    ["null", null, "network_error"],
    ["undefined", undefined, "network_error"],
    ["a string", "ETIMEDOUT", "network_error"],
  ];
  for (const [what, error, reason] of cases) {
    test(`${what} → ${reason}`, () => {
      assert.equal(isTimeoutError(error), reason === "timeout");
    });
  }
});
