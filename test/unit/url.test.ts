import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { makeRoute } from "../../src/config/load.js";
import type { Route } from "../../src/config/types.js";
import { upstreamPath } from "../../src/upstream/url.js";

function route(url: string, isBaseUrl: boolean): Route {
  return makeRoute({
    name: "r",
    url,
    isBaseUrl,
    models: ["m"],
    enabled: true,
    authHeader: "authorization",
    authPrefix: "Bearer ",
    apiKey: "",
    headers: {},
    fallbacks: [],
    prefill: false,
    timeouts: { connectMs: 1000, headersMs: 1000, firstTokenMs: 1000, idleMs: 1000 },
  });
}

/** [route url, isBaseUrl, request pathname, request search, expected upstream path] */
type Case = [string, boolean, string, string, string];

const cases: Case[] = [
  // isBaseUrl: a base ending in /v1 does not get a second /v1
  ["https://api.openai.com/v1", true, "/v1/chat/completions", "", "/v1/chat/completions"],
  ["https://api.openai.com/v1/", true, "/v1/chat/completions", "", "/v1/chat/completions"],
  ["https://api.openai.com/v1//", true, "/v1/embeddings", "", "/v1/embeddings"],
  ["https://api.openai.com/v1", true, "/v1/models", "", "/v1/models"],
  ["https://api.openai.com/v1", true, "/v1", "", "/v1"],
  // isBaseUrl without /v1: the request path is appended whole
  ["https://api.openai.com", true, "/v1/chat/completions", "", "/v1/chat/completions"],
  ["https://api.openai.com/", true, "/v1/chat/completions", "", "/v1/chat/completions"],
  // a base with a path prefix
  ["https://proxy.example/openai", true, "/v1/chat/completions", "", "/openai/v1/chat/completions"],
  ["https://proxy.example/openai/", true, "/v1/embeddings", "", "/openai/v1/embeddings"],
  ["https://proxy.example/api/openai/v1", true, "/v1/chat/completions", "", "/api/openai/v1/chat/completions"],
  ["https://openrouter.ai/api/v1/", true, "/v1/models", "", "/api/v1/models"],
  // /v1 is only stripped as a whole segment
  ["https://x.example/v1", true, "/v10/things", "", "/v1/v10/things"],
  ["https://x.example/av1", true, "/v1/chat/completions", "", "/av1/v1/chat/completions"],
  // the query string is kept, and merged with the route URL's own
  ["https://api.openai.com/v1", true, "/v1/chat/completions", "?stream=true&x=1", "/v1/chat/completions?stream=true&x=1"],
  ["https://azure.example/openai/v1?api-version=2024-10-01", true, "/v1/chat/completions", "", "/openai/v1/chat/completions?api-version=2024-10-01"],
  ["https://azure.example/openai/v1?api-version=2024-10-01", true, "/v1/chat/completions", "?a=b", "/openai/v1/chat/completions?api-version=2024-10-01&a=b"],
  ["https://azure.example/openai/v1/?api-version=1", true, "/v1/embeddings", "?", "/openai/v1/embeddings?api-version=1"],
  ["https://api.openai.com/v1", true, "/v1/chat/completions", "?", "/v1/chat/completions"],
  // not a base: the URL is the full endpoint
  ["https://api.groq.com/openai/v1/chat/completions", false, "/v1/chat/completions", "", "/openai/v1/chat/completions"],
  ["https://api.groq.com/openai/v1/chat/completions/", false, "/v1/chat/completions", "", "/openai/v1/chat/completions"],
  ["https://api.example/generate", false, "/v1/chat/completions", "", "/generate"],
  ["https://api.example/generate", false, "/v1/embeddings", "", "/generate"],
  ["https://api.example", false, "/v1/chat/completions", "", "/"],
  ["https://api.example/", false, "/v1/chat/completions", "?q=1", "/?q=1"],
  ["https://api.example/chat?key=abc", false, "/v1/chat/completions", "?q=1", "/chat?key=abc&q=1"],
  ["https://api.groq.com/openai/v1/chat/completions", false, "/v1/chat/completions", "?x=1", "/openai/v1/chat/completions?x=1"],
  // a full chat-completions endpoint: other /v1 paths go to the sibling path
  ["https://api.groq.com/openai/v1/chat/completions", false, "/v1/embeddings", "", "/openai/v1/embeddings"],
  ["https://api.groq.com/openai/v1/chat/completions", false, "/v1/models", "", "/openai/v1/models"],
  ["https://api.groq.com/openai/v1/chat/completions", false, "/v1/audio/transcriptions", "?a=1", "/openai/v1/audio/transcriptions?a=1"],
  ["https://api.groq.com/openai/v1/chat/completions?k=v", false, "/v1/models", "?a=1", "/openai/v1/models?k=v&a=1"],
  ["https://x.example/chat/completions", false, "/v1/embeddings", "", "/embeddings"],
];

describe("upstreamPath", () => {
  for (const [url, isBaseUrl, pathname, search, expected] of cases) {
    test(`${url} (isBaseUrl: ${isBaseUrl}) + ${pathname}${search} → ${expected}`, () => {
      assert.equal(upstreamPath(route(url, isBaseUrl), pathname, search), expected);
    });
  }

  test("never doubles /v1 for any base ending in /v1", () => {
    for (const base of ["https://a.example/v1", "https://a.example/v1/", "https://a.example/x/v1"]) {
      for (const pathname of ["/v1/chat/completions", "/v1/responses", "/v1/models/gpt-4o"]) {
        assert.ok(!upstreamPath(route(base, true), pathname, "").includes("/v1/v1"), `${base} + ${pathname}`);
      }
    }
  });

  test("the result is always a path: it never carries another host", () => {
    for (const pathname of ["/v1/chat/completions", "/v1//evil.example", "/v1/@evil.example"]) {
      for (const [url, base] of [
        ["https://a.example", true],
        ["https://a.example/v1", true],
        ["https://a.example/v1/chat/completions", false],
      ] as const) {
        const p = upstreamPath(route(url, base), pathname, "");
        assert.ok(p.startsWith("/"), p);
        assert.equal(new URL(p, "https://a.example").origin, "https://a.example", `${url} + ${pathname} → ${p}`);
      }
    }
  });
});
