import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import Anthropic, { APIError as AnthropicAPIError } from "@anthropic-ai/sdk";
import OpenAI, { APIError as OpenAIAPIError } from "openai";
import { SseParser } from "../../src/stream/sse.js";
import { ChatToMessagesStream, MessagesToChatStream, encodeAnthropicEvent, type AnthropicEvent } from "../../src/compat/anthropic/stream.js";
import { providerToolIdOf } from "../../src/compat/anthropic/response.js";

type Json = Record<string, unknown>;

/** The test sources' fixtures, seen from build-<id>/test/unit/. */
const FIXTURES = new URL("../../../test/fixtures/compat/stream/", import.meta.url);

const read = (name: string) => readFileSync(new URL(name, FIXTURES));

/** The data events of a recorded SSE stream, with their names. */
function sseEvents(name: string): { event: string | undefined; data: string }[] {
  const parser = new SseParser();
  const bytes = read(name);
  return [...parser.push(bytes), ...parser.end()].flatMap((e) => (e.data === undefined ? [] : [{ event: e.event, data: e.data }]));
}

/** An Anthropic event stream as the client would parse it. */
function anthropicEvents(name: string): AnthropicEvent[] {
  return sseEvents(name).map((e) => ({ event: e.event ?? "", data: JSON.parse(e.data) as Json }));
}

interface ChatCase {
  readonly name: string;
  readonly options: { model: string; stopSequences?: readonly string[]; inputTokens?: number };
}

const CHAT_CASES: readonly ChatCase[] = [
  { name: "text", options: { model: "claude-sonnet-4-5" } },
  { name: "empty", options: { model: "claude-sonnet-4-5", inputTokens: 12 } },
  { name: "one-tool", options: { model: "claude-sonnet-4-5" } },
  { name: "text-then-two-tools", options: { model: "claude-opus-4-1" } },
  { name: "parallel-interleaved", options: { model: "claude-sonnet-4-5" } },
  { name: "no-usage", options: { model: "claude-haiku-4-5", inputTokens: 9 } },
  { name: "length", options: { model: "claude-haiku-4-5" } },
  { name: "stop-sequence", options: { model: "claude-haiku-4-5", stopSequences: ["###", "END"] } },
];

/** The chunks of an OpenAI upstream stream; `[DONE]` ends it as the relay does. */
function translateChat(c: ChatCase): AnthropicEvent[] {
  const translator = new ChatToMessagesStream(c.options);
  const out: AnthropicEvent[] = [];
  for (const e of sseEvents(`${c.name}.chat.sse`)) {
    if (e.data.trim() === "[DONE]") out.push(...translator.end());
    else out.push(...translator.push(JSON.parse(e.data) as Json));
  }
  // The relay also calls end() when the body ends: after [DONE] it must add nothing.
  out.push(...translator.end());
  return out;
}

/** What the OpenAI stream said, accumulated: text and each tool call's id, name and arguments. */
function chatFacts(name: string): { text: string; calls: Map<number, { id: string; name: string; args: string }>; usage: Json | undefined } {
  let text = "";
  const calls = new Map<number, { id: string; name: string; args: string }>();
  let usage: Json | undefined;
  for (const e of sseEvents(`${name}.chat.sse`)) {
    if (e.data.trim() === "[DONE]") continue;
    const chunk = JSON.parse(e.data) as Json;
    if (chunk.usage) usage = chunk.usage as Json;
    for (const choice of (chunk.choices as Json[]) ?? []) {
      const delta = (choice.delta as Json) ?? {};
      if (typeof delta.content === "string") text += delta.content;
      for (const call of (delta.tool_calls as Json[] | undefined) ?? []) {
        const fn = (call.function as Json) ?? {};
        const known = calls.get(call.index as number) ?? { id: "", name: "", args: "" };
        if (typeof call.id === "string") known.id = call.id;
        if (typeof fn.name === "string") known.name = fn.name;
        if (typeof fn.arguments === "string") known.args += fn.arguments;
        calls.set(call.index as number, known);
      }
    }
  }
  return { text, calls, usage };
}

/** A Response whose body is `text`, delivered in small pieces (as a network would). */
function sseResponse(text: string): Response {
  const bytes = Buffer.from(text);
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      for (let i = 0; i < bytes.length; i += 37) controller.enqueue(new Uint8Array(bytes.subarray(i, i + 37)));
      controller.close();
    },
  });
  return new Response(body, { status: 200, headers: { "content-type": "text/event-stream" } });
}

/** The official Anthropic SDK, reading `sse` as its stream's body. */
function anthropicClient(sse: string): Anthropic {
  return new Anthropic({ apiKey: "test", baseURL: "http://gateway.test", maxRetries: 0, fetch: async () => sseResponse(sse) });
}

async function sdkFinalMessage(sse: string) {
  const stream = anthropicClient(sse).messages.stream({ model: "gateway-test", max_tokens: 100, messages: [{ role: "user", content: "hi" }] });
  return stream.finalMessage();
}

/** The official OpenAI SDK, reading `chunks` (then [DONE]) as its stream's body. */
function openaiClient(chunks: readonly Json[]): OpenAI {
  const sse = chunks.map((c) => `data: ${JSON.stringify(c)}\n\n`).join("") + "data: [DONE]\n\n";
  return new OpenAI({ apiKey: "test", baseURL: "http://gateway.test/v1", maxRetries: 0, fetch: async () => sseResponse(sse) });
}

async function sdkFinalChatCompletion(chunks: readonly Json[]) {
  const stream = openaiClient(chunks).chat.completions.stream({ model: "gpt-4o", messages: [{ role: "user", content: "hi" }], stream_options: { include_usage: true } });
  return stream.finalChatCompletion();
}

