/**
 * Issue 4, "Tests and evidence": after the client has received content, a cut,
 * a stall, an error event or a clean end before the answer was complete is
 * either completed seamlessly by replay-and-verify (the upstream answers the
 * same again: the client gets the whole answer exactly once) or ends with an
 * in-band `data: {"error": …}` the SDK raises as APIError (the upstream
 * answers differently: the text received is a prefix of the first answer) —
 * never a shorter answer that ends normally. Read both ways with the openai
 * SDK (for await, finalChatCompletion); parallel tool-call deltas too.
 *
 * A mid-stream fault waits on a gate the test opens once the SDK has yielded
 * the first PREFIX_PIECES pieces, so "what the client had" is exact.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type OpenAI from "openai";
import { within } from "../helpers/faults.js";
import { chatBody, rawRequest, sseData } from "../helpers/sdk.js";
import {
  assertComplete,
  assertInBandError,
  gate,
  HOWS,
  streamChat,
  streamGateway,
  words,
  type MidStreamFault,
  type StreamPlan,
  type ToolCallSpec,
} from "../helpers/stream-faults.js";

const T = { timeout: 30_000 };
const TOL = 5;
const SLACK_MS = 2_500;
const A = "model-a";
const B = "model-b";

const FIRST = "The quick brown fox jumps over the lazy dog, and then it runs away.";
const OTHER = "Something else entirely comes out of the second generation.";
const PREFIX_PIECES = 4;
const PREFIX = words(FIRST).slice(0, PREFIX_PIECES).join("");
const IDLE = "    timeouts:\n      idleMs: 300\n";

type Kind = MidStreamFault["do"];
const faultKinds: readonly { kind: Kind; what: string; route?: string }[] = [
  { kind: "cut", what: "a cut (socket destroyed)" },
  { kind: "stall", what: "a stall past idleMs (300)", route: IDLE },
  { kind: "error", what: "an error event" },
  { kind: "end", what: "a clean end without finish_reason or [DONE]" },
];

/** The first answer fails after PREFIX_PIECES pieces, once the client has them. */
function failingPlan(kind: Kind, text = FIRST) {
  const open = gate();
  const plan: StreamPlan = { text, fault: { at: PREFIX_PIECES, do: kind, gate: open.promise } };
  const onProgress = (got: string) => {
    if (got === PREFIX) open.open();
  };
  return { plan, onProgress, gate: open };
}

