/**
 * Anthropic Messages clients on `api: anthropic` routes, through the real
 * gateway with the official @anthropic-ai/sdk (maxRetries: 0): the SDK builds
 * `baseURL + "/v1/messages"`, so both `baseURL: gw.url` and
 * `baseURL: gw.url + "/anthropic"` are exercised. The SDK sends its key as
 * `Authorization: Bearer placeholder` and `anthropic-version: 2026-10-21`
 * (CLIENTS.md); the upstream must get the route's `x-api-key` and
 * `anthropic-version: 2023-06-01` instead.
 *
 * - Native passthrough: messages.create (JSON and stream),
 *   messages.stream().finalMessage(), a tool-use round trip, count_tokens,
 *   every form of a route's URL.
 * - Errors the gateway makes for a Messages client are Anthropic-shaped:
 *   unknown model 404, invalid JSON 400, count_tokens on an OpenAI route 501.
 * - Failover in `auto` over two Anthropic routes before the first output
 *   (HTTP 529 and 429, a stream opening with `event: error`, a cut): the
 *   client sees the second model's answer; the notice is a comment even with
 *   `notice: {sse: event}` configured.
 * - After the first output, a cut, a stall or an end without message_stop ends
 *   the stream with `event: error` (the SDK throws), never a clean end.
 * - No candidate left: the upstream's Anthropic error, with its status (529, 429).
 *
 * Upstreams: test/helpers/mock-anthropic.ts, which validate headers and bodies
 * like the real API and require each route's own key. Model names avoid the
 * SDK's deprecation warning (no real model names).
 */
import assert from "node:assert/strict";
import type { ServerResponse } from "node:http";
import { describe, test, type TestContext } from "node:test";
import Anthropic, { APIError } from "@anthropic-ai/sdk";
import type { TestGateway } from "../helpers/gateway.js";
import { replyChat, type Handler, type MockUpstream } from "../helpers/mock-upstream.js";
import {
  anthropicUpstream,
  messageEvents,
  replyAnthropicError,
  streamAnthropicCut,
  streamAnthropicThenError,
} from "../helpers/mock-anthropic.js";
import { deferred, rawRequest, useGateway, useMock, type RawResponse } from "../helpers/sdk.js";
import { within } from "../helpers/faults.js";

const T = { timeout: 30_000 };
const A = "claude-test-a";
const B = "claude-test-b";
const ORDERED = "auto:\n  strategy: ordered\n";
const NOTICE_EVENT = "notice:\n  sse: event\n";
const COUNT = 42;

const keyOf = (model: string) => `sk-ant-route-${model}`;
const textOf = (model: string) => `Hello from ${model}, the answering model.`;

/** A well-behaved Anthropic upstream for `model` (messages and count_tokens), requiring its route's key. */
const ok = (model: string, extra: Parameters<typeof anthropicUpstream>[0] = {}): Handler =>
  anthropicUpstream({ text: textOf(model), apiKey: keyOf(model), countTokens: COUNT, ...extra });

interface RouteSpec {
  readonly handler: Handler;
  /** The route's url from the mock's origin (default `${origin}`: a base). */
  readonly url?: (origin: string) => string;
  /** Extra route lines, indented by 4 spaces. */
  readonly extra?: string;
  /** An OpenAI route instead (default anthropic). */
  readonly openai?: boolean;
}

interface Setup {
  readonly gw: TestGateway;
  /** The SDK with `baseURL: gw.url`. */
  readonly client: Anthropic;
  /** The SDK with `baseURL: gw.url + "/anthropic"`. */
  readonly prefixed: Anthropic;
  readonly up: Readonly<Record<string, MockUpstream>>;
}

/** One keyed route (`route-<model>`) and one mock per model, in order, behind a real gateway. */
async function setup(t: TestContext, specs: Readonly<Record<string, Handler | RouteSpec>>, yaml = ""): Promise<Setup> {
  const up: Record<string, MockUpstream> = {};
  let routes = "routes:\n";
  for (const [model, value] of Object.entries(specs)) {
    const spec: RouteSpec = typeof value === "function" ? { handler: value } : value;
    const mock = await useMock(t, spec.handler);
    up[model] = mock;
    const url = spec.openai ? `${mock.origin}/v1\n    isBaseUrl: true` : `${(spec.url ?? ((origin) => origin))(mock.origin)}\n    api: anthropic`;
    routes += `  - name: route-${model}\n    url: ${url}\n    apiKey: ${keyOf(model)}\n    model: ${model}\n${spec.extra ?? ""}`;
  }
  const gw = await useGateway(t, `${yaml}${routes}`);
  return { gw, client: anthropic(gw.url), prefixed: anthropic(`${gw.url}/anthropic`), up };
}

/** The SDK as a Claude-Code-style client configures it against a gateway holding the real keys. */
function anthropic(baseURL: string): Anthropic {
  return new Anthropic({ baseURL, apiKey: "placeholder", maxRetries: 0, timeout: 30_000 });
}

const USAGE = { input_tokens: 5, output_tokens: 8, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 };

