import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import {
  chatToMessagesResponse,
  messagesToChatResponse,
  providerToolIdOf,
  toAnthropicError,
  toOpenAIError,
  toolUseIdOf,
} from "../../src/compat/anthropic/response.js";
import { messagesToChatRequest } from "../../src/compat/anthropic/request.js";

type Json = Record<string, unknown>;

/** The test sources' fixtures, seen from build/test/unit/. */
const FIXTURES = new URL("../../../test/fixtures/compat/response/", import.meta.url);

interface Golden {
  readonly direction: "chat-to-messages" | "messages-to-chat" | "error-to-anthropic" | "error-to-openai";
  readonly model?: string;
  readonly status?: number;
  readonly stopSequences?: string[];
  readonly input: unknown;
  readonly expected: Json;
}

function translate(golden: Golden): Json {
  switch (golden.direction) {
    case "chat-to-messages":
      return chatToMessagesResponse(golden.input, golden.model ?? "", golden.stopSequences);
    case "messages-to-chat":
      return messagesToChatResponse(golden.input, golden.model ?? "");
    case "error-to-anthropic":
      return toAnthropicError(golden.status ?? 500, golden.input);
    case "error-to-openai":
      return toOpenAIError(golden.status ?? 500, golden.input);
  }
}

describe("response translation, golden files", () => {
  const files = readdirSync(FIXTURES).filter((name) => name.endsWith(".json"));
  test("the fixtures are there", () => assert.ok(files.length >= 10, `only ${files.length} fixtures`));
  for (const file of files) {
    test(file, () => {
      const golden = JSON.parse(readFileSync(new URL(file, FIXTURES), "utf8")) as Golden;
      const before = JSON.stringify(golden.input);
      const actual = translate(golden);
      assert.equal(JSON.stringify(golden.input), before, "the input was mutated");
      const expected = { ...golden.expected };
      if (expected.created === "<any>") {
        assert.equal(typeof actual.created, "number");
        expected.created = actual.created;
      }
      assert.deepEqual(actual, expected);
    });
  }
});