describe("a failure after the first token, deterministic upstream → replay-and-verify completes the answer", () => {
  for (const { kind, what, route } of faultKinds) {
    for (const how of HOWS) {
      test(`${what} after ${PREFIX_PIECES} pieces → exactly the full text once; the upstream saw 2 identical requests (${how})`, T, async (t) => {
        const { gw, client, up } = await streamGateway(t, [A], { routeExtra: route ? { [A]: route } : {} });
        const { plan, onProgress, gate: opened } = failingPlan(kind);
        up[A]!.next([plan, { text: FIRST }]);

        const got = await streamChat(client, A, how, { onProgress });

        assert.ok(opened.opened, "the client never received the first pieces while the first stream was live");
        assertComplete(got, FIRST, how);
        assert.equal(up[A]!.count, 2);
        const [first, replay] = up[A]!.requests;
        assert.deepEqual(replay!.json, first!.json, "a replay is the original request");
        assert.equal(replay!.prefill, undefined);
        // One completion for the client: every chunk keeps the first stream's id, and one role.
        assert.deepEqual([...new Set(got.chunks.map((chunk) => chunk.id))], [`chatcmpl-${A}-0`]);
        assert.equal(got.chunks.filter((chunk) => chunk.choices[0]?.delta?.role !== undefined).length, 1, "a second role delta");
        assert.equal(got.chunks.filter((chunk) => chunk.choices[0]?.finish_reason).length, 1, "one finish_reason");
        if (how === "finalChatCompletion") assert.equal(got.final?.id, `chatcmpl-${A}-0`);
        const floor = kind === "stall" ? 300 - TOL : 0;
        assert.ok(got.elapsed >= floor && got.elapsed < floor + SLACK_MS, `took ${got.elapsed} ms`);
        if (kind === "stall") {
          await within(first!.ended, 2_000, "the stalled upstream request closing");
          assert.equal(first!.aborted, true, "the stalled stream was not closed by the gateway");
        }
        const failures = gw.logs.filter((line) => line.event === "stream_failure");
        assert.equal(failures.length, 1, JSON.stringify(failures));
      });
    }
  }

  for (const how of HOWS) {
    test(`OpenAI's obfuscation padding, another string in every chunk: a cut after ${PREFIX_PIECES} pieces, the replay (other padding) → exactly the full text once, the padding relayed (${how})`, T, async (t) => {
      // The relay reads chunks of one shape without a parse: the padding is part of the shape, its value is not.
      const { client, up } = await streamGateway(t, [A]);
      const { plan, onProgress } = failingPlan("cut");
      up[A]!.next([{ ...plan, obfuscation: true }, { text: FIRST, obfuscation: true }]);

      const got = await streamChat(client, A, how, { onProgress });

      assertComplete(got, FIRST, how);
      assert.equal(up[A]!.count, 2);
      const pads = got.chunks.map((chunk) => (chunk as { obfuscation?: unknown }).obfuscation);
      assert.ok(pads.slice(0, PREFIX_PIECES).every((pad) => typeof pad === "string" && pad.includes(`${A}\\0-`)), `the first stream's padding: ${JSON.stringify(pads)}`);
    });
  }

  for (const how of HOWS) {
    test(`the replay is tokenized differently (one character per event) → still verified, no duplicated prefix (${how})`, T, async (t) => {
      const { client, up } = await streamGateway(t, [A]);
      const { plan, onProgress } = failingPlan("cut");
      up[A]!.next([plan, { pieces: [...FIRST] }]);

      const got = await streamChat(client, A, how, { onProgress });

      assertComplete(got, FIRST, how);
      assert.equal(up[A]!.count, 2);
    });
  }

  for (const how of HOWS) {
    test(`a stall behind keep-alive comments (every 50 ms) is still a stall: after idleMs (300) the replay completes the answer (${how})`, T, async (t) => {
      const { client, up } = await streamGateway(t, [A], { routeExtra: { [A]: IDLE } });
      const open = gate();
      up[A]!.next([{ text: FIRST, fault: { at: PREFIX_PIECES, do: "stall", gate: open.promise, pingMs: 50 } }, { text: FIRST }]);

      const got = await streamChat(client, A, how, { onProgress: (text) => text === PREFIX && open.open() });

      assertComplete(got, FIRST, how);
      assert.equal(up[A]!.count, 2);
      assert.ok(up[A]!.requests[0]!.written.filter((event) => event.startsWith(":")).length >= 2, "the mock sent no keep-alive comments");
      assert.ok(got.elapsed >= 300 - TOL && got.elapsed < 300 + SLACK_MS, `took ${got.elapsed} ms`);
      await within(up[A]!.requests[0]!.ended, 2_000, "the stalled upstream request closing");
      assert.equal(up[A]!.requests[0]!.aborted, true);
    });
  }

  test("auto: the replay runs on the model that answered; the other candidate is not involved", T, async (t) => {
    const { client, up } = await streamGateway(t, [A, B]);
    const { plan, onProgress } = failingPlan("cut");
    up[A]!.next([plan, { text: FIRST }]);

    const got = await streamChat(client, "auto", "for-await", { onProgress });

    assertComplete(got, FIRST, "for-await");
    assert.equal(up[A]!.count, 2);
    assert.equal(up[B]!.count, 0);
    assert.ok(got.chunks.every((chunk) => chunk.model === A));
  });

  test("the same model refuses the replay (503), the next candidate replays the same answer → completed", T, async (t) => {
    const { client, up } = await streamGateway(t, [A, B]);
    const { plan, onProgress } = failingPlan("cut");
    up[A]!.next([plan, { status: { status: 503 } }]);
    up[B]!.next([{ text: FIRST }]);

    const got = await streamChat(client, "auto", "for-await", { onProgress });

    assertComplete(got, FIRST, "for-await");
    assert.equal(up[A]!.count, 2);
    assert.equal(up[B]!.count, 1);
    assert.equal(up[B]!.requests[0]!.model, B, "the next candidate gets its own model name");
    assert.equal(up[B]!.requests[0]!.prefill, undefined);
  });

  test("include_usage after a replay: exactly one usage chunk (the answering attempt's), the upstream's model", T, async (t) => {
    const { client, up } = await streamGateway(t, [A], { upstream: { [A]: { servedModel: (m) => `${m}-2025-01-01` } } });
    const { plan, onProgress } = failingPlan("cut");
    up[A]!.next([plan, { text: FIRST }]);

    const got = await streamChat(client, A, "for-await", { onProgress, extra: { stream_options: { include_usage: true } } });

    assertComplete(got, FIRST, "for-await");
    const usage = got.chunks.filter((chunk) => chunk.usage);
    assert.equal(usage.length, 1);
    assert.equal(usage[0]!.usage!.completion_tokens, words(FIRST).length);
    assert.ok(got.chunks.every((chunk) => chunk.model === `${A}-2025-01-01`), got.chunks.map((c) => c.model).join(","));
    assert.equal(up[A]!.requests[1]!.json?.stream_options && (up[A]!.requests[1]!.json.stream_options as Record<string, unknown>).include_usage, true);
  });
});

