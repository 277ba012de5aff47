import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { makeRoute } from "../../src/config/load.js";
import type { Route, UpstreamApi } from "../../src/config/types.js";
import { clientApiOf, codecFor, pathFor, translateRequest, unsupported, type ClientApi } from "../../src/proxy/api.js";

function route(url: string, api: UpstreamApi, isBaseUrl = false): Route {
  return makeRoute({
    name: "r",
    url,
    isBaseUrl,
    api,
    models: ["m"],
    enabled: true,
    authHeader: api === "anthropic" ? "x-api-key" : "authorization",
    authPrefix: api === "anthropic" ? "" : "Bearer ",
    apiKey: "",
    headers: {},
    fallbacks: [],
    prefill: false,
    timeouts: { connectMs: 1000, headersMs: 1000, firstTokenMs: 1000, idleMs: 1000 },
  });
}

describe("clientApiOf", () => {
  const cases: [string, { api: ClientApi; pathname: string } | undefined][] = [
    ["/v1/chat/completions", { api: "chat", pathname: "/v1/chat/completions" }],
    ["/v1/responses", { api: "responses", pathname: "/v1/responses" }],
    ["/v1/messages", { api: "messages", pathname: "/v1/messages" }],
    ["/v1/messages/count_tokens", { api: "count_tokens", pathname: "/v1/messages/count_tokens" }],
    ["/anthropic/v1/messages", { api: "messages", pathname: "/v1/messages" }],
    ["/anthropic/v1/messages/count_tokens", { api: "count_tokens", pathname: "/v1/messages/count_tokens" }],
    ["/anthropic/v1/complete", undefined],
    ["/anthropic/", undefined],
    ["/v1/embeddings", { api: "other", pathname: "/v1/embeddings" }],
    ["/v1/responses/resp_1", { api: "other", pathname: "/v1/responses/resp_1" }],
  ];
  for (const [path, expected] of cases) {
    test(`${path} → ${expected ? `${expected.api} ${expected.pathname}` : "not served"}`, () => {
      assert.deepEqual(clientApiOf(path), expected);
    });
  }
});

describe("which route serves which API", () => {
  test("an OpenAI route serves every OpenAI API natively and Messages by translation; count_tokens is 501", () => {
    for (const api of ["chat", "responses", "other"] as const) {
      assert.equal(unsupported(api, "openai"), undefined);
      assert.equal(codecFor(api, "openai"), undefined);
    }
    assert.equal(codecFor("messages", "openai"), "messages-from-chat");
    assert.equal(unsupported("count_tokens", "openai")?.status, 501);
    assert.match(unsupported("count_tokens", "openai")?.message ?? "", /api: anthropic/);
  });
  test("an Anthropic route serves Messages and count_tokens natively, Chat Completions by translation, nothing else", () => {
    assert.equal(codecFor("messages", "anthropic"), undefined);
    assert.equal(codecFor("count_tokens", "anthropic"), undefined);
    assert.equal(codecFor("chat", "anthropic"), "chat-from-messages");
    assert.equal(unsupported("chat", "anthropic"), undefined);
    assert.equal(unsupported("responses", "anthropic")?.status, 501);
    assert.equal(unsupported("other", "anthropic")?.status, 501);
  });
});

describe("pathFor", () => {
  const cases: [string, UpstreamApi, boolean, ClientApi, string, string, string][] = [
    // Anthropic routes: a base (with or without /v1) or the full endpoint
    ["https://api.anthropic.com", "anthropic", false, "messages", "/v1/messages", "", "/v1/messages"],
    ["https://api.anthropic.com/", "anthropic", false, "messages", "/v1/messages", "?beta=true", "/v1/messages?beta=true"],
    ["https://api.anthropic.com/v1", "anthropic", false, "messages", "/v1/messages", "", "/v1/messages"],
    ["https://api.anthropic.com/v1/messages", "anthropic", false, "messages", "/v1/messages", "", "/v1/messages"],
    ["https://api.deepseek.com/anthropic", "anthropic", false, "count_tokens", "/v1/messages/count_tokens", "", "/anthropic/v1/messages/count_tokens"],
    ["https://api.anthropic.com/v1/messages", "anthropic", false, "count_tokens", "/v1/messages/count_tokens", "", "/v1/messages/count_tokens"],
    ["https://proxy.example/anthropic?key=1", "anthropic", false, "messages", "/v1/messages", "?beta=true", "/anthropic/v1/messages?key=1&beta=true"],
    // a Chat Completions client on an Anthropic route: the Messages endpoint, without the client's query
    ["https://api.anthropic.com", "anthropic", false, "chat", "/v1/chat/completions", "?api-version=1", "/v1/messages"],
    // a Messages client on an OpenAI route: the route's chat endpoint
    ["https://api.openai.com/v1", "openai", true, "messages", "/v1/messages", "?beta=true", "/v1/chat/completions"],
    ["https://api.groq.com/openai/v1/chat/completions", "openai", false, "messages", "/v1/messages", "", "/openai/v1/chat/completions"],
    // everything else: as before
    ["https://api.openai.com/v1", "openai", true, "responses", "/v1/responses", "", "/v1/responses"],
  ];
  for (const [url, api, isBaseUrl, client, pathname, search, expected] of cases) {
    test(`${url} (${api}) + ${client} ${pathname}${search} → ${expected}`, () => {
      assert.equal(pathFor(route(url, api, isBaseUrl), client, pathname, search), expected);
    });
  }
});

describe("translateRequest: Gemini's thought signatures", () => {
  const conversation = {
    model: "c",
    max_tokens: 100,
    messages: [
      { role: "user", content: "Weather and time?" },
      { role: "assistant", content: [{ type: "tool_use", id: "toolu_1", name: "weather", input: {} }, { type: "tool_use", id: "toolu_2", name: "time", input: {} }] },
      { role: "user", content: [{ type: "tool_result", tool_use_id: "toolu_1", content: "sun" }, { type: "tool_result", tool_use_id: "toolu_2", content: "noon" }] },
    ],
  };
  const calls = (url: string) => {
    const translated = translateRequest("messages-from-chat", conversation, "gemini-3-pro", route(url, "openai", true));
    assert.ok(translated.ok);
    const body = JSON.parse(translated.body.toString("utf8")) as { messages: { tool_calls?: Record<string, unknown>[] }[] };
    return body.messages[1]!.tool_calls!;
  };

  test("on Google's endpoints the first call of a turn carries Gemini's stand-in signature (an Anthropic client cannot keep the real one)", () => {
    for (const url of ["https://generativelanguage.googleapis.com/v1beta/openai", "https://us-central1-aiplatform.googleapis.com/v1/projects/p/locations/us-central1/endpoints/openapi"]) {
      const [first, second] = calls(url);
      assert.deepEqual(first!.extra_content, { google: { thought_signature: "skip_thought_signature_validator" } }, url);
      assert.equal(second!.extra_content, undefined);
    }
  });

  test("anywhere else the history has no extra field", () => {
    for (const url of ["https://api.openai.com/v1", "https://generativelanguage.googleapis.com.example.com/v1", "http://127.0.0.1:8000/v1"]) {
      assert.ok(calls(url).every((call) => !("extra_content" in call)), url);
    }
  });
});