// ---------------------------------------------------------------------------

describe("ChatToMessagesStream: golden streams", () => {
  for (const c of CHAT_CASES) {
    test(c.name, () => {
      assert.deepEqual(translateChat(c), anthropicEvents(`${c.name}.anthropic.sse`));
    });
  }
});

describe("ChatToMessagesStream: every golden stream is a well-formed Anthropic stream", () => {
  for (const c of CHAT_CASES) {
    test(c.name, () => {
      const events = translateChat(c);
      const facts = chatFacts(c.name);
      assert.equal(events[0]?.event, "message_start");
      assert.equal(events.at(-1)?.event, "message_stop");
      assert.equal(events.filter((e) => e.event === "message_start").length, 1);
      assert.equal(events.filter((e) => e.event === "message_stop").length, 1);
      for (const e of events) assert.equal(e.data.type, e.event, "the data's type names the event");

      // Blocks: indices 0..n-1, each started once, deltas only into the open one, stopped once, in order.
      let open: number | undefined;
      let next = 0;
      const blocks: { type: string; id?: string; name?: string; text: string; json: string }[] = [];
      for (const e of events) {
        if (e.event === "content_block_start") {
          assert.equal(open, undefined, "one block open at a time");
          assert.equal(e.data.index, next);
          const block = e.data.content_block as Json;
          blocks.push({ type: block.type as string, id: block.id as string | undefined, name: block.name as string | undefined, text: "", json: "" });
          open = next++;
        } else if (e.event === "content_block_delta") {
          assert.equal(e.data.index, open, "a delta goes into the open block");
          const delta = e.data.delta as Json;
          const block = blocks[open as number];
          assert.ok(block);
          if (delta.type === "text_delta") {
            assert.equal(block.type, "text");
            assert.ok((delta.text as string).length > 0, "no empty text deltas");
            block.text += delta.text as string;
          } else {
            assert.equal(delta.type, "input_json_delta");
            assert.equal(block.type, "tool_use");
            block.json += delta.partial_json as string;
          }
        } else if (e.event === "content_block_stop") {
          assert.equal(e.data.index, open, "the open block is the one stopped");
          open = undefined;
        } else {
          assert.equal(open, undefined, `${e.event} with a block open`);
        }
      }

      // Tool blocks carry each call whole: id, name and arguments that parse to what was sent.
      const tools = blocks.filter((b) => b.type === "tool_use");
      assert.equal(tools.length, facts.calls.size);
      for (const call of facts.calls.values()) {
        const block = tools.find((b) => b.id === call.id);
        assert.ok(block, `a block for ${call.id}`);
        assert.equal(block.name, call.name);
        assert.deepEqual(JSON.parse(block.json || "{}"), JSON.parse(call.args || "{}"));
      }
      assert.equal(blocks.filter((b) => b.type === "text").map((b) => b.text).join(""), facts.text);

      const delta = events.find((e) => e.event === "message_delta");
      assert.ok(delta);
      assert.equal(typeof (delta.data.usage as Json).output_tokens, "number", "the SDK reads message_delta usage.output_tokens");
      const stop = delta.data.delta as Json;
      assert.equal(typeof stop.stop_reason, "string");
      assert.ok("stop_sequence" in stop);
    });
  }
});

describe("ChatToMessagesStream: the Anthropic SDK's accumulator accepts the output", () => {
  for (const c of CHAT_CASES) {
    test(c.name, async () => {
      const sse = translateChat(c).map(encodeAnthropicEvent).join("");
      const message = await sdkFinalMessage(sse);
      const facts = chatFacts(c.name);
      const golden = anthropicEvents(`${c.name}.anthropic.sse`);
      const start = (golden[0]?.data.message as Json) ?? {};
      const delta = golden.find((e) => e.event === "message_delta")?.data ?? {};

      assert.equal(message.id, start.id);
      assert.equal(message.model, c.options.model);
      assert.equal(message.role, "assistant");
      assert.equal(message.stop_reason, (delta.delta as Json).stop_reason);
      assert.equal(message.stop_sequence, (delta.delta as Json).stop_sequence);
      const text = message.content.flatMap((b) => (b.type === "text" ? [b.text] : [])).join("");
      assert.equal(text, facts.text);
      const tools = message.content.flatMap((b) => (b.type === "tool_use" ? [b] : []));
      assert.deepEqual(
        tools.map((b) => ({ id: b.id, name: b.name, input: b.input })),
        [...facts.calls.values()].map((call) => ({ id: call.id, name: call.name, input: JSON.parse(call.args || "{}") as unknown })),
      );
      // Usage: the upstream's counts when it sent them (cached prompt tokens apart), else what the gateway knew.
      if (facts.usage) {
        const cached = ((facts.usage.prompt_tokens_details as Json | undefined)?.cached_tokens as number | undefined) ?? undefined;
        assert.equal(message.usage.input_tokens, (facts.usage.prompt_tokens as number) - (cached ?? 0));
        assert.equal(message.usage.output_tokens, facts.usage.completion_tokens);
        assert.equal(message.usage.cache_read_input_tokens ?? undefined, cached);
      } else {
        assert.equal(message.usage.input_tokens, c.options.inputTokens ?? 0);
        assert.equal(message.usage.output_tokens, 0);
      }
    });
  }

  test("the parallel tool calls come out as two tool_use blocks with full inputs", async () => {
    const message = await sdkFinalMessage(translateChat(CHAT_CASES.find((c) => c.name === "parallel-interleaved") as ChatCase).map(encodeAnthropicEvent).join(""));
    assert.deepEqual(message.content, [
      { type: "tool_use", id: "call_a1", name: "get_weather", input: { city: "Paris" } },
      { type: "tool_use", id: "call_b2", name: "get_time", input: { zone: "Europe/Paris" } },
      { type: "text", text: "Checking both." },
    ]);
    assert.equal(message.stop_reason, "tool_use");
  });

  test("fail(): the SDK raises the error, with its type", async () => {
    const t = new ChatToMessagesStream({ model: "m" });
    const events = [...t.push(chunk({ content: "partial" })), ...t.fail("upstream went away")];
    const stream = anthropicClient(events.map(encodeAnthropicEvent).join("")).messages.stream({ model: "gateway-test", max_tokens: 10, messages: [{ role: "user", content: "hi" }] });
    await assert.rejects(stream.finalMessage(), (error: unknown) => {
      assert.ok(error instanceof AnthropicAPIError);
      assert.equal(error.type, "api_error");
      assert.match(error.message, /upstream went away/);
      return true;
    });
  });
});

