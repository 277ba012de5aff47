import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { chatToMessagesRequest, messagesToChatRequest, withSystemMessagesHoisted, type Translated } from "../../src/compat/anthropic/request.js";
import { assertAnthropicRequest } from "../helpers/mock-anthropic.js";

type Json = Record<string, unknown>;

/** The test sources' fixtures, seen from build-<id>/test/unit/. */
const FIXTURES = new URL("../../../test/fixtures/compat/request/", import.meta.url);

interface GoldenCase {
  readonly direction: "messages-to-chat" | "chat-to-messages";
  readonly model: string;
  readonly input: unknown;
  readonly options?: { defaultMaxTokens?: number; maxTokensCap?: number };
  readonly expected?: Json;
  readonly error?: { param?: string };
}

const DEFAULTS = { defaultMaxTokens: 4096 };

function translate(c: GoldenCase): Translated {
  return c.direction === "messages-to-chat" ? messagesToChatRequest(c.input, c.model, c.options ?? {}) : chatToMessagesRequest(c.input, c.model, { ...DEFAULTS, ...c.options });
}

const cases = readdirSync(FIXTURES)
  .filter((name) => name.endsWith(".json"))
  .sort()
  .map((name) => ({ name, golden: JSON.parse(readFileSync(new URL(name, FIXTURES), "utf8")) as GoldenCase }));

describe("request translation golden files", () => {
  test("the fixture directory has cases in both directions", () => {
    assert.ok(cases.some((c) => c.golden.direction === "messages-to-chat"));
    assert.ok(cases.some((c) => c.golden.direction === "chat-to-messages"));
  });

  for (const { name, golden } of cases) {
    test(name, () => {
      const result = translate(golden);
      if (golden.error) {
        assert.equal(result.ok, false, `expected a translation error, got ${JSON.stringify(result)}`);
        if (result.ok) return;
        assert.equal(result.param, golden.error.param);
        assert.ok(result.message.length > 0 && !result.message.endsWith("."), "the message is a sentence fragment");
        return;
      }
      assert.ok(result.ok, `expected a translation, got ${JSON.stringify(result)}`);
      if (!result.ok) return;
      assert.deepEqual(result.body, golden.expected);
      // Whatever goes to an Anthropic upstream must pass what the real API checks.
      if (golden.direction === "chat-to-messages") assertAnthropicRequest(result.body, { endpoint: "messages", version: "2023-06-01" });
    });
  }
});

