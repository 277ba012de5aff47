/**
 * Issue 4, "Tests and evidence": what the gateway does with the events of a
 * healthy-looking stream. Events that are not JSON are dropped (never reach
 * the client), counted and logged; a stream that ends without `data: [DONE]`
 * but with its finish_reason ends promptly for the client, complete, with a
 * [DONE] added; `stream_options.include_usage` is forwarded and the usage
 * chunk relayed; the `model` field is the upstream's, never "auto".
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { chatBody, rawRequest, sseData, waitFor } from "../helpers/sdk.js";
import { assertComplete, HOWS, INVALID_EVENT, SHAPED_INVALID_TEXT, streamChat, streamGateway, words } from "../helpers/stream-faults.js";

const T = { timeout: 30_000 };
const SLACK_MS = 2_500;
const A = "model-a";
const B = "model-b";
const TEXT = "Seven words of a healthy streamed answer.";

const post = (url: string, model: string, extra: Record<string, unknown> = {}) =>
  rawRequest(url, { method: "POST", path: "/v1/chat/completions", headers: { "content-type": "application/json" }, body: chatBody(model, { stream: true, ...extra }) });

describe("an event that is not JSON", () => {
  const places = [
    { where: "among good events (after 3 pieces)", at: [3] },
    { where: "twice, mid-stream and just before the finish", at: [2, words(TEXT).length] },
    { where: "before the first token", at: [0] },
  ] as const;
  for (const { where, at } of places) {
    for (const how of HOWS) {
      test(`${where} → dropped, the rest of the answer arrives, a malformed_events warning is logged (${how})`, T, async (t) => {
        const { gw, client, up } = await streamGateway(t, [A]);
        up[A]!.otherwise({ text: TEXT, invalidAt: at });

        const got = await streamChat(client, A, how);

        assertComplete(got, TEXT, how);
        assert.equal(up[A]!.count, 1, "a malformed event is not a failure: no replay");
        assert.equal(up[A]!.requests[0]!.written.filter((event) => event === INVALID_EVENT).length, at.length, "the mock did not send the invalid event");
        // Written as the stream ends: a short bounded poll, not a sleep.
        const line = await waitFor(() => gw.logs.find((entry) => entry.event === "malformed_events"), "a malformed_events warning", 3_000);
        assert.equal(line.count, at.length);
        assert.equal(line.level, 40, "logged as a warning");
      });
    }
  }

  for (const how of HOWS) {
    test(`a chunk like the others but for a raw quote in its text, after 3 pieces → dropped like any other (${how})`, T, async (t) => {
      // The relay reads chunks of the stream's shape without a parse: this one looks like them at both ends.
      const { gw, client, up } = await streamGateway(t, [A]);
      up[A]!.otherwise({ text: TEXT, invalidAt: [3, 5], invalidShaped: true });

      const got = await streamChat(client, A, how);

      assertComplete(got, TEXT, how);
      assert.equal(up[A]!.requests[0]!.written.filter((event) => event.includes(SHAPED_INVALID_TEXT)).length, 2, "the mock did not send the invalid events");
      const line = await waitFor(() => gw.logs.find((entry) => entry.event === "malformed_events"), "a malformed_events warning", 3_000);
      assert.equal(line.count, 2);
    });
  }

  test("raw HTTP: the invalid event never reaches the client; every other event does, in order", T, async (t) => {
    const { gw, up } = await streamGateway(t, [A]);
    up[A]!.otherwise({ text: TEXT, invalidAt: [0, 3] });

    const res = await post(gw.url, A);

    assert.equal(res.status, 200);
    assert.ok(!res.text.includes("{not json"), res.text);
    const expected = up[A]!.requests[0]!.written.filter((event) => event !== INVALID_EVENT).join("");
    assert.equal(res.text, expected, "the good events are relayed byte for byte");
  });
});

describe("a stream without data: [DONE]", () => {
  for (const how of HOWS) {
    test(`with its finish_reason, then the body ends → the client gets the complete answer promptly (${how})`, T, async (t) => {
      // idleMs 20 s: an end noticed by a timeout would take 20 s.
      const { gw, client, up } = await streamGateway(t, [A], { yaml: "timeouts:\n  idleMs: 20000\n" });
      up[A]!.otherwise({ text: TEXT, omitDone: true });

      const got = await streamChat(client, A, how);

      assertComplete(got, TEXT, how);
      assert.equal(up[A]!.count, 1, "a complete answer is not replayed");
      assert.ok(got.elapsed < SLACK_MS, `took ${got.elapsed} ms: the end was not noticed at once`);
      assert.ok(!gw.logs.some((line) => line.event === "stream_failure"), "a complete stream was treated as a failure");
    });
  }

  test("raw HTTP: the gateway adds the [DONE] the upstream left out, once, at the end", T, async (t) => {
    const { gw, up } = await streamGateway(t, [A], { yaml: "timeouts:\n  idleMs: 20000\n" });
    up[A]!.otherwise({ text: TEXT, omitDone: true });
    const started = performance.now();

    const res = await post(gw.url, A, { stream_options: { include_usage: true } });

    assert.ok(performance.now() - started < SLACK_MS);
    assert.equal(res.status, 200);
    assert.ok(!up[A]!.requests[0]!.written.some((event) => event.includes("[DONE]")));
    const data = sseData(res.text);
    assert.deepEqual(data.filter((d) => d === "[DONE]").length, 1);
    assert.equal(data[data.length - 1], "[DONE]");
    assert.ok(res.text.endsWith("data: [DONE]\n\n"));
    assert.equal(res.text, `${up[A]!.requests[0]!.written.join("")}data: [DONE]\n\n`, "everything else relayed unchanged");
  });

  for (const how of HOWS) {
    test(`with its finish_reason, then silence with the socket open (idleMs 300) → the complete answer, its end not sent twice (${how})`, T, async (t) => {
      const { client, up } = await streamGateway(t, [A], { routeExtra: { [A]: "    timeouts:\n      idleMs: 300\n" } });
      up[A]!.next([{ text: TEXT, fault: { at: "finish", do: "stall" } }]).otherwise({ text: TEXT });

      const got = await streamChat(client, A, how);

      assertComplete(got, TEXT, how);
      assert.equal(got.chunks.filter((chunk) => chunk.choices[0]?.finish_reason).length, 1, "finish_reason sent twice");
      assert.ok(got.elapsed < 300 + SLACK_MS, `took ${got.elapsed} ms`);
      await waitFor(() => up[A]!.requests[0]!.endedAt !== undefined, "the silent upstream request closing", 3_000);
      assert.equal(up[A]!.requests[0]!.aborted, true);
    });
  }

  for (const how of HOWS) {
    test(`without a finish_reason either, and the upstream answers the same again → completed by replay (${how})`, T, async (t) => {
      const { client, up } = await streamGateway(t, [A]);
      up[A]!.next([{ text: TEXT, omitFinish: true, omitDone: true }, { text: TEXT }]);

      const got = await streamChat(client, A, how);

      assertComplete(got, TEXT, how);
      assert.equal(up[A]!.count, 2);
    });
  }
});

describe("usage and model", () => {
  for (const how of HOWS) {
    test(`auto: include_usage is forwarded, the usage chunk reaches the SDK, and model is the upstream's (${how})`, T, async (t) => {
      const { client, up } = await streamGateway(t, [A, B], { upstream: { [A]: { servedModel: (m) => `${m}-2025-06-01` } } });
      up[A]!.otherwise({ text: TEXT });

      const got = await streamChat(client, "auto", how, { extra: { stream_options: { include_usage: true } } });

      assertComplete(got, TEXT, how);
      assert.equal(up[A]!.count, 1);
      assert.equal(up[B]!.count, 0);
      assert.deepEqual(up[A]!.requests[0]!.json?.stream_options, { include_usage: true }, "stream_options not forwarded");
      assert.equal(up[A]!.requests[0]!.model, A);
      const expectedUsage = { prompt_tokens: 9, completion_tokens: words(TEXT).length, total_tokens: 9 + words(TEXT).length };
      const usage = got.chunks.filter((chunk) => chunk.usage);
      assert.equal(usage.length, 1, "one usage chunk");
      assert.deepEqual(usage[0]!.usage, expectedUsage);
      assert.deepEqual(usage[0]!.choices, []);
      assert.ok(got.chunks.indexOf(usage[0]!) === got.chunks.length - 1, "the usage chunk is the last");
      for (const chunk of got.chunks) assert.equal(chunk.model, `${A}-2025-06-01`, "the model field was rewritten");
      if (how === "finalChatCompletion") {
        assert.deepEqual(got.final!.usage, expectedUsage);
        assert.equal(got.final!.model, `${A}-2025-06-01`);
      }
    });
  }

  test("a pinned model: the model field stays the upstream's too, and no usage chunk unless asked", T, async (t) => {
    const { client, up } = await streamGateway(t, [A], { upstream: { [A]: { servedModel: (m) => `${m}-0613` } } });
    up[A]!.otherwise({ text: TEXT });
    const got = await streamChat(client, A, "for-await");
    assertComplete(got, TEXT, "for-await");
    assert.ok(got.chunks.every((chunk) => chunk.model === `${A}-0613`));
    assert.equal(got.chunks.filter((chunk) => chunk.usage).length, 0);
    assert.equal(up[A]!.requests[0]!.json?.stream_options, undefined);
  });
});