const ask = (model: string) => ({ model, max_tokens: 1024, messages: [{ role: "user" as const, content: "Say hello." }] });

function textOfMessage(message: Anthropic.Message): string {
  return message.content.map((block) => (block.type === "text" ? block.text : "")).join("");
}

/** What a request reached the upstream with: the route's credential and version, nothing of the client's. */
function assertUpstreamHeaders(mock: MockUpstream, model: string, version = "2023-06-01"): void {
  assert.ok(mock.received.length > 0, "the upstream got no request");
  for (const received of mock.received) {
    assert.equal(received.headers["x-api-key"], keyOf(model), "the route's key, in x-api-key");
    assert.equal(received.headers["anthropic-version"], version, "the route's anthropic-version, not the client's");
    assert.equal(received.headers.authorization, undefined, "the client's Authorization header reached the upstream");
    assert.ok(!JSON.stringify(received.headers).includes("placeholder"), `the client's placeholder key reached the upstream: ${JSON.stringify(received.headers)}`);
  }
}

// ---------------------------------------------------------------------------
// SSE as the client sees it

interface SseBlock {
  readonly event: string | undefined;
  readonly data: string | undefined;
  readonly comments: readonly string[];
}

function sseBlocks(text: string): SseBlock[] {
  return text
    .split(/\r?\n\r?\n/)
    .filter((block) => block.trim().length > 0)
    .map((block) => {
      let event: string | undefined;
      let data: string | undefined;
      const comments: string[] = [];
      for (const line of block.split(/\r?\n/)) {
        if (line.startsWith(":")) comments.push(line);
        else if (line.startsWith("event:")) event = line.slice(6).trim();
        else if (line.startsWith("data:")) data = data === undefined ? line.slice(5).trimStart() : `${data}\n${line.slice(5).trimStart()}`;
      }
      return { event, data, comments };
    });
}

/**
 * Every event of a raw Anthropic stream; fails on one the SDK would drop or
 * choke on: data without an `event:` line, data that is not a JSON object, an
 * event name that differs from the data's `type`.
 */
function anthropicEvents(text: string): { event: string; data: Record<string, unknown> }[] {
  const out: { event: string; data: Record<string, unknown> }[] = [];
  for (const block of sseBlocks(text)) {
    if (block.data === undefined) {
      assert.equal(block.event, undefined, `an event without data: ${block.event}`);
      continue;
    }
    assert.ok(block.event, `a data line without an event: line (the SDK drops it): ${block.data}`);
    let value: unknown;
    assert.doesNotThrow(() => (value = JSON.parse(block.data as string)), `a data line that is not JSON: ${block.data}`);
    assert.ok(value && typeof value === "object" && !Array.isArray(value), `a data line that is not an object: ${block.data}`);
    const data = value as Record<string, unknown>;
    assert.equal(data.type, block.event, `event name and data type differ: ${block.event} / ${block.data}`);
    out.push({ event: block.event, data });
  }
  return out;
}

/** The concatenated text deltas of a list of stream events. */
function streamedText(events: readonly { type: string; delta?: unknown }[]): string {
  return events
    .filter((event) => event.type === "content_block_delta")
    .map((event) => {
      const delta = event.delta as { type?: string; text?: string };
      return delta.type === "text_delta" ? (delta.text ?? "") : "";
    })
    .join("");
}