describe("request translation invariants", () => {
  const GARBAGE: unknown[] = [
    undefined,
    null,
    1,
    "x",
    true,
    [],
    {},
    { messages: "x" },
    { messages: {} },
    { messages: [null] },
    { messages: [1] },
    { messages: [[]] },
    { messages: [{}] },
    { messages: [{ role: "user" }] },
    { messages: [{ role: "user", content: 5 }] },
    { messages: [{ role: "user", content: [null] }] },
    { messages: [{ role: "user", content: [{}] }] },
    { messages: [{ role: "user", content: [{ type: "text" }] }] },
    { messages: [{ role: "user", content: [{ type: "image_url" }] }] },
    { messages: [{ role: "user", content: [{ type: "image", source: null }] }] },
    { messages: [{ role: "user", content: [{ type: "tool_result" }] }] },
    { messages: [{ role: "user", content: [{ type: "tool_result", tool_use_id: "t", content: [null] }] }] },
    { messages: [{ role: "assistant", content: [{ type: "tool_use" }] }] },
    { messages: [{ role: "assistant", tool_calls: "x" }] },
    { messages: [{ role: "assistant", tool_calls: [null] }] },
    { messages: [{ role: "assistant", tool_calls: [{ id: "c", function: null }] }] },
    { messages: [{ role: "assistant", tool_calls: [{ id: "c", function: { name: "f", arguments: 5 } }] }] },
    { messages: [{ role: "tool", content: "x" }] },
    { messages: [{ role: "system", content: [1] }] },
    { messages: [{ role: "user", content: "hi" }], system: 5 },
    { messages: [{ role: "user", content: "hi" }], system: [null] },
    { messages: [{ role: "user", content: "hi" }], tools: "x" },
    { messages: [{ role: "user", content: "hi" }], tools: [null] },
    { messages: [{ role: "user", content: "hi" }], tools: [{ type: "function" }] },
    { messages: [{ role: "user", content: "hi" }], tools: [{ name: "f" }], tool_choice: "x" },
    { messages: [{ role: "user", content: "hi" }], tools: [{ type: "function", function: { name: "f" } }], tool_choice: 5 },
    { messages: [{ role: "user", content: "hi" }], functions: {} },
    { messages: [{ role: "user", content: "hi" }], stop: 5, stop_sequences: "x" },
    { messages: [{ role: "user", content: "hi" }], max_tokens: "many", temperature: "hot" },
    { messages: [{ role: "user", content: "hi" }], max_tokens: -1, max_completion_tokens: 1.5 },
    { messages: [{ role: "user", content: "hi" }], output_config: { format: 5 } },
    { messages: [{ role: "user", content: "hi" }], metadata: 5, user: 5 },
  ];

  test("never throws on garbage, and every failure says why", () => {
    for (const input of GARBAGE) {
      for (const result of [messagesToChatRequest(input, "m"), chatToMessagesRequest(input, "m", DEFAULTS)]) {
        if (!result.ok) assert.ok(typeof result.message === "string" && result.message.length > 0, JSON.stringify(input));
      }
    }
  });

  test("a getter that throws does not escape", () => {
    const hostile = { messages: [{ role: "user", content: "hi" }] };
    Object.defineProperty(hostile, "max_tokens", {
      enumerable: true,
      get() {
        throw new Error("boom");
      },
    });
    assert.equal(messagesToChatRequest(hostile, "m").ok, false);
    assert.equal(chatToMessagesRequest(hostile, "m", DEFAULTS).ok, false);
  });

  test("the input is never mutated", () => {
    for (const { golden } of cases) {
      const before = structuredClone(golden.input);
      translate(golden);
      assert.deepEqual(golden.input, before);
    }
  });

  test("the model argument wins over the body's model", () => {
    const body = { model: "client-model", max_tokens: 5, messages: [{ role: "user", content: "hi" }] };
    const a = messagesToChatRequest(body, "upstream-a");
    const b = chatToMessagesRequest(body, "upstream-b", DEFAULTS);
    assert.ok(a.ok && b.ok);
    assert.equal(a.body.model, "upstream-a");
    assert.equal(b.body.model, "upstream-b");
  });

  test("a chat round trip through both translations keeps the conversation", () => {
    const anthropic = {
      model: "c",
      max_tokens: 300,
      system: "Be brief.",
      tools: [{ name: "get_weather", input_schema: { type: "object", properties: { city: { type: "string" } } } }],
      messages: [
        { role: "user", content: "Weather in Paris?" },
        { role: "assistant", content: [{ type: "tool_use", id: "toolu_01X", name: "get_weather", input: { city: "Paris" } }] },
        { role: "user", content: [{ type: "tool_result", tool_use_id: "toolu_01X", content: "18°C" }] },
      ],
    };
    const chat = messagesToChatRequest(anthropic, "gpt");
    assert.ok(chat.ok);
    const back = chatToMessagesRequest(chat.body, "c", DEFAULTS);
    assert.ok(back.ok);
    assertAnthropicRequest(back.body, { endpoint: "messages", version: "2023-06-01" });
    assert.deepEqual(back.body, {
      model: "c",
      max_tokens: 300,
      system: "Be brief.",
      tools: anthropic.tools,
      messages: [
        { role: "user", content: "Weather in Paris?" },
        { role: "assistant", content: [{ type: "tool_use", id: "toolu_01X", name: "get_weather", input: { city: "Paris" } }] },
        { role: "user", content: [{ type: "tool_result", tool_use_id: "toolu_01X", content: "18°C" }] },
      ],
    });
  });
});