// ---------------------------------------------------------------------------

const chunk = (delta: Json, finish: string | null = null, extra: Json = {}): Json => ({
  id: "chatcmpl-X",
  object: "chat.completion.chunk",
  created: 1,
  model: "up",
  choices: [{ index: 0, delta, finish_reason: finish, ...extra }],
});
const call = (index: number, fields: { id?: string; name?: string; args?: string }): Json => ({
  tool_calls: [{ index, ...(fields.id ? { id: fields.id, type: "function" } : {}), function: { ...(fields.name ? { name: fields.name } : {}), ...(fields.args !== undefined ? { arguments: fields.args } : {}) } }],
});
const names = (events: readonly AnthropicEvent[]) => events.map((e) => e.event);
const stopOf = (events: readonly AnthropicEvent[]) => events.find((e) => e.event === "message_delta")?.data.delta;
const usageOf = (events: readonly AnthropicEvent[]) => events.find((e) => e.event === "message_delta")?.data.usage;

function run(chunks: readonly Json[], options: { model: string; stopSequences?: readonly string[]; inputTokens?: number } = { model: "m" }): AnthropicEvent[] {
  const t = new ChatToMessagesStream(options);
  return [...chunks.flatMap((c) => t.push(c)), ...t.end()];
}

describe("ChatToMessagesStream: edge cases", () => {
  test("end() with nothing pushed is still a whole message; a second end() or fail() adds nothing", () => {
    const t = new ChatToMessagesStream({ model: "m", inputTokens: 7 });
    assert.equal(t.started, false);
    const events = t.end();
    assert.deepEqual(names(events), ["message_start", "message_delta", "message_stop"]);
    assert.equal(t.started, true);
    const message = events[0]?.data.message as Json;
    assert.match(message.id as string, /^msg_gw[0-9a-f]+$/);
    assert.deepEqual(message.usage, { input_tokens: 7, output_tokens: 0 });
    assert.deepEqual(stopOf(events), { stop_reason: "end_turn", stop_sequence: null });
    assert.deepEqual(usageOf(events), { output_tokens: 0 });
    assert.deepEqual(t.end(), []);
    assert.deepEqual(t.fail("late"), []);
    assert.deepEqual(t.push(chunk({ content: "late" })), []);
  });

  test("started turns true with the first push, whatever the chunk", () => {
    const t = new ChatToMessagesStream({ model: "m" });
    assert.deepEqual(names(t.push({ id: "chatcmpl-Z", choices: [], usage: { prompt_tokens: 1, completion_tokens: 0 } })), ["message_start"]);
    assert.equal(t.started, true);
  });

  test("fail() is only the error event (before message_start too); later calls add nothing", () => {
    const t = new ChatToMessagesStream({ model: "m" });
    assert.deepEqual(t.fail("boom", "overloaded_error"), [{ event: "error", data: { type: "error", error: { type: "overloaded_error", message: "boom" } } }]);
    assert.equal(t.started, false);
    assert.deepEqual(t.push(chunk({ content: "x" })), []);
    assert.deepEqual(t.end(), []);
    const u = new ChatToMessagesStream({ model: "m" });
    u.push(chunk({ content: "x" }));
    assert.deepEqual(u.fail("boom"), [{ event: "error", data: { type: "error", error: { type: "api_error", message: "boom" } } }]);
  });

  test("empty deltas, reasoning and the role chunk emit nothing", () => {
    const t = new ChatToMessagesStream({ model: "m" });
    t.push(chunk({ role: "assistant", content: "" }));
    assert.deepEqual(t.push(chunk({ content: "" })), []);
    assert.deepEqual(t.push(chunk({ reasoning_content: "hmm" })), []);
    assert.deepEqual(t.push(chunk({ reasoning: "hmm" })), []);
    assert.deepEqual(t.push(chunk({ content: null, tool_calls: [] })), []);
  });

  test("refusal deltas are text", () => {
    const events = run([chunk({ refusal: "I can't" }), chunk({ refusal: " help." }), chunk({}, "content_filter")]);
    const text = events.flatMap((e) => (e.event === "content_block_delta" ? [(e.data.delta as Json).text] : [])).join("");
    assert.equal(text, "I can't help.");
    assert.deepEqual(stopOf(events), { stop_reason: "refusal", stop_sequence: null });
  });

  test("only choice 0 is translated", () => {
    const events = run([
      { id: "chatcmpl-N", choices: [{ index: 1, delta: { content: "other" }, finish_reason: null }, { index: 0, delta: { content: "mine" }, finish_reason: null }] },
      { id: "chatcmpl-N", choices: [{ index: 1, delta: {}, finish_reason: "length" }] },
      chunk({}, "stop"),
    ]);
    const texts = events.flatMap((e) => (e.event === "content_block_delta" ? [(e.data.delta as Json).text] : []));
    assert.deepEqual(texts, ["mine"]);
    assert.deepEqual(stopOf(events), { stop_reason: "end_turn", stop_sequence: null });
  });

  test("stop reasons: stop sequences from vLLM and SGLang, only when the request named them", () => {
    const stops = { model: "m", stopSequences: ["END"] };
    assert.deepEqual(stopOf(run([chunk({}, "stop", { stop_reason: "END" })], stops)), { stop_reason: "stop_sequence", stop_sequence: "END" });
    assert.deepEqual(stopOf(run([chunk({}, "stop", { matched_stop: "END" })], stops)), { stop_reason: "stop_sequence", stop_sequence: "END" });
    // vLLM reports a stop token id as a number, and a string the request did not ask for is not a stop sequence.
    assert.deepEqual(stopOf(run([chunk({}, "stop", { stop_reason: 128009 })], stops)), { stop_reason: "end_turn", stop_sequence: null });
    assert.deepEqual(stopOf(run([chunk({}, "stop", { stop_reason: "<|im_end|>" })], stops)), { stop_reason: "end_turn", stop_sequence: null });
    assert.deepEqual(stopOf(run([chunk({}, "stop", { stop_reason: "END" })])), { stop_reason: "end_turn", stop_sequence: null });
    for (const [finish, stop] of [["length", "max_tokens"], ["content_filter", "refusal"], ["insufficient_system_resource", "end_turn"]]) {
      assert.deepEqual(stopOf(run([chunk({}, finish)])), { stop_reason: stop, stop_sequence: null }, String(finish));
    }
    // A tool_calls finish is tool_use with a call, and end_turn without one (a server's tool parser that failed
    // leaves its raw text): an agent would wait for a tool_use block that is not there.
    for (const finish of ["tool_calls", "function_call"]) {
      assert.deepEqual(stopOf(run([chunk(call(0, { id: "call_1", name: "f", args: "{}" })), chunk({}, finish)])), { stop_reason: "tool_use", stop_sequence: null }, finish);
      assert.deepEqual(stopOf(run([chunk({ content: "<tool_call>{...}" }), chunk({}, finish)])), { stop_reason: "end_turn", stop_sequence: null }, finish);
    }
  });

  test("no finish_reason: end_turn, or tool_use when tool calls were seen; finish stop with tool calls is tool_use", () => {
    assert.deepEqual(stopOf(run([chunk({ content: "cut" })])), { stop_reason: "end_turn", stop_sequence: null });
    assert.deepEqual(stopOf(run([chunk(call(0, { id: "call_1", name: "f", args: "{}" }))])), { stop_reason: "tool_use", stop_sequence: null });
    assert.deepEqual(stopOf(run([chunk(call(0, { id: "call_1", name: "f", args: "{}" })), chunk({}, "stop")])), { stop_reason: "tool_use", stop_sequence: null });
  });

  test("a block left open when the stream ends is closed by end()", () => {
    const events = run([chunk({ content: "cut" }), chunk(call(0, { id: "call_1", name: "f", args: '{"a":' }))]);
    assert.deepEqual(names(events), ["message_start", "content_block_start", "content_block_delta", "content_block_stop", "content_block_start", "content_block_delta", "content_block_stop", "message_delta", "message_stop"]);
  });

  test("usage in the finish chunk (DeepSeek), cached tokens apart; input_tokens from message_start until known", () => {
    const events = run([chunk({ content: "x" }, "stop", {}), { ...chunk({}), choices: [], usage: { prompt_tokens: 100, completion_tokens: 5, prompt_tokens_details: { cached_tokens: 60 } } }], { model: "m", inputTokens: 90 });
    assert.deepEqual((events[0]?.data.message as Json).usage, { input_tokens: 90, output_tokens: 0 });
    assert.deepEqual(usageOf(events), { output_tokens: 5, input_tokens: 40, cache_read_input_tokens: 60 });
  });

  test("a tool call without an id gets one; a name that comes after the first delta is waited for", () => {
    const events = run([chunk({ tool_calls: [{ index: 0, function: { arguments: "" } }] }), chunk({ tool_calls: [{ index: 0, function: { name: "late_name", arguments: '{"q":1}' } }] }), chunk({}, "tool_calls")]);
    const start = events.find((e) => e.event === "content_block_start")?.data.content_block as Json;
    assert.equal(start.name, "late_name");
    assert.match(start.id as string, /^toolu_gw[0-9a-f]+$/);
    const json = events.flatMap((e) => (e.event === "content_block_delta" ? [(e.data.delta as Json).partial_json] : [])).join("");
    assert.equal(json, '{"q":1}');
  });

  test("tool call ids Anthropic would refuse are mapped as in the complete answer (Kimi's functions.name:0)", () => {
    const events = run([chunk(call(0, { id: "functions.get_weather:0", name: "get_weather", args: "{}" })), chunk(call(1, { id: "functions.get_time:1", name: "get_time", args: "{}" })), chunk({}, "tool_calls")]);
    const ids = events.flatMap((e) => (e.event === "content_block_start" ? [(e.data.content_block as Json).id] : []));
    assert.ok(ids.every((id) => typeof id === "string" && /^[a-zA-Z0-9_-]+$/.test(id)), String(ids));
    assert.equal(new Set(ids).size, 2);
    assert.deepEqual(ids.map((id) => providerToolIdOf(id as string)), ["functions.get_weather:0", "functions.get_time:1"], "the provider gets its own ids back");
  });

  test("the legacy function_call delta is a tool_use block", () => {
    const events = run([chunk({ function_call: { name: "lookup", arguments: '{"k":' } }), chunk({ function_call: { arguments: '"v"}' } }), chunk({}, "function_call")]);
    const start = events.find((e) => e.event === "content_block_start")?.data.content_block as Json;
    assert.equal(start.type, "tool_use");
    assert.equal(start.name, "lookup");
    const json = events.flatMap((e) => (e.event === "content_block_delta" ? [(e.data.delta as Json).partial_json] : [])).join("");
    assert.deepEqual(JSON.parse(json), { k: "v" });
    assert.deepEqual(stopOf(events), { stop_reason: "tool_use", stop_sequence: null });
  });

  test("a pending tool call that repeats its id and name in every delta is still one block", () => {
    const events = run([
      chunk(call(0, { id: "call_a", name: "f", args: '{"x":' })),
      chunk(call(1, { id: "call_b", name: "g", args: '{"y":' })),
      chunk(call(1, { id: "call_b", name: "g", args: "2}" })),
      chunk(call(0, { id: "call_a", name: "f", args: "1}" })),
      chunk({}, "tool_calls"),
    ]);
    const starts = events.flatMap((e) => (e.event === "content_block_start" ? [e.data.content_block as Json] : []));
    assert.deepEqual(starts.map((b) => [b.id, b.name]), [["call_a", "f"], ["call_b", "g"]]);
    const byIndex = new Map<unknown, string>();
    for (const e of events) if (e.event === "content_block_delta") byIndex.set(e.data.index, (byIndex.get(e.data.index) ?? "") + ((e.data.delta as Json).partial_json as string));
    assert.deepEqual([...byIndex.values()].map((j) => JSON.parse(j) as unknown), [{ x: 1 }, { y: 2 }]);
  });

  test("deltas after the finish chunk go nowhere", () => {
    const events = run([chunk({ content: "a" }, "stop"), chunk({ content: "late" })]);
    assert.equal(events.filter((e) => e.event === "content_block_start").length, 1);
  });

  test('finish_reason "" on every chunk (as some servers send) is no finish: the text goes on', () => {
    const events = run([chunk({ content: "Hello" }, ""), chunk({ content: " there" }, ""), chunk({}, "stop")]);
    const text = events.flatMap((e) => (e.event === "content_block_delta" ? [(e.data.delta as Json).text] : [])).join("");
    assert.equal(text, "Hello there");
    assert.deepEqual(stopOf(events), { stop_reason: "end_turn", stop_sequence: null });
  });

  test("a new id at an index already used is another tool call (Ollama and Gemini send each call at index 0)", async () => {
    const chunks = [
      chunk(call(0, { id: "call_1", name: "get_weather", args: '{"city":"Paris"}' })),
      chunk(call(0, { id: "call_2", name: "get_time", args: '{"zone":"CET"}' })),
      chunk({}, "tool_calls"),
    ];
    const message = await sdkFinalMessage(run(chunks).map(encodeAnthropicEvent).join(""));
    assert.deepEqual(message.content, [
      { type: "tool_use", id: "call_1", name: "get_weather", input: { city: "Paris" } },
      { type: "tool_use", id: "call_2", name: "get_time", input: { zone: "CET" } },
    ]);
  });

  test("an id that changes in every chunk of one call, with no new name, is the same call (Poolside, older mlx servers)", async () => {
    const chunks = [
      chunk(call(0, { id: "call_first", name: "read_file", args: '{"path":' })),
      chunk(call(0, { id: "call_second", args: '"a.txt"' })),
      chunk(call(0, { id: "call_third", args: "}" })),
      chunk({}, "tool_calls"),
    ];
    const message = await sdkFinalMessage(run(chunks).map(encodeAnthropicEvent).join(""));
    assert.deepEqual(message.content, [{ type: "tool_use", id: "call_first", name: "read_file", input: { path: "a.txt" } }]);
  });

  test("content given as an array of parts is its text", async () => {
    const chunks = [chunk({ content: [{ type: "text", text: "Hel" }, { type: "thinking", thinking: "hidden" }] }), chunk({ content: [{ type: "text", text: "lo" }] }), chunk({}, "stop")];
    const message = await sdkFinalMessage(run(chunks).map(encodeAnthropicEvent).join(""));
    assert.deepEqual(message.content, [{ type: "text", text: "Hello" }]);
  });

  test('a refusal that finishes with "stop" (as OpenAI ends one) is stop_reason refusal, as in the complete answer', () => {
    assert.deepEqual(stopOf(run([chunk({ refusal: "I can't help." }), chunk({}, "stop")])), { stop_reason: "refusal", stop_sequence: null });
    assert.deepEqual(stopOf(run([chunk({ content: "Sure." }), chunk({}, "stop")])), { stop_reason: "end_turn", stop_sequence: null });
  });

  test("usage without prompt_tokens leaves message_start's input_tokens standing in the SDK's message", async () => {
    const events = run([chunk({ content: "x" }, "stop"), { ...chunk({}), choices: [], usage: { completion_tokens: 5 } }], { model: "m", inputTokens: 42 });
    assert.deepEqual(usageOf(events), { output_tokens: 5 });
    const message = await sdkFinalMessage(events.map(encodeAnthropicEvent).join(""));
    assert.equal(message.usage.input_tokens, 42);
    assert.equal(message.usage.output_tokens, 5);
  });

  test("whitespace before a tool call is dropped (Anthropic refuses a blank text block in history); a blank answer alone is kept", async () => {
    const events = run([chunk({ content: "\n\n" }), chunk({ content: " " }), chunk(call(0, { id: "call_1", name: "f", args: '{"a":1}' })), chunk({}, "tool_calls")]);
    const message = await sdkFinalMessage(events.map(encodeAnthropicEvent).join(""));
    assert.deepEqual(message.content, [{ type: "tool_use", id: "call_1", name: "f", input: { a: 1 } }]);
    const blank = await sdkFinalMessage(run([chunk({ content: "\n" }), chunk({ content: " " }), chunk({}, "stop")]).map(encodeAnthropicEvent).join(""));
    assert.deepEqual(blank.content, [{ type: "text", text: "\n " }]);
    // Whitespace that leads real text is the text's.
    const led = await sdkFinalMessage(run([chunk({ content: "\n" }), chunk({ content: "Hi" }), chunk({}, "stop")]).map(encodeAnthropicEvent).join(""));
    assert.deepEqual(led.content, [{ type: "text", text: "\nHi" }]);
  });

  test("text between two pending tool calls stays between them", async () => {
    const events = run([
      chunk(call(0, { id: "call_a", name: "f", args: "{}" })),
      chunk(call(1, { id: "call_b", name: "g", args: "{}" })),
      chunk({ content: "middle" }),
      chunk(call(2, { id: "call_c", name: "h", args: "{}" })),
      chunk({ content: "end" }),
      chunk({}, "tool_calls"),
    ]);
    const message = await sdkFinalMessage(events.map(encodeAnthropicEvent).join(""));
    assert.deepEqual(
      message.content.map((b) => (b.type === "text" ? b.text : b.type === "tool_use" ? b.id : b.type)),
      ["call_a", "call_b", "middle", "call_c", "end"],
    );
  });

  test("a pending tool call whose arguments are not a JSON object still parses in the SDK (as {})", async () => {
    const events = run([chunk(call(0, { id: "call_a", name: "f", args: '{"ok":true}' })), chunk(call(1, { id: "call_b", name: "g", args: '["not", "an object"]' })), chunk(call(2, { id: "call_c", name: "h", args: '{"cut":' })), chunk({}, "tool_calls")]);
    const message = await sdkFinalMessage(events.map(encodeAnthropicEvent).join(""));
    assert.deepEqual(
      message.content.map((b) => (b.type === "tool_use" ? [b.id, b.input] : [])),
      [["call_a", { ok: true }], ["call_b", {}], ["call_c", {}]],
    );
  });

  test("encodeAnthropicEvent is one event: and one data: line", () => {
    assert.equal(encodeAnthropicEvent({ event: "ping", data: { type: "ping" } }), 'event: ping\ndata: {"type":"ping"}\n\n');
  });
});