describe("response translation, edge cases", () => {
  const garbage: unknown[] = [null, undefined, 1, "text", [], {}, { choices: "x" }, { choices: [null] }, { choices: [{ message: 5 }] }, { content: "x" }, { content: [null, 1, { type: "tool_use" }] }];

  test("never throws on whatever the upstream sent, and still answers in the client's shape", () => {
    for (const input of garbage) {
      const message = chatToMessagesResponse(input, "m");
      assert.equal(message.type, "message");
      assert.ok(Array.isArray(message.content));
      assert.equal(typeof message.stop_reason, "string");
      assert.equal(typeof (message.usage as Json).output_tokens, "number");
      const chat = messagesToChatResponse(input, "m");
      assert.equal(chat.object, "chat.completion");
      assert.equal((chat.choices as Json[]).length, 1);
      for (const status of [400, 404, 429, 500, 529]) {
        const anthropic = toAnthropicError(status, input) as { type: string; error: { type: string; message: string } };
        assert.equal(anthropic.type, "error");
        assert.ok(anthropic.error.message.length > 0);
        const openai = toOpenAIError(status, input) as { error: { message: string; type: string } };
        assert.ok(openai.error.message.length > 0);
      }
    }
  });

  test("unparseable tool arguments become an empty input, never a throw", () => {
    const message = chatToMessagesResponse(
      { choices: [{ message: { tool_calls: [{ id: "call_x", function: { name: "f", arguments: "{not json" } }] }, finish_reason: "tool_calls" }] },
      "m",
    );
    assert.deepEqual(message.content, [{ type: "tool_use", id: "call_x", name: "f", input: {} }]);
  });

  test("tool calls under finish_reason stop still tell the client to run them", () => {
    const message = chatToMessagesResponse({ choices: [{ message: { tool_calls: [{ id: "c", function: { name: "f", arguments: "{}" } }] }, finish_reason: "stop" }] }, "m");
    assert.equal(message.stop_reason, "tool_use");
  });

  test("finish_reason tool_calls with no call left (a server's tool parser failed) is end_turn: no tool_use to wait for", () => {
    const message = chatToMessagesResponse({ choices: [{ message: { content: "<tool_call>{\"name\": \"f\"" }, finish_reason: "tool_calls" }] }, "m");
    assert.equal(message.stop_reason, "end_turn");
    assert.deepEqual(message.content, [{ type: "text", text: '<tool_call>{"name": "f"' }]);
  });

  test("DeepSeek's cache hits (prompt_cache_hit_tokens) are cache reads, apart from the input", () => {
    const message = chatToMessagesResponse({ choices: [{ message: { content: "x" }, finish_reason: "stop" }], usage: { prompt_tokens: 100, completion_tokens: 5, prompt_cache_hit_tokens: 64, prompt_cache_miss_tokens: 36 } }, "m");
    assert.deepEqual(message.usage, { input_tokens: 36, output_tokens: 5, cache_read_input_tokens: 64 });
  });

  test("Kimi's tool ids survive the round trip: the Anthropic client's next turn gives Kimi its own ids back", () => {
    const answer = chatToMessagesResponse({ choices: [{ message: { tool_calls: [{ id: "functions.read:0", type: "function", function: { name: "read", arguments: '{"path":"a"}' } }] }, finish_reason: "tool_calls" }] }, "kimi");
    const toolUse = (answer.content as { type: string; id: string }[])[0]!;
    const next = messagesToChatRequest(
      {
        model: "kimi",
        max_tokens: 100,
        messages: [
          { role: "user", content: "Read a." },
          { role: "assistant", content: answer.content },
          { role: "user", content: [{ type: "tool_result", tool_use_id: toolUse.id, content: "file a" }] },
        ],
      },
      "kimi",
    );
    assert.ok(next.ok);
    const messages = (next.body as { messages: { role: string; tool_calls?: { id: string }[]; tool_call_id?: string }[] }).messages;
    assert.equal(messages[1]?.tool_calls?.[0]?.id, "functions.read:0");
    assert.equal(messages[2]?.tool_call_id, "functions.read:0");
    // An id that only looks encoded (a client's own, or not valid UTF-8 once decoded) is not decoded.
    for (const id of ["gwid_6869", "gwid_ff", "gwid_fe"]) assert.equal(providerToolIdOf(id), id);
    assert.equal(providerToolIdOf(toolUseIdOf("调用:1")), "调用:1");
    // Ids that already fit pass through untouched, both ways.
    assert.equal(providerToolIdOf("call_abc-1"), "call_abc-1");
    assert.equal(toolUseIdOf("call_abc-1"), "call_abc-1");
  });

  test("a matched stop string not among the request's stop sequences is a natural end", () => {
    const message = chatToMessagesResponse({ choices: [{ message: { content: "x" }, finish_reason: "stop", stop_reason: 128009 }] }, "m", ["END"]);
    assert.equal(message.stop_reason, "end_turn");
    assert.equal(message.stop_sequence, null);
  });

  test("error types follow the status when the upstream's type is not Anthropic's", () => {
    const cases: [number, string][] = [
      [400, "invalid_request_error"],
      [401, "authentication_error"],
      [403, "permission_error"],
      [404, "not_found_error"],
      [413, "request_too_large"],
      [429, "rate_limit_error"],
      [500, "api_error"],
      [502, "api_error"],
      [504, "timeout_error"],
      [529, "overloaded_error"],
      [422, "invalid_request_error"],
    ];
    for (const [status, type] of cases) {
      const body = toAnthropicError(status, { error: { message: "m", type: "server_error" } }) as { error: { type: string } };
      assert.equal(body.error.type, type, `status ${status}`);
    }
  });

  test("a gateway error keeps its sentence", () => {
    const body = toAnthropicError(404, { error: { message: "The model x is not configured.", type: "not_found_error", code: "model_not_found" } });
    assert.deepEqual(body, { type: "error", error: { type: "not_found_error", message: "The model x is not configured." } });
  });

  test("a blank text before tool calls is left out, and foreign tool ids are made to fit Anthropic's pattern", () => {
    const message = chatToMessagesResponse(
      { choices: [{ message: { content: "\n\n", tool_calls: [{ id: "functions.get_weather:0", function: { name: "get_weather", arguments: "{}" } }] }, finish_reason: "tool_calls" }] },
      "m",
    );
    const content = message.content as { type: string; id: string; name: string; input: unknown }[];
    assert.equal(content.length, 1);
    const block = content[0]!;
    assert.equal(block.type, "tool_use");
    assert.match(block.id, /^[a-zA-Z0-9_-]+$/);
    assert.deepEqual([block.name, block.input], ["get_weather", {}]);
  });

  test("a refusal is the answer's text and its stop reason", () => {
    const message = chatToMessagesResponse({ choices: [{ message: { content: null, refusal: "I can't help with that." }, finish_reason: "stop" }] }, "m");
    assert.deepEqual(message.content, [{ type: "text", text: "I can't help with that." }]);
    assert.equal(message.stop_reason, "refusal");
  });

  test("a finish or stop reason named like an Object.prototype member still maps to a string", () => {
    assert.equal(chatToMessagesResponse({ choices: [{ message: { content: "x" }, finish_reason: "constructor" }] }, "m").stop_reason, "end_turn");
    const chat = messagesToChatResponse({ content: [{ type: "text", text: "x" }], stop_reason: "toString" }, "m") as { choices: { finish_reason: unknown }[] };
    assert.equal(chat.choices[0]?.finish_reason, "stop");
  });

  test("OpenAI's 401 (type invalid_request_error) is an authentication_error for the Anthropic client", () => {
    const body = toAnthropicError(401, { error: { message: "Incorrect API key provided", type: "invalid_request_error", code: "invalid_api_key" } }) as { error: { type: string } };
    assert.equal(body.error.type, "authentication_error");
    // Outside the table a type Anthropic defines is kept.
    assert.equal((toAnthropicError(503, { type: "error", error: { type: "overloaded_error", message: "Overloaded" } }) as { error: { type: string } }).error.type, "overloaded_error");
  });
});
