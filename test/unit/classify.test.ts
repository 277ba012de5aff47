import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { bodyStatus, isTimeoutError } from "../../src/upstream/classify.js";
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