describe("a failure after the first token, the upstream answers differently on the retry → a clean in-band error", () => {
  for (const { kind, what, route } of faultKinds) {
    for (const how of HOWS) {
      test(`${what} after ${PREFIX_PIECES} pieces, diverging replay → APIError; the client has exactly the prefix it got (${how})`, T, async (t) => {
        const { client, up } = await streamGateway(t, [A], { routeExtra: route ? { [A]: route } : {} });
        const { plan, onProgress } = failingPlan(kind);
        up[A]!.next([plan]).otherwise({ text: OTHER });

        const got = await streamChat(client, A, how, { onProgress });

        const error = assertInBandError(got, FIRST);
        assert.equal(got.text, PREFIX, "the client got more or less than was sent before the failure");
        assert.equal(up[A]!.count, 2, "one replay, no more");
        if (kind === "error") assert.match(error.message, /overloaded/, "the upstream's reason is in the error");
        const floor = kind === "stall" ? 300 - TOL : 0;
        assert.ok(got.elapsed >= floor && got.elapsed < floor + SLACK_MS, `took ${got.elapsed} ms`);
        await within(up[A]!.requests[1]!.ended, 2_000, "the diverged replay closing");
      });
    }
  }

  test("raw HTTP: after a diverged replay the body ends with the error event, no [DONE], and nothing of the second answer", T, async (t) => {
    const { gw, up } = await streamGateway(t, [A]);
    up[A]!.next([{ text: FIRST, fault: { at: PREFIX_PIECES, do: "cut" } }]).otherwise({ text: OTHER });

    const res = await rawRequest(gw.url, { method: "POST", path: "/v1/chat/completions", headers: { "content-type": "application/json" }, body: chatBody(A, { stream: true }) });

    assert.equal(res.status, 200);
    const data = sseData(res.text);
    const last = JSON.parse(data[data.length - 1]!) as { error?: { message?: unknown; type?: unknown; code?: unknown } };
    assert.ok(last.error && typeof last.error.message === "string" && typeof last.error.type === "string" && typeof last.error.code === "string", data[data.length - 1]);
    assert.ok(!data.includes("[DONE]"), "an interrupted stream must not end with [DONE]");
    const text = data
      .slice(0, -1)
      .map((d) => (JSON.parse(d) as OpenAI.ChatCompletionChunk).choices[0]?.delta?.content ?? "")
      .join("");
    assert.ok(FIRST.startsWith(text) && text.length < FIRST.length, JSON.stringify(text));
    assert.ok(!res.text.includes(OTHER.split(" ")[0]!), "the second generation leaked to the client");
  });

  test("auto: a diverged replay is not retried on another model (its text would not continue this one)", T, async (t) => {
    const { client, up } = await streamGateway(t, [A, B]);
    const { plan, onProgress } = failingPlan("cut");
    up[A]!.next([plan]).otherwise({ text: OTHER });
    up[B]!.otherwise({ text: OTHER });

    const got = await streamChat(client, "auto", "for-await", { onProgress });

    assertInBandError(got, FIRST);
    assert.equal(got.text, PREFIX);
    assert.equal(up[A]!.count + up[B]!.count, 2, "one replay in all");
  });

  test("every replay fails too → an in-band error within the recovery budget, never a hang", T, async (t) => {
    const { client, up } = await streamGateway(t, [A]);
    const { plan, onProgress } = failingPlan("cut");
    up[A]!.next([plan]).otherwise({ text: FIRST, fault: { at: 1, do: "cut" } });

    const got = await streamChat(client, A, "for-await", { onProgress });

    assertInBandError(got, FIRST);
    assert.ok(up[A]!.count >= 2 && up[A]!.count <= 3, `${up[A]!.count} requests: recoveries are bounded`);
    assert.ok(got.elapsed < SLACK_MS, `took ${got.elapsed} ms`);
  });
});