describe("withSystemMessagesHoisted (a 2026-10-21 body for a route on an older version)", () => {
  const body = {
    model: "c",
    max_tokens: 10,
    system: [{ type: "text", text: "Be brief.", cache_control: { type: "ephemeral" } }],
    messages: [
      { role: "user", content: "Hi" },
      { role: "system", content: "Plan mode." },
      { role: "system", content: [{ type: "text", text: "No tools." }, { type: "text", text: " " }] },
      { role: "user", content: "Go" },
    ],
  };

  test("system messages join `system` in order (blocks kept as sent, blank text left out); the rest is untouched", () => {
    assert.deepEqual(withSystemMessagesHoisted(body, "2023-06-01"), {
      model: "c",
      max_tokens: 10,
      system: [{ type: "text", text: "Be brief.", cache_control: { type: "ephemeral" } }, { type: "text", text: "Plan mode." }, { type: "text", text: "No tools." }],
      messages: [
        { role: "user", content: "Hi" },
        { role: "user", content: "Go" },
      ],
    });
    assertAnthropicRequest(withSystemMessagesHoisted(body, "2023-06-01"), { endpoint: "messages", version: "2023-06-01" });
  });

  test("a string system prompt becomes the first block; none at all starts the list", () => {
    assert.deepEqual(withSystemMessagesHoisted({ ...body, system: "Be brief." }, undefined)?.system, [{ type: "text", text: "Be brief." }, { type: "text", text: "Plan mode." }, { type: "text", text: "No tools." }]);
    const { system: _system, ...without } = body;
    assert.deepEqual(withSystemMessagesHoisted(without, "2023-06-01")?.system, [{ type: "text", text: "Plan mode." }, { type: "text", text: "No tools." }]);
  });

  test("nothing to change (no system message, a route on 2026-10-21 or later, not a Messages body) → undefined", () => {
    assert.equal(withSystemMessagesHoisted({ ...body, messages: [{ role: "user", content: "Hi" }] }, "2023-06-01"), undefined);
    assert.equal(withSystemMessagesHoisted(body, "2026-10-21"), undefined);
    assert.equal(withSystemMessagesHoisted(body, "2027-01-01"), undefined);
    assert.equal(withSystemMessagesHoisted("nope", "2023-06-01"), undefined);
    assert.equal(withSystemMessagesHoisted({ messages: "nope" }, "2023-06-01"), undefined);
  });
});

describe("tool-call ids sent to Anthropic", () => {
  test("calls split across consecutive assistant messages are one turn: each tool message answers its own call", () => {
    const call = (id: string, name: string) => ({ id, type: "function", function: { name, arguments: "{}" } });
    const result = chatToMessagesRequest(
      {
        model: "m",
        messages: [
          { role: "user", content: "Go." },
          { role: "assistant", content: null, tool_calls: [call("functions.a:0", "a")] },
          { role: "tool", tool_call_id: "functions.a:0", content: "A1" },
          { role: "user", content: "Again." },
          { role: "assistant", content: null, tool_calls: [call("functions.a:0", "a")] },
          { role: "assistant", content: null, tool_calls: [call("functions.b:1", "b")] },
          { role: "tool", tool_call_id: "functions.a:0", content: "A2" },
          { role: "tool", tool_call_id: "functions.b:1", content: "B2" },
        ],
      },
      "claude-up",
      DEFAULTS,
    );
    assert.ok(result.ok, JSON.stringify(result));
    if (!result.ok) return;
    assertAnthropicRequest(result.body, { endpoint: "messages", version: "2023-06-01" });
    const messages = result.body.messages as { role: string; content: { type: string; id?: string; tool_use_id?: string; content?: unknown }[] }[];
    const uses = messages[3]!.content.map((block) => block.id);
    const answers = messages[4]!.content.map((block) => [block.tool_use_id, block.content]);
    assert.equal(new Set([messages[1]!.content[0]!.id, ...uses]).size, 3, "tool_use ids repeat");
    assert.deepEqual(answers, [[uses[0], "A2"], [uses[1], "B2"]]);
  });
});