// ---------------------------------------------------------------------------

interface MessagesCase {
  readonly input: string;
  readonly output: string;
  readonly includeUsage: boolean;
}

const MESSAGES_CASES: readonly MessagesCase[] = [
  { input: "thinking-text-tool", output: "thinking-text-tool", includeUsage: true },
  { input: "thinking-text-tool", output: "thinking-text-tool.no-usage", includeUsage: false },
  { input: "error-mid-stream", output: "error-mid-stream", includeUsage: true },
  { input: "no-message-delta", output: "no-message-delta", includeUsage: true },
  { input: "two-tools", output: "two-tools", includeUsage: false },
];

/** `created` is the clock at message_start: the goldens hold 0. */
const normalised = (chunks: readonly Json[]) => chunks.map((c) => ("created" in c ? { ...c, created: 0 } : c));

function translateMessages(c: MessagesCase): { chunks: Json[]; done: boolean } {
  const translator = new MessagesToChatStream({ model: "gpt-4o", includeUsage: c.includeUsage });
  const chunks: Json[] = [];
  for (const e of sseEvents(`${c.input}.anthropic-in.sse`)) chunks.push(...translator.push(e.event, JSON.parse(e.data) as Json));
  return { chunks, done: translator.done };
}

const jsonl = (name: string): Json[] =>
  read(name)
    .toString("utf8")
    .split("\n")
    .filter((line) => line.trim() !== "")
    .map((line) => JSON.parse(line) as Json);