// ---------------------------------------------------------------------------
// Parallel tool calls.

const CALLS: readonly ToolCallSpec[] = [
  { id: "call_weather_7Hq2", name: "get_weather", args: ['{"city"', ': "Par', 'is", "unit"', ': "celsius"}'] },
  { id: "call_time_9Zx4", name: "get_time", args: ['{"time', 'zone": "Eu', "rope/Pa", 'ris"}'] },
];
/** Interleaved: each call's first delta carries id, type and name; arguments arrive in several pieces. */
const ORDER: readonly (readonly [number, number])[] = [
  [0, 0],
  [1, 0],
  [0, 1],
  [1, 1],
  [0, 2],
  [1, 2],
  [0, 3],
  [1, 3],
];
/** Deltas sent before the cut: the middle of call 1's arguments ("{\"time" + "zone\": \"Eu" sent, the rest not). */
const TOOL_PREFIX = 4;
const toolPlan = (fault?: MidStreamFault): StreamPlan => ({ tools: { calls: CALLS, order: ORDER }, ...(fault ? { fault } : {}) });
const tools = [
  { type: "function", function: { name: "get_weather", parameters: { type: "object", properties: { city: { type: "string" }, unit: { type: "string" } } } } },
  { type: "function", function: { name: "get_time", parameters: { type: "object", properties: { timezone: { type: "string" } } } } },
];

function assertToolCalls(calls: readonly { id?: string | undefined; type?: string | undefined; name: string; args: string }[]): void {
  assert.equal(calls.length, 2, JSON.stringify(calls));
  CALLS.forEach((spec, index) => {
    const call = calls[index]!;
    assert.equal(call.id, spec.id, `tool call ${index} id`);
    assert.equal(call.type, "function");
    assert.equal(call.name, spec.name, `tool call ${index} name (duplicated or missing)`);
    assert.equal(call.args, spec.args.join(""), `tool call ${index} arguments`);
    assert.doesNotThrow(() => JSON.parse(call.args));
  });
}

