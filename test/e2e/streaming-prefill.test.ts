/**
 * Issue 4, "Tests and evidence": continuation by prefill. On a route marked
 * `prefill: true`, a stream that failed after its first token and could not
 * be replayed (the replay diverged or was refused) is continued by sending
 * the original messages plus the partial answer as a trailing assistant
 * message; the client gets the whole answer once. A route whose upstream
 * rejects prefill (400) ends with the clean in-band error carrying the
 * ORIGINAL failure, never the 400. Routes without `prefill: true` are never
 * sent a trailing assistant message.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { chatBody, rawRequest, sseData, waitFor } from "../helpers/sdk.js";
import {
  assertComplete,
  assertInBandError,
  defaultMessages,
  gate,
  HOWS,
  prefillRejection,
  streamChat,
  streamGateway,
  words,
  type MidStreamFault,
  type StreamPlan,
} from "../helpers/stream-faults.js";

const T = { timeout: 30_000 };
const SLACK_MS = 2_500;
const A = "model-a";

const FIRST = "Prefill lets a provider continue exactly where the cut stream stopped, word for word.";
const OTHER = "A fresh generation that starts in a different way entirely.";
const PREFIX_PIECES = 5;
const PREFIX = words(FIRST).slice(0, PREFIX_PIECES).join("");
const PREFILL = "    prefill: true\n";
const midError = { message: "upstream overloaded while generating (mid-stream)", type: "server_error", code: "overloaded" };

function failingPlan(kind: MidStreamFault["do"]) {
  const open = gate();
  const plan: StreamPlan = { text: FIRST, fault: { at: PREFIX_PIECES, do: kind, gate: open.promise, ...(kind === "error" ? { error: midError } : {}) } };
  return { plan, onProgress: (text: string) => text === PREFIX && open.open() };
}

describe("continuation by prefill (route prefill: true, the upstream honours it)", () => {
  for (const how of HOWS) {
    test(`cut mid-stream, the replay diverges → prefill continues: the whole answer once, the upstream got exactly the partial text (${how})`, T, async (t) => {
      const { client, up } = await streamGateway(t, [A], { routeExtra: { [A]: PREFILL }, upstream: { [A]: { prefill: "honour" } } });
      const { plan, onProgress } = failingPlan("cut");
      // 1: the original, cut; 2: the replay, a different generation; 3: the prefill, which continues FIRST.
      up[A]!.next([plan, { text: OTHER }, { text: FIRST }]);

      const got = await streamChat(client, A, how, { onProgress });

      assertComplete(got, FIRST, how);
      assert.equal(up[A]!.count, 3);
      const [first, replay, prefill] = up[A]!.requests;
      assert.equal(replay!.prefill, undefined, "the replay (tried first) is the original request");
      assert.deepEqual(replay!.json, first!.json);
      assert.equal(prefill!.prefill, PREFIX, "the trailing assistant message is not exactly the text the client received");
      assert.deepEqual(prefill!.messages, [...defaultMessages, { role: "assistant", content: PREFIX }]);
      const { messages: _m, ...rest } = prefill!.json!;
      const { messages: _o, ...original } = first!.json!;
      assert.deepEqual(rest, original, "the prefill request changes nothing but the messages");
      assert.deepEqual([...new Set(got.chunks.map((chunk) => chunk.id))], [`chatcmpl-${A}-0`], "one completion id for the client");
      assert.equal(got.chunks.filter((chunk) => chunk.choices[0]?.delta?.role !== undefined).length, 1, "a second role delta");
      assert.ok(got.elapsed < SLACK_MS, `took ${got.elapsed} ms`);
    });
  }

  for (const how of HOWS) {
    test(`error event mid-stream, the replay is refused (503) → prefill continues the answer (${how})`, T, async (t) => {
      const { client, up } = await streamGateway(t, [A], { routeExtra: { [A]: PREFILL }, upstream: { [A]: { prefill: "honour" } } });
      const { plan, onProgress } = failingPlan("error");
      up[A]!.next([plan, { status: { status: 503 } }, { text: FIRST }]);

      const got = await streamChat(client, A, how, { onProgress });

      assertComplete(got, FIRST, how);
      assert.equal(up[A]!.count, 3);
      assert.equal(up[A]!.requests[1]!.prefill, undefined);
      assert.equal(up[A]!.requests[2]!.prefill, PREFIX);
    });
  }

  test("raw HTTP: the continuation's chunks follow the original (no second role, no error, one [DONE])", T, async (t) => {
    const { gw, up } = await streamGateway(t, [A], { routeExtra: { [A]: PREFILL }, upstream: { [A]: { prefill: "honour" } } });
    up[A]!.next([{ text: FIRST, fault: { at: PREFIX_PIECES, do: "cut" } }, { text: OTHER }, { text: FIRST }]);

    const res = await rawRequest(gw.url, { method: "POST", path: "/v1/chat/completions", headers: { "content-type": "application/json" }, body: chatBody(A, { stream: true }) });

    assert.equal(res.status, 200);
    const data = sseData(res.text);
    assert.equal(data[data.length - 1], "[DONE]");
    assert.equal(data.filter((d) => d === "[DONE]").length, 1);
    const chunks = data.slice(0, -1).map((d) => JSON.parse(d) as { error?: unknown; choices: { delta?: { role?: string; content?: string | null } }[] });
    assert.ok(chunks.every((chunk) => chunk.error === undefined));
    assert.equal(chunks.filter((chunk) => chunk.choices[0]?.delta?.role !== undefined).length, 1);
    assert.equal(chunks.map((chunk) => chunk.choices[0]?.delta?.content ?? "").join(""), FIRST);
    const partial = up[A]!.requests[2]!.prefill!;
    assert.ok(partial.length > 0 && FIRST.startsWith(partial), JSON.stringify(partial));
  });
});

describe("a route whose upstream rejects prefill", () => {
  for (const how of HOWS) {
    test(`prefill: true but the upstream answers 400 → the clean in-band error carries the original failure, not the 400 (${how})`, T, async (t) => {
      const { gw, client, up } = await streamGateway(t, [A], { routeExtra: { [A]: PREFILL }, upstream: { [A]: { prefill: "reject" } } });
      const { plan, onProgress } = failingPlan("error");
      up[A]!.next([plan]).otherwise({ text: OTHER });

      const got = await streamChat(client, A, how, { onProgress });

      const error = assertInBandError(got, FIRST);
      assert.equal(got.text, PREFIX);
      assert.match(error.message, /upstream overloaded while generating/, "the original failure is not in the error");
      assert.doesNotMatch(error.message, /prefill|400|invalid_request/i, "the prefill rejection became the client's error");
      assert.notEqual((error.error as { code?: unknown }).code, prefillRejection.code);
      assert.equal(up[A]!.count, 3, "the original, the replay, the refused prefill");
      assert.equal(up[A]!.requests[2]!.prefill, PREFIX);
      assert.ok(got.elapsed < SLACK_MS, `took ${got.elapsed} ms`);
      await waitFor(() => gw.logs.some((line) => line.event === "stream_recovery_refused"), "the refused recovery logged");
    });
  }
});

describe("a route without prefill", () => {
  for (const how of HOWS) {
    test(`is never sent a trailing assistant message: a diverged replay ends with the in-band error (${how})`, T, async (t) => {
      const { client, up } = await streamGateway(t, [A], { upstream: { [A]: { prefill: "honour" } } });
      const { plan, onProgress } = failingPlan("cut");
      up[A]!.next([plan]).otherwise({ text: OTHER });

      const got = await streamChat(client, A, how, { onProgress });

      assertInBandError(got, FIRST);
      assert.equal(got.text, PREFIX);
      assert.equal(up[A]!.count, 2);
      assert.ok(up[A]!.requests.every((request) => request.prefill === undefined));
    });
  }
});