describe("MessagesToChatStream: golden streams", () => {
  for (const c of MESSAGES_CASES) {
    test(c.output, () => {
      const { chunks, done } = translateMessages(c);
      assert.deepEqual(normalised(chunks), jsonl(`${c.output}.chat-out.jsonl`));
      assert.equal(done, c.input !== "error-mid-stream");
    });
  }

  test("created is the clock at message_start, in seconds, the same in every chunk", () => {
    const before = Math.floor(Date.now() / 1000);
    const { chunks } = translateMessages(MESSAGES_CASES[0] as MessagesCase);
    const after = Math.floor(Date.now() / 1000);
    const created = new Set(chunks.map((c) => c.created));
    assert.equal(created.size, 1);
    const [value] = created as Set<number>;
    assert.ok(value !== undefined && value >= before && value <= after);
  });

  test("every chunk but the usage one has exactly one choice, index 0", () => {
    for (const c of MESSAGES_CASES) {
      for (const ch of translateMessages(c).chunks) {
        if ("error" in ch) continue;
        const choices = ch.choices as Json[];
        if (ch.usage !== undefined) assert.deepEqual(choices, []);
        else assert.deepEqual(choices.map((x) => x.index), [0]);
      }
    }
  });
});

describe("MessagesToChatStream: the OpenAI SDK's accumulator accepts the output", () => {
  test("thinking + text + tool_use: tool call with full arguments, finish_reason, usage", async () => {
    const completion = await sdkFinalChatCompletion(translateMessages(MESSAGES_CASES[0] as MessagesCase).chunks);
    assert.equal(completion.id, "chatcmpl-msg_01XFDUDYJgAACzvnptvVoYEL");
    assert.equal(completion.model, "gpt-4o");
    const choice = completion.choices[0];
    assert.ok(choice);
    assert.equal(choice.finish_reason, "tool_calls");
    assert.equal(choice.message.role, "assistant");
    assert.equal(choice.message.content, "Let me check the weather.");
    // The SDK keeps the last reasoning_content delta (it assigns fields it does not know): the golden checks each one.
    assert.equal(typeof (choice.message as unknown as Json).reasoning_content, "string");
    assert.deepEqual(
      choice.message.tool_calls?.map((t) => (t.type === "function" ? { id: t.id, name: t.function.name, arguments: JSON.parse(t.function.arguments) as unknown } : t)),
      [{ id: "toolu_01T1x1fJ34qAmk2tNTrN7Up6", name: "get_weather", arguments: { city: "Paris", unit: "c" } }],
    );
    assert.deepEqual(completion.usage, { prompt_tokens: 2520, completion_tokens: 89, total_tokens: 2609, prompt_tokens_details: { cached_tokens: 2048 } });
  });

  test("two tool_use blocks after text are tool calls 0 and 1", async () => {
    const completion = await sdkFinalChatCompletion(translateMessages(MESSAGES_CASES[4] as MessagesCase).chunks);
    const choice = completion.choices[0];
    assert.ok(choice);
    assert.equal(choice.finish_reason, "tool_calls");
    assert.equal(choice.message.content, "Reading both files.");
    assert.deepEqual(
      choice.message.tool_calls?.map((t) => (t.type === "function" ? [t.id, t.function.name, t.function.arguments] : t)),
      [
        ["toolu_01A", "read_file", '{"path": "a.txt"}'],
        ["toolu_01B", "read_file", '{"path": "b.txt"}'],
      ],
    );
    assert.equal(completion.usage, undefined);
  });

  test("message_stop without message_delta still finishes the completion", async () => {
    const completion = await sdkFinalChatCompletion(translateMessages(MESSAGES_CASES[3] as MessagesCase).chunks);
    assert.equal(completion.choices[0]?.finish_reason, "stop");
    assert.equal(completion.choices[0]?.message.content, "Hi.");
    assert.deepEqual(completion.usage, { prompt_tokens: 10, completion_tokens: 1, total_tokens: 11 });
  });

  test("an Anthropic error event raises an APIError in the SDK", async () => {
    const { chunks } = translateMessages(MESSAGES_CASES[2] as MessagesCase);
    await assert.rejects(sdkFinalChatCompletion(chunks), (error: unknown) => {
      assert.ok(error instanceof OpenAIAPIError);
      assert.match(error.message, /Overloaded/);
      return true;
    });
  });
});