describe("parallel tool-call deltas survive replay-and-verify", () => {
  for (const how of HOWS) {
    test(`cut in the middle of the second call's arguments, deterministic replay → both calls complete, original ids (${how})`, T, async (t) => {
      const { client, up } = await streamGateway(t, [A]);
      const open = gate();
      up[A]!.next([toolPlan({ at: TOOL_PREFIX, do: "cut", gate: open.promise }), toolPlan()]);

      const got = await streamChat(client, A, how, {
        extra: { tools, tool_choice: "auto", parallel_tool_calls: true },
        onProgress: (_text, chunks) => {
          if (chunks.filter((chunk) => chunk.choices[0]?.delta?.tool_calls).length === TOOL_PREFIX) open.open();
        },
      });

      assert.ok(open.opened, "the client never received the first tool-call deltas while the first stream was live");
      assert.equal(got.error, undefined, `the SDK raised ${String(got.error)}`);
      assertToolCalls(got.toolCalls);
      if (how === "finalChatCompletion") {
        const message = got.final!.choices[0]!.message;
        assert.equal(got.final!.choices[0]!.finish_reason, "tool_calls");
        assertToolCalls(
          (message.tool_calls ?? []).map((call) => {
            assert.equal(call.type, "function");
            const fn = (call as OpenAI.ChatCompletionMessageFunctionToolCall).function;
            return { id: call.id, type: call.type, name: fn.name, args: fn.arguments };
          }),
        );
      }
      assert.equal(up[A]!.count, 2);
      assert.deepEqual(up[A]!.requests[1]!.json, up[A]!.requests[0]!.json);
    });
  }

  test("raw HTTP: no tool-call delta is duplicated — one id/name per call, arguments exactly once", T, async (t) => {
    const { gw, up } = await streamGateway(t, [A]);
    up[A]!.next([toolPlan({ at: TOOL_PREFIX, do: "cut" }), toolPlan()]);

    const res = await rawRequest(gw.url, {
      method: "POST",
      path: "/v1/chat/completions",
      headers: { "content-type": "application/json" },
      body: chatBody(A, { stream: true, tools, tool_choice: "auto" }),
    });

    assert.equal(res.status, 200);
    const data = sseData(res.text);
    assert.equal(data[data.length - 1], "[DONE]");
    assert.equal(data.filter((d) => d === "[DONE]").length, 1);
    const chunks = data.slice(0, -1).map((d) => JSON.parse(d) as OpenAI.ChatCompletionChunk & { error?: unknown });
    assert.ok(chunks.every((chunk) => chunk.error === undefined), "an error event in a recovered stream");
    const deltas = chunks.flatMap((chunk) => chunk.choices.flatMap((choice) => choice.delta?.tool_calls ?? []));
    const byIndex = (index: number) => deltas.filter((delta) => delta.index === index);
    const calls = CALLS.map((spec, index) => {
      const own = byIndex(index);
      assert.equal(own.filter((d) => d.id !== undefined).length, 1, `call ${index}: id sent ${own.filter((d) => d.id).length} times`);
      assert.equal(own.filter((d) => d.function?.name !== undefined).length, 1, `call ${index}: name sent more than once`);
      assert.equal(own[0]!.id, spec.id, `call ${index}: its first delta must carry the id`);
      assert.equal(own[0]!.function?.name, spec.name);
      return {
        id: own.find((d) => d.id)?.id,
        type: own.find((d) => d.type)?.type,
        name: own.map((d) => d.function?.name ?? "").join(""),
        args: own.map((d) => d.function?.arguments ?? "").join(""),
      };
    });
    assertToolCalls(calls);
    assert.deepEqual(
      deltas.map((d) => d.index).filter((index) => index !== 0 && index !== 1),
      [],
      "tool-call indices outside 0..1",
    );
    assert.equal(chunks.filter((chunk) => chunk.choices[0]?.finish_reason === "tool_calls").length, 1);
    assert.equal(up[A]!.count, 2);
  });

  test("the replay names another function → in-band error, the calls received are a prefix", T, async (t) => {
    const { client, up } = await streamGateway(t, [A]);
    const open = gate();
    const other: ToolCallSpec[] = [CALLS[0]!, { ...CALLS[1]!, name: "get_date" }];
    up[A]!.next([toolPlan({ at: TOOL_PREFIX, do: "cut", gate: open.promise }), { tools: { calls: other, order: ORDER } }]);

    const got = await streamChat(client, A, "for-await", {
      extra: { tools, tool_choice: "auto" },
      onProgress: (_text, chunks) => {
        if (chunks.filter((chunk) => chunk.choices[0]?.delta?.tool_calls).length === TOOL_PREFIX) open.open();
      },
    });

    assertInBandError(got, undefined);
    assert.equal(got.toolCalls.length, 2);
    assert.equal(got.toolCalls[1]!.name, "get_time");
    assert.ok(CALLS[1]!.args.join("").startsWith(got.toolCalls[1]!.args) && got.toolCalls[1]!.args.length < CALLS[1]!.args.join("").length);
  });
});

describe("the client leaves mid-stream", () => {
  test("the upstream stream is closed at once, and no replay is started", T, async (t) => {
    const { client, up } = await streamGateway(t, [A]);
    up[A]!.otherwise({ text: FIRST, fault: { at: PREFIX_PIECES, do: "stall" } });

    let text = "";
    const stream = await client.chat.completions.create({ model: A, messages: [{ role: "user", content: "Hi" }], stream: true });
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta?.content ?? "";
      if (text === PREFIX) break; // the SDK aborts the request
    }

    assert.equal(text, PREFIX);
    await within(up[A]!.requests[0]!.ended, 2_000, "the upstream request closing after the client left");
    assert.equal(up[A]!.requests[0]!.aborted, true);
    assert.equal(up[A]!.count, 1, "a replay for a client that left");
  });
});