function postMessages(gw: TestGateway, body: string | Record<string, unknown>, path = "/v1/messages", headers: Record<string, string> = {}): Promise<RawResponse> {
  return rawRequest(gw.url, {
    method: "POST",
    path,
    headers: { "content-type": "application/json", "x-api-key": "placeholder", "anthropic-version": "2023-06-01", ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
}

/** Reads `messages.create({stream: true})` in a for-await loop; the loop's error, if any, with what came before it. */
async function readStream(client: Anthropic, model: string): Promise<{ events: Anthropic.RawMessageStreamEvent[]; headers: Headers; error: unknown }> {
  const { data: stream, response } = await client.messages.create({ ...ask(model), stream: true }).withResponse();
  const events: Anthropic.RawMessageStreamEvent[] = [];
  let error: unknown;
  try {
    for await (const event of stream) events.push(event);
  } catch (caught) {
    error = caught;
  }
  return { events, headers: response.headers, error };
}

/** An Anthropic error body: `{"type":"error","error":{"type","message"}}`. */
function assertAnthropicErrorBody(body: unknown, type: string | undefined, mentions?: RegExp): void {
  assert.ok(body && typeof body === "object", `not an object: ${JSON.stringify(body)}`);
  const record = body as { type?: unknown; error?: { type?: unknown; message?: unknown } };
  assert.equal(record.type, "error", `not Anthropic-shaped: ${JSON.stringify(body)}`);
  assert.ok(record.error && typeof record.error === "object", `no error object: ${JSON.stringify(body)}`);
  if (type === undefined) assert.equal(typeof record.error.type, "string", `error type: ${JSON.stringify(body)}`);
  else assert.equal(record.error.type, type, `error type: ${JSON.stringify(body)}`);
  assert.equal(typeof record.error.message, "string");
  const message = record.error.message as string;
  assert.ok(message.length > 0);
  assert.ok(!message.trimStart().startsWith("{"), `the message is a JSON dump, not a sentence: ${message}`);
  if (mentions) assert.match(message, mentions);
}

// ---------------------------------------------------------------------------

describe("native passthrough on an api: anthropic route", () => {
  for (const prefix of [false, true]) {
    const base = prefix ? "baseURL gw.url/anthropic" : "baseURL gw.url";
    test(`messages.create (${base}) → the upstream's Message; the route's x-api-key and anthropic-version 2023-06-01, never the client's`, T, async (t) => {
      const setupped = await setup(t, { [A]: ok(A), [B]: ok(B) });
      const { up } = setupped;
      const client = prefix ? setupped.prefixed : setupped.client;

      const { data, response } = await client.messages.create(ask(A)).withResponse();

      assert.equal(textOfMessage(data), textOf(A));
      assert.equal(data.model, A);
      assert.equal(data.type, "message");
      assert.equal(data.role, "assistant");
      assert.equal(data.stop_reason, "end_turn");
      assert.ok(data.usage.input_tokens > 0);
      assert.equal((data as unknown as { gateway_notice?: unknown }).gateway_notice, undefined);
      assert.equal(response.headers.get("x-gateway-model-used"), A);
      assert.equal(response.headers.get("x-gateway-attempt-count"), "1");
      assert.equal(response.headers.get("x-gateway-switched"), null);
      assert.match(response.headers.get("request-id") ?? "", /^req_01/, "the upstream's request-id is relayed");

      assert.equal(up[A]!.received.length, 1);
      assert.equal(up[B]!.received.length, 0);
      const received = up[A]!.received[0]!;
      assert.equal(received.method, "POST");
      assert.equal(received.url, "/v1/messages");
      assertUpstreamHeaders(up[A]!, A);
      assert.deepEqual(received.json, ask(A), "the body reaches the upstream as the client sent it");
    });
  }

  test("messages.create({stream: true}) → every event in order, each named, ending with message_stop", T, async (t) => {
    const { client, up } = await setup(t, { [A]: ok(A) });

    const { events, headers, error } = await readStream(client, A);

    assert.equal(error, undefined, `the loop threw: ${String(error)}`);
    assert.equal(events[0]?.type, "message_start");
    assert.equal(events.at(-1)?.type, "message_stop");
    assert.equal(events.at(-2)?.type, "message_delta");
    assert.equal((events[0] as Anthropic.RawMessageStartEvent).message.model, A);
    assert.equal(streamedText(events), textOf(A));
    assert.equal(headers.get("x-gateway-model-used"), A);
    assert.equal(headers.get("x-gateway-attempt-count"), "1");
    assert.equal(headers.get("x-gateway-switched"), null);
    assert.equal(up[A]!.received[0]!.json?.stream, true);
    assertUpstreamHeaders(up[A]!, A);
  });

  test("messages.stream().finalMessage() → the whole Message (baseURL gw.url/anthropic)", T, async (t) => {
    const { prefixed, up } = await setup(t, { [A]: ok(A) });

    const final = await prefixed.messages.stream(ask(A)).finalMessage();

    assert.equal(textOfMessage(final), textOf(A));
    assert.equal(final.model, A);
    assert.equal(final.stop_reason, "end_turn");
    assert.ok(final.usage.output_tokens > 0);
    assert.equal(up[A]!.received[0]!.url, "/v1/messages");
    assertUpstreamHeaders(up[A]!, A);
  });

  test("raw stream: no comment, every event named after its data type", T, async (t) => {
    const { gw } = await setup(t, { [A]: ok(A) });
    const res = await postMessages(gw, { ...ask(A), stream: true });
    assert.equal(res.status, 200);
    assert.match(String(res.headers["content-type"]), /text\/event-stream/);
    assert.ok(sseBlocks(res.text).every((block) => block.comments.length === 0), "a comment without a switch");
    const events = anthropicEvents(res.text);
    assert.equal(events[0]?.event, "message_start");
    assert.equal(events.at(-1)?.event, "message_stop");
  });

  test("a tool-use round trip: tool_use (streamed) → tool_result → the final answer", T, async (t) => {
    const toolId = "toolu_01GatewayRoundTrip0000001";
    const { client, up } = await setup(t, {
      [A]: ok(A, {
        text: "Let me check the weather.",
        toolUse: [{ id: toolId, name: "get_weather", input: { city: "Paris", unit: "celsius" } }],
        afterToolResult: (results) => `It is ${results.join(", ")} in Paris.`,
      }),
    });
    const tools: Anthropic.Tool[] = [
      {
        name: "get_weather",
        description: "The current weather in a city.",
        input_schema: { type: "object", properties: { city: { type: "string" }, unit: { type: "string", enum: ["celsius", "fahrenheit"] } }, required: ["city"] },
      },
    ];
    const question: Anthropic.MessageParam = { role: "user", content: "What is the weather in Paris?" };

    const first = await client.messages.stream({ model: A, max_tokens: 1024, tools, messages: [question] }).finalMessage();

    assert.equal(first.stop_reason, "tool_use");
    const call = first.content.find((block): block is Anthropic.ToolUseBlock => block.type === "tool_use");
    assert.ok(call, `no tool_use block: ${JSON.stringify(first.content)}`);
    assert.equal(call.id, toolId, "the tool call keeps the upstream's id");
    assert.equal(call.name, "get_weather");
    assert.deepEqual(call.input, { city: "Paris", unit: "celsius" }, "the streamed partial_json fragments add up to the input");
    assert.equal(first.content[0]?.type, "text");

    const second = await client.messages.create({
      model: A,
      max_tokens: 1024,
      tools,
      messages: [question, { role: "assistant", content: first.content }, { role: "user", content: [{ type: "tool_result", tool_use_id: call.id, content: "18 °C and sunny" }] }],
    });

    assert.equal(second.stop_reason, "end_turn");
    assert.equal(textOfMessage(second), "It is 18 °C and sunny in Paris.");
    assert.equal(up[A]!.received.length, 2, "the mock validates tool_use/tool_result pairing: a bad round trip is a 400, not a second answer");
    const sent = up[A]!.received[1]!.json as { messages: { role: string; content: unknown }[] };
    assert.deepEqual(sent.messages.at(-1), { role: "user", content: [{ type: "tool_result", tool_use_id: toolId, content: "18 °C and sunny" }] });
    assertUpstreamHeaders(up[A]!, A);
  });

  const urlForms: { form: string; url: (origin: string) => string; path: string }[] = [
    { form: "http://host", url: (o) => o, path: "" },
    { form: "http://host/v1", url: (o) => `${o}/v1`, path: "" },
    { form: "http://host/v1/messages", url: (o) => `${o}/v1/messages`, path: "" },
    { form: "http://host/anthropic", url: (o) => `${o}/anthropic`, path: "/anthropic" },
    { form: "http://host/anthropic/v1", url: (o) => `${o}/anthropic/v1`, path: "/anthropic" },
    { form: "http://host/anthropic/v1/messages", url: (o) => `${o}/anthropic/v1/messages`, path: "/anthropic" },
  ];
  for (const { form, url, path } of urlForms) {
    test(`a route url of the form ${form} → messages to ${path}/v1/messages, count_tokens to ${path}/v1/messages/count_tokens`, T, async (t) => {
      const { client, prefixed, up } = await setup(t, { [A]: { handler: ok(A), url } });

      const message = await client.messages.create(ask(A));
      const streamed = await prefixed.messages.stream(ask(A)).finalMessage();
      const count = await prefixed.messages.countTokens({ model: A, messages: ask(A).messages });

      assert.equal(textOfMessage(message), textOf(A));
      assert.equal(textOfMessage(streamed), textOf(A));
      assert.equal(count.input_tokens, COUNT);
      assert.deepEqual(
        up[A]!.received.map((received) => received.url),
        [`${path}/v1/messages`, `${path}/v1/messages`, `${path}/v1/messages/count_tokens`],
      );
      assertUpstreamHeaders(up[A]!, A);
    });
  }

  test("an OpenClaw-style client (x-api-key placeholder, anthropic-version 2023-06-01) → the route's key replaces it", T, async (t) => {
    const { gw, up } = await setup(t, { [A]: ok(A) });
    const res = await postMessages(gw, ask(A), "/anthropic/v1/messages", { "x-api-key": "placeholder", authorization: "Bearer placeholder" });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.json().content[0].text, textOf(A));
    assertUpstreamHeaders(up[A]!, A);
  });

  test("a route whose headers set anthropic-version → that version reaches the upstream, not the default nor the client's", T, async (t) => {
    const { client, up } = await setup(t, { [A]: { handler: ok(A), extra: '    headers:\n      anthropic-version: "2023-01-01"\n' } });
    const message = await client.messages.create(ask(A));
    assert.equal(textOfMessage(message), textOf(A));
    assertUpstreamHeaders(up[A]!, A, "2023-01-01");
  });
});

describe("an SDK on API 2026-10-21, a route on 2023-06-01", () => {
  // The SDK's types allow system messages inside the conversation; the route's version does not, so they join `system`.
  const conversation = {
    system: "Be brief.",
    messages: [
      { role: "user" as const, content: "Say hello." },
      { role: "assistant" as const, content: "Hello." },
      { role: "system" as const, content: "The user switched to plan mode." },
      { role: "user" as const, content: "Plan it." },
    ],
  };

  test("messages.create with a system message inside messages → answered; the upstream gets it in system, in order", T, async (t) => {
    const { client, up } = await setup(t, { [A]: ok(A) });
    const message = await client.messages.create({ model: A, max_tokens: 1024, ...conversation } as unknown as Anthropic.MessageCreateParamsNonStreaming);
    assert.equal(textOfMessage(message), textOf(A));
    const sent = up[A]!.received[0]!.json as { system?: unknown; messages?: { role: string }[] };
    assert.deepEqual(sent.system, [{ type: "text", text: "Be brief." }, { type: "text", text: "The user switched to plan mode." }]);
    assert.deepEqual(sent.messages?.map((m) => m.role), ["user", "assistant", "user"]);
    assertUpstreamHeaders(up[A]!, A);
  });

  test("messages.countTokens with a system message inside messages → counted", T, async (t) => {
    const { client, up } = await setup(t, { [A]: ok(A) });
    const counted = await client.messages.countTokens({ model: A, ...conversation } as unknown as Anthropic.MessageCountTokensParams);
    assert.deepEqual(counted, { input_tokens: COUNT });
    assert.ok(!(up[A]!.received[0]!.json as { messages: { role: string }[] }).messages.some((m) => m.role === "system"));
  });

  test("a route that pins 2026-10-21 in its headers gets the body as the client sent it", T, async (t) => {
    const { client, up } = await setup(t, { [A]: { handler: ok(A), extra: '    headers:\n      anthropic-version: "2026-10-21"\n' } });
    const params = { model: A, max_tokens: 1024, ...conversation };
    await client.messages.create(params as unknown as Anthropic.MessageCreateParamsNonStreaming);
    assert.deepEqual(up[A]!.received[0]!.json, params);
  });
});

describe("count_tokens", () => {
  for (const prefix of [false, true]) {
    test(`messages.countTokens (${prefix ? "baseURL gw.url/anthropic" : "baseURL gw.url"}) → forwarded to the Anthropic route`, T, async (t) => {
      const setupped = await setup(t, { [A]: ok(A) });
      const client = prefix ? setupped.prefixed : setupped.client;
      const params = { model: A, system: "Be brief.", messages: ask(A).messages };

      const { data, response } = await client.messages.countTokens(params).withResponse();

      assert.deepEqual(data, { input_tokens: COUNT });
      assert.equal(response.headers.get("x-gateway-model-used"), A);
      const up = setupped.up[A]!;
      assert.equal(up.received.length, 1);
      assert.equal(up.received[0]!.url, "/v1/messages/count_tokens");
      assert.deepEqual(up.received[0]!.json, params);
      assertUpstreamHeaders(up, A);
    });
  }

  test("count_tokens for a model on an OpenAI route → 501, Anthropic-shaped, naming api: anthropic; the upstream is not called", T, async (t) => {
    const { gw, client, up } = await setup(t, { [A]: ok(A), "gpt-test": { handler: replyChat(), openai: true } });

    await assert.rejects(client.messages.countTokens({ model: "gpt-test", messages: ask("gpt-test").messages }), (error: unknown) => {
      assert.ok(error instanceof APIError, `expected an APIError, got ${String(error)}`);
      assert.equal(error.status, 501);
      assertAnthropicErrorBody(error.error, undefined, /api: anthropic/);
      return true;
    });

    const res = await postMessages(gw, { model: "gpt-test", messages: ask("gpt-test").messages }, "/anthropic/v1/messages/count_tokens");
    assert.equal(res.status, 501);
    assert.match(String(res.headers["content-type"]), /application\/json/);
    assertAnthropicErrorBody(res.json(), undefined, /api: anthropic/);
    assert.equal(up["gpt-test"]!.received.length, 0);
    assert.equal(up[A]!.received.length, 0);
  });
});

describe("errors the gateway makes are Anthropic-shaped", () => {
  test("an unknown model → 404 not_found_error (the SDK's NotFoundError)", T, async (t) => {
    const { client, prefixed, up } = await setup(t, { [A]: ok(A) });
    for (const sdkClient of [client, prefixed]) {
      await assert.rejects(sdkClient.messages.create(ask("claude-test-nonexistent")), (error: unknown) => {
        assert.ok(error instanceof Anthropic.NotFoundError, `expected a NotFoundError, got ${String(error)}`);
        assert.equal(error.status, 404);
        assertAnthropicErrorBody(error.error, "not_found_error", /claude-test-nonexistent/);
        return true;
      });
    }
    assert.equal(up[A]!.received.length, 0);
  });

  for (const path of ["/v1/messages", "/anthropic/v1/messages"]) {
    test(`invalid JSON on ${path} → 400 invalid_request_error`, T, async (t) => {
      const { gw, up } = await setup(t, { [A]: ok(A) });
      const res = await postMessages(gw, `{"model": "${A}", "max_tokens": 10, "messages": [`, path);
      assert.equal(res.status, 400);
      assert.match(String(res.headers["content-type"]), /application\/json/);
      assertAnthropicErrorBody(res.json(), "invalid_request_error");
      assert.equal(up[A]!.received.length, 0);
    });
  }
});

// ---------------------------------------------------------------------------
// failover

interface Scenario {
  readonly what: string;
  readonly handler: Handler;
  /** Requests model-a gets before the switch; undefined: not checked. */
  readonly attemptsOnA?: number;
  readonly trigger?: number | null;
  /** Also asked without streaming (an HTTP error answers both). */
  readonly json?: boolean;
  /** Extra lines for model-a's route (its timeouts). */
  readonly extraA?: string;
}

/** message_start, content_block_start and ping, then silence: no output within firstTokenMs. */
function stallAfterPreamble(): Handler {
  return (req, res) => {
    const model = typeof req.json?.model === "string" ? req.json.model : "unknown";
    const events = messageEvents(model, [{ type: "text", text: "Never sent." }], "end_turn", USAGE);
    res.writeHead(200, { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache" });
    for (const event of events.slice(0, 3)) res.write(event);
  };
}

const scenarios: readonly Scenario[] = [
  { what: "HTTP 529 overloaded_error", handler: replyAnthropicError(529, "overloaded_error"), attemptsOnA: 2, trigger: 529, json: true },
  { what: "HTTP 429 rate_limit_error", handler: replyAnthropicError(429, "rate_limit_error"), attemptsOnA: 1, trigger: 429, json: true },
  { what: "a stream opening with event: error overloaded_error", handler: streamAnthropicThenError(), attemptsOnA: 2, trigger: 529 },
  { what: "a cut before any output (message_start, content_block_start, ping, then the socket dies)", handler: streamAnthropicCut({ pieces: [] }) },
  {
    what: "a stall after message_start, content_block_start and ping (no output within firstTokenMs: 300)",
    handler: stallAfterPreamble(),
    attemptsOnA: 1,
    trigger: null,
    extraA: "    timeouts:\n      firstTokenMs: 300\n",
  },
];

type HeaderSource = { get(name: string): string | null };
const rawHeaders = (res: RawResponse): HeaderSource => ({ get: (name) => (res.headers[name] === undefined ? null : String(res.headers[name])) });

function assertSwitched(headers: HeaderSource, up: Readonly<Record<string, MockUpstream>>, attemptsOnA: number | undefined): void {
  if (attemptsOnA !== undefined) assert.equal(up[A]!.received.length, attemptsOnA, `requests to ${A}`);
  assert.ok(up[A]!.received.length >= 1);
  assert.equal(up[B]!.received.length, 1, `requests to ${B}`);
  assert.equal(up[B]!.received[0]!.json?.model, B, "the next candidate gets its own model name");
  assertUpstreamHeaders(up[B]!, B);
  assertUpstreamHeaders(up[A]!, A);
  assert.equal(headers.get("x-gateway-model-used"), B);
  assert.equal(headers.get("x-gateway-switched"), "1");
  assert.equal(headers.get("x-gateway-attempt-count"), String(up[A]!.received.length + 1));
}

describe("failover in auto over two Anthropic routes, before the first output", () => {
  for (const scenario of scenarios.filter((s) => s.json)) {
    test(`${scenario.what} → messages.create gets the second model's Message, with a gateway_notice`, T, async (t) => {
      const { client, up } = await setup(t, { [A]: { handler: scenario.handler, extra: scenario.extraA }, [B]: ok(B) }, ORDERED);

      const { data, response } = await client.messages.create(ask("auto")).withResponse();

      assert.equal(textOfMessage(data), textOf(B));
      assert.equal(data.model, B);
      assertSwitched(response.headers, up, scenario.attemptsOnA);
      const notice = (data as unknown as { gateway_notice?: Record<string, unknown> }).gateway_notice;
      assert.ok(notice, "no gateway_notice in the JSON answer after a switch");
      assert.equal(notice.trigger_status, scenario.trigger);
      assert.equal(notice.from_model, A);
      assert.equal(notice.to_model, B);
      assert.equal(notice.to_route, `route-${B}`);
    });
  }

  for (const scenario of scenarios) {
    test(`${scenario.what} → for await over create({stream: true}) sees only the second model's answer`, T, async (t) => {
      const { client, up } = await setup(t, { [A]: { handler: scenario.handler, extra: scenario.extraA }, [B]: ok(B) }, ORDERED);

      const { events, headers, error } = await readStream(client, "auto");

      assert.equal(error, undefined, `the loop threw: ${String(error)}`);
      assert.equal(events.filter((event) => event.type === "message_start").length, 1, "one message_start: nothing of the failed attempt");
      assert.equal((events[0] as Anthropic.RawMessageStartEvent).message.model, B);
      assert.equal(events.at(-1)?.type, "message_stop");
      assert.equal(streamedText(events), textOf(B));
      assertSwitched(headers, up, scenario.attemptsOnA);
    });

    test(`${scenario.what} → messages.stream().finalMessage() works, even with notice: {sse: event} configured`, T, async (t) => {
      const { prefixed, up } = await setup(t, { [A]: { handler: scenario.handler, extra: scenario.extraA }, [B]: ok(B) }, `${ORDERED}${NOTICE_EVENT}`);

      const final = await prefixed.messages.stream(ask("auto")).finalMessage();

      assert.equal(textOfMessage(final), textOf(B));
      assert.equal(final.model, B);
      assert.equal(final.stop_reason, "end_turn");
      assert.equal(up[B]!.received.length, 1);
    });

    test(`${scenario.what} → raw: the notice is a comment line (even with notice: {sse: event}), then only the second model's events`, T, async (t) => {
      const { gw, up } = await setup(t, { [A]: { handler: scenario.handler, extra: scenario.extraA }, [B]: ok(B) }, `${ORDERED}${NOTICE_EVENT}`);

      const res = await postMessages(gw, { ...ask("auto"), stream: true });

      assert.equal(res.status, 200, res.text);
      assert.match(String(res.headers["content-type"]), /text\/event-stream/);
      assertSwitched(rawHeaders(res), up, scenario.attemptsOnA);
      assert.ok(res.text.startsWith(": gateway_notice "), `the stream does not open with the notice comment: ${JSON.stringify(res.text.slice(0, 120))}`);
      assert.ok(!/^event: *gateway_notice/m.test(res.text), "a named gateway_notice event in an Anthropic stream");
      const firstLine = res.text.slice(0, res.text.indexOf("\n"));
      const notice = JSON.parse(firstLine.slice(": gateway_notice ".length)) as Record<string, unknown>;
      assert.equal(notice.from_model, A);
      assert.equal(notice.to_model, B);
      if (scenario.trigger !== undefined) assert.equal(notice.trigger_status, scenario.trigger);

      const events = anthropicEvents(res.text);
      assert.equal(events[0]?.event, "message_start");
      assert.equal((events[0]!.data.message as { model?: unknown }).model, B);
      assert.equal(events.filter((event) => event.event === "message_start").length, 1);
      assert.ok(!events.some((event) => event.event === "error"), "an error event of the failed attempt reached the client");
      assert.equal(events.at(-1)?.event, "message_stop");
      assert.equal(streamedText(events.map((event) => event.data as { type: string; delta?: unknown })), textOf(B));
    });
  }

  test("a named group of two Anthropic routes fails over the same way (HTTP 529 → the second member)", T, async (t) => {
    const { client, up } = await setup(t, { [A]: replyAnthropicError(529, "overloaded_error"), [B]: ok(B) }, `groups:\n  claude:\n    models: [${A}, ${B}]\n    strategy: ordered\n`);
    const { data, response } = await client.messages.create(ask("claude")).withResponse();
    assert.equal(textOfMessage(data), textOf(B));
    assertSwitched(response.headers, up, 2);
  });
});

// ---------------------------------------------------------------------------
// after the first output

/**
 * A whole streamed answer without its message_stop; then the stream ends
 * cleanly (`end: true`) or goes silent. `closed` resolves when the gateway lets
 * go of the upstream request.
 */
function withoutMessageStop(end: boolean): { handler: Handler; closed: Promise<void> } {
  const closed = deferred<void>();
  return {
    closed: closed.promise,
    handler: (req, res: ServerResponse) => {
      res.on("close", () => closed.resolve());
      const model = typeof req.json?.model === "string" ? req.json.model : "unknown";
      const events = messageEvents(model, [{ type: "text", text: "Hello from the partial answer." }], "end_turn", USAGE);
      res.writeHead(200, { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache" });
      for (const event of events.slice(0, -1)) res.write(event);
      if (end) res.end();
    },
  };
}

/** The raw stream ends with `event: error` / `{"type":"error","error":{"type":"api_error",...}}`, and has no message_stop. */
function assertInterrupted(res: RawResponse, text: string): void {
  assert.equal(res.status, 200);
  const events = anthropicEvents(res.text);
  const last = events.at(-1);
  assert.equal(last?.event, "error", `the stream does not end with event: error: ${JSON.stringify(res.text.slice(-300))}`);
  assertAnthropicErrorBody(last!.data, "api_error");
  assert.ok(!events.some((event) => event.event === "message_stop"), "message_stop after a failure");
  assert.equal(streamedText(events.map((event) => event.data as { type: string; delta?: unknown })), text, "the output before the failure");
}

function assertSdkStreamError(error: unknown): void {
  assert.ok(error instanceof APIError, `the loop ended without an APIError (${String(error)}): a truncated answer looks complete`);
  assertAnthropicErrorBody(error.error, "api_error");
}

describe("a failure after the first output", () => {
  test("a cut → the for-await loop throws an APIError after the text already sent", T, async (t) => {
    const { client, up } = await setup(t, { [A]: streamAnthropicCut({ pieces: ["Hello", " from", " the"] }), [B]: ok(B) });

    const { events, error } = await readStream(client, A);

    assertSdkStreamError(error);
    assert.equal(streamedText(events), "Hello from the");
    assert.ok(!events.some((event) => event.type === "message_stop"));
    assert.equal(up[B]!.received.length, 0);
  });

  test("a cut → messages.stream().finalMessage() rejects", T, async (t) => {
    const { client } = await setup(t, { [A]: streamAnthropicCut() });
    await assert.rejects(client.messages.stream(ask(A)).finalMessage(), (error: unknown) => {
      assert.ok(error instanceof APIError, `expected an APIError, got ${String(error)}`);
      return true;
    });
  });

  test("a cut → raw: the stream ends with event: error (api_error), not a clean end", T, async (t) => {
    const { gw } = await setup(t, { [A]: streamAnthropicCut({ pieces: ["Hello", " from", " the"] }) });
    assertInterrupted(await postMessages(gw, { ...ask(A), stream: true }), "Hello from the");
  });

  test("an end without message_stop → event: error; the SDK throws", T, async (t) => {
    const { gw, client } = await setup(t, { [A]: withoutMessageStop(true).handler });

    assertInterrupted(await postMessages(gw, { ...ask(A), stream: true }), "Hello from the partial answer.");

    const { events, error } = await readStream(client, A);
    assertSdkStreamError(error);
    assert.equal(streamedText(events), "Hello from the partial answer.");
  });

  test("a stall longer than idleMs (300) → event: error ends the stream, and the upstream request is closed", T, async (t) => {
    const stalled = withoutMessageStop(false);
    const { gw } = await setup(t, { [A]: { handler: stalled.handler, extra: "    timeouts:\n      idleMs: 300\n" } });

    const started = performance.now();
    const res = await postMessages(gw, { ...ask(A), stream: true });
    const elapsed = performance.now() - started;

    assertInterrupted(res, "Hello from the partial answer.");
    assert.ok(elapsed >= 300 - 5 && elapsed < 300 + 2_500, `took ${elapsed} ms`);
    await within(stalled.closed, 2_000, "the stalled upstream request closing");
  });

  test("an upstream event: error after output is relayed as it is; the SDK throws it", T, async (t) => {
    const { gw, client } = await setup(t, { [A]: streamAnthropicThenError({ afterText: ["Hello", " there"] }) });

    const { events, error } = await readStream(client, A);
    assert.ok(error instanceof APIError, `expected an APIError, got ${String(error)}`);
    assertAnthropicErrorBody(error.error, "overloaded_error");
    assert.equal(streamedText(events), "Hello there");

    const res = await postMessages(gw, { ...ask(A), stream: true });
    assert.equal(res.status, 200);
    const raw = anthropicEvents(res.text);
    assert.equal(raw.at(-1)?.event, "error");
    assert.equal((raw.at(-1)!.data.error as { type?: unknown }).type, "overloaded_error");
    assert.equal(raw.filter((event) => event.event === "error").length, 1, "one error event, the upstream's");
  });
});

// ---------------------------------------------------------------------------

describe("no candidate left", () => {
  for (const stream of [false, true]) {
    test(`a pinned model answering 529 twice (${stream ? "stream" : "non-stream"}) → the client gets 529 with the upstream's Anthropic error body`, T, async (t) => {
      const { client, up } = await setup(t, { [A]: replyAnthropicError(529, "overloaded_error"), [B]: ok(B) });

      await assert.rejects(stream ? readStream(client, A) : client.messages.create(ask(A)), (error: unknown) => {
        assert.ok(error instanceof APIError, `expected an APIError, got ${String(error)}`);
        assert.equal(error.status, 529);
        assertAnthropicErrorBody(error.error, "overloaded_error");
        assert.equal((error.error as { error: { message: string } }).error.message, "Overloaded");
        assert.equal(error.headers?.get("x-gateway-attempt-count"), "2");
        return true;
      });
      assert.equal(up[A]!.received.length, 2, "529 is retried once on a lone model");
      assert.equal(up[B]!.received.length, 0, "a pinned model without a chain never switches");

      // The same through raw HTTP, on a fresh gateway (the two 529s above leave model-a one failure from an open breaker).
      const fresh = await setup(t, { [A]: replyAnthropicError(529, "overloaded_error") });
      const res = await postMessages(fresh.gw, { ...ask(A), ...(stream ? { stream: true } : {}) });
      assert.equal(res.status, 529);
      assert.match(String(res.headers["content-type"]), /application\/json/);
      const body = res.json() as { request_id?: unknown };
      assertAnthropicErrorBody(body, "overloaded_error");
      assert.equal(body.request_id, res.headers["request-id"], "the body and request-id of the upstream's last answer, unchanged");
      assert.equal(res.headers["x-gateway-model-used"], A);
      assert.equal(res.headers["x-gateway-attempt-count"], "2");
      assert.equal(res.headers["x-gateway-switched"], undefined);
      assert.equal(fresh.up[A]!.received.length, 2);
      assertUpstreamHeaders(fresh.up[A]!, A);
    });
  }

  const opening = [
    { type: "overloaded_error", status: 529 },
    { type: "rate_limit_error", status: 429 },
  ];
  for (const { type, status } of opening) {
    test(`a pinned model whose stream opens with event: error ${type} → HTTP ${status} with the upstream's error, never a 200 stream`, T, async (t) => {
      const { gw, client, up } = await setup(t, { [A]: streamAnthropicThenError({ type }) }, "retry:\n  retries: 0\n");

      await assert.rejects(readStream(client, A), (error: unknown) => {
        assert.ok(error instanceof APIError, `expected an APIError, got ${String(error)}`);
        assert.equal(error.status, status);
        assertAnthropicErrorBody(error.error, type);
        return true;
      });

      const res = await postMessages(gw, { ...ask(A), stream: true });
      assert.equal(res.status, status);
      assert.match(String(res.headers["content-type"]), /application\/json/);
      assertAnthropicErrorBody(res.json(), type);
      assert.equal(res.headers["x-gateway-model-used"], A);
      assert.equal(up[A]!.received.length, 2, "one attempt per request (retries: 0)");
    });
  }
});