describe("MessagesToChatStream: edge cases", () => {
  const start = (id = "msg_1", usage: Json = { input_tokens: 3, output_tokens: 1 }): Json => ({ type: "message_start", message: { id, type: "message", role: "assistant", content: [], usage } });
  const feed = (events: readonly [string | undefined, Json][], includeUsage = true) => {
    const t = new MessagesToChatStream({ model: "client-model", includeUsage });
    const chunks = events.flatMap(([name, data]) => t.push(name, data));
    return { t, chunks: normalised(chunks) };
  };
  const deltas = (chunks: readonly Json[]) => chunks.flatMap((c) => ((c.choices as Json[] | undefined) ?? []).map((x) => x.delta));

  test("events after message_stop translate to nothing; done stays true", () => {
    const { t } = feed([["message_start", start()], ["message_stop", { type: "message_stop" }]]);
    assert.equal(t.done, true);
    assert.deepEqual(t.push("content_block_delta", { type: "content_block_delta", index: 0, delta: { type: "text_delta", text: "late" } }), []);
    assert.deepEqual(t.push("error", { type: "error", error: { type: "api_error", message: "x" } }), []);
  });

  test("ping, content_block_stop, signature and citation deltas, redacted thinking and unknown events are nothing", () => {
    const { chunks } = feed([
      ["message_start", start()],
      ["ping", { type: "ping" }],
      ["content_block_start", { type: "content_block_start", index: 0, content_block: { type: "redacted_thinking", data: "EmwKAhgBEgy3va3pzix/LafPsn4a" } }],
      ["content_block_stop", { type: "content_block_stop", index: 0 }],
      ["content_block_start", { type: "content_block_start", index: 1, content_block: { type: "text", text: "" } }],
      ["content_block_delta", { type: "content_block_delta", index: 1, delta: { type: "citations_delta", citation: { type: "char_location", cited_text: "x" } } }],
      ["content_block_delta", { type: "content_block_delta", index: 1, delta: { type: "signature_delta", signature: "sig" } }],
      ["content_block_start", { type: "content_block_start", index: 2, content_block: { type: "server_tool_use", id: "srvtoolu_1", name: "web_search", input: {} } }],
      ["content_block_delta", { type: "content_block_delta", index: 2, delta: { type: "input_json_delta", partial_json: '{"q":1}' } }],
      ["something_new", { type: "something_new" }],
    ]);
    assert.deepEqual(deltas(chunks), [{ role: "assistant", content: "" }]);
  });

  test("the event name may be missing: data.type says what it is", () => {
    const { chunks, t } = feed([
      [undefined, start("msg_x")],
      [undefined, { type: "content_block_start", index: 0, content_block: { type: "text", text: "Hi" } }],
      [undefined, { type: "message_delta", delta: { stop_reason: "max_tokens", stop_sequence: null }, usage: { output_tokens: 4 } }],
      [undefined, { type: "message_stop" }],
    ]);
    assert.equal(t.done, true);
    assert.deepEqual(deltas(chunks), [{ role: "assistant", content: "" }, { content: "Hi" }, {}]);
    assert.equal(((chunks[2]?.choices as Json[])[0] as Json).finish_reason, "length");
    assert.deepEqual(chunks[3]?.usage, { prompt_tokens: 3, completion_tokens: 4, total_tokens: 7 });
    assert.equal(chunks[0]?.id, "chatcmpl-msg_x");
  });

  test("message_stop without message_delta after a tool_use finishes with tool_calls", () => {
    const { chunks } = feed(
      [
        ["message_start", start()],
        ["content_block_start", { type: "content_block_start", index: 0, content_block: { type: "tool_use", id: "toolu_9", name: "f", input: {} } }],
        ["message_stop", { type: "message_stop" }],
      ],
      false,
    );
    assert.equal(((chunks.at(-1)?.choices as Json[])[0] as Json).finish_reason, "tool_calls");
  });

  test("stop reasons map to finish reasons", () => {
    for (const [stop, finish] of [["end_turn", "stop"], ["stop_sequence", "stop"], ["max_tokens", "length"], ["tool_use", "tool_calls"], ["refusal", "content_filter"], ["pause_turn", "stop"], ["model_context_window_exceeded", "length"], [null, "stop"], ["brand_new", "stop"]]) {
      const { chunks } = feed([["message_start", start()], ["message_delta", { type: "message_delta", delta: { stop_reason: stop }, usage: { output_tokens: 1 } }]]);
      assert.equal(((chunks.at(-1)?.choices as Json[])[0] as Json).finish_reason, finish, String(stop));
    }
  });

  test("usage: message_delta's cumulative counts replace message_start's; cache reads and writes count in the prompt", () => {
    const { chunks } = feed([
      ["message_start", start("msg_u", { input_tokens: 10, cache_creation_input_tokens: 5, cache_read_input_tokens: 20, output_tokens: 1 })],
      ["message_delta", { type: "message_delta", delta: { stop_reason: "end_turn" }, usage: { output_tokens: 30 } }],
      ["message_delta", { type: "message_delta", delta: { stop_reason: "end_turn" }, usage: { output_tokens: 42, input_tokens: 11 } }],
      ["message_stop", { type: "message_stop" }],
    ]);
    assert.deepEqual(chunks.at(-1)?.usage, { prompt_tokens: 36, completion_tokens: 42, total_tokens: 78, prompt_tokens_details: { cached_tokens: 20 } });
  });

  test("a tool_use that starts with its whole input (no deltas) has it as arguments", () => {
    const { chunks } = feed([
      ["message_start", start()],
      ["content_block_start", { type: "content_block_start", index: 0, content_block: { type: "tool_use", id: "toolu_p", name: "f", input: { a: 1 } } }],
      ["content_block_delta", { type: "content_block_delta", index: 0, delta: { type: "input_json_delta", partial_json: "" } }],
    ]);
    assert.deepEqual(deltas(chunks).at(-1), { tool_calls: [{ index: 0, id: "toolu_p", type: "function", function: { name: "f", arguments: '{"a":1}' } }] });
  });

  test('a tool_use with no input deltas gets arguments "{}" at its block\'s end: Chat clients JSON.parse them', async () => {
    const { chunks } = feed([
      ["message_start", start()],
      ["content_block_start", { type: "content_block_start", index: 0, content_block: { type: "tool_use", id: "toolu_n", name: "now", input: {} } }],
      ["content_block_stop", { type: "content_block_stop", index: 0 }],
      ["content_block_start", { type: "content_block_start", index: 1, content_block: { type: "tool_use", id: "toolu_a", name: "f", input: {} } }],
      ["content_block_delta", { type: "content_block_delta", index: 1, delta: { type: "input_json_delta", partial_json: '{"a":1}' } }],
      ["content_block_stop", { type: "content_block_stop", index: 1 }],
      ["message_delta", { type: "message_delta", delta: { stop_reason: "tool_use" }, usage: { output_tokens: 9 } }],
      ["message_stop", { type: "message_stop" }],
    ]);
    const completion = await sdkFinalChatCompletion(chunks);
    const calls = completion.choices[0]?.message.tool_calls ?? [];
    assert.deepEqual(
      calls.map((c) => (c.type === "function" ? [c.id, c.function.name, c.function.arguments] : [])),
      [["toolu_n", "now", "{}"], ["toolu_a", "f", '{"a":1}']],
    );
    assert.equal(completion.choices[0]?.finish_reason, "tool_calls");
  });

  test("an error before message_start is one error chunk; a stream without message_start still starts with the role", () => {
    const t = new MessagesToChatStream({ model: "m", includeUsage: false });
    assert.deepEqual(t.push("error", { type: "error", error: { type: "overloaded_error", message: "Overloaded" } }), [{ error: { message: "Overloaded", type: "overloaded_error", code: null } }]);
    assert.equal(t.done, false);
    const u = new MessagesToChatStream({ model: "m", includeUsage: false });
    const chunks = u.push("content_block_delta", { type: "content_block_delta", index: 0, delta: { type: "text_delta", text: "x" } });
    assert.deepEqual(deltas(chunks), [{ role: "assistant", content: "" }, { content: "x" }]);
    assert.match(chunks[0]?.id as string, /^chatcmpl-gw[0-9a-f]+$/);
  });
});
