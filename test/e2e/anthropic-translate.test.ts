/**
 * The translation between Anthropic Messages and OpenAI Chat Completions
 * (issue #6), through the real gateway with both official SDKs (maxRetries: 0):
 *
 * - An Anthropic Messages client (`@anthropic-ai/sdk`, `baseURL: gw.url` and
 *   `gw.url + "/anthropic"`) asking for a model on an OpenAI route: its
 *   request becomes a chat completion request, the answer comes back as a
 *   Message (JSON), or as Anthropic's named events (SSE) — text, tool calls
 *   (two in one turn, their arguments split and interleaved), usage, stop
 *   reasons, a tool_result round trip, tool_choice.
 * - An OpenAI client (`openai` SDK) asking /v1/chat/completions for a model on
 *   an `api: anthropic` route: the reverse, with the route's `maxTokens` when
 *   the client set none, and usage chunks only when asked for.
 * - Both kinds of route in one `auto` group: failover before the first output
 *   works across kinds, streaming or not, in both directions.
 * - After the first output, a failure ends a translated stream in the
 *   client's own error form (`event: error`, `data: {"error": …}`), never cleanly.
 * - Errors arrive in the client's shape, whatever the upstream spoke; a
 *   request that cannot be translated is a 400 without calling the upstream.
 *
 * Upstreams validate like the real APIs so that a bad translation fails here:
 * test/helpers/mock-openai-strict.ts (Chat Completions: Anthropic-shaped
 * leftovers, unpaired tool messages, leaked Anthropic headers are 400s) and
 * test/helpers/mock-anthropic.ts (Messages). Every route requires its own key.
 */
import assert from "node:assert/strict";
import { describe, test, type TestContext } from "node:test";
import Anthropic, { APIError as AnthropicAPIError } from "@anthropic-ai/sdk";
import OpenAI, { APIError as OpenAIAPIError } from "openai";
import type { TestGateway } from "../helpers/gateway.js";
import { sendJson, type Handler, type MockUpstream } from "../helpers/mock-upstream.js";
import { anthropicUpstream, replyAnthropicError, streamAnthropicThenError, type ReplyMessagesOptions } from "../helpers/mock-anthropic.js";
import { replyOpenAIError, strictChat, type StrictChatOptions, type ToolCallAnswer } from "../helpers/mock-openai-strict.js";
import { rawRequest, sdk, sseData, useGateway, useMock, type RawResponse } from "../helpers/sdk.js";

const T = { timeout: 30_000 };
/** A model on an OpenAI route. */
const GPT = "gpt-test-x";
/** A model on an Anthropic route. */
const CLAUDE = "claude-test-y";
const ORDERED = "auto:\n  strategy: ordered\n";

const keyOf = (model: string) => `sk-route-${model}`;
const textOf = (model: string) => `Hello from ${model}, the answering model.`;

type Json = Record<string, unknown>;

interface RouteSpec {
  readonly api: "openai" | "anthropic";
  readonly handler: Handler;
  /** Extra route lines, indented by 4 spaces. */
  readonly extra?: string;
}

const openaiRoute = (handler: Handler, extra?: string): RouteSpec => ({ api: "openai", handler, ...(extra === undefined ? {} : { extra }) });
const anthropicRoute = (handler: Handler, extra?: string): RouteSpec => ({ api: "anthropic", handler, ...(extra === undefined ? {} : { extra }) });

/** A well-behaved OpenAI upstream for `model`, requiring its route's key. */
const gptOk = (model: string, options: StrictChatOptions = {}): Handler => strictChat({ text: textOf(model), apiKey: keyOf(model), ...options });
/** A well-behaved Anthropic upstream for `model`, requiring its route's key. */
const claudeOk = (model: string, options: ReplyMessagesOptions = {}): Handler => anthropicUpstream({ text: textOf(model), apiKey: keyOf(model), ...options });

interface Setup {
  readonly gw: TestGateway;
  /** The Anthropic SDK with `baseURL: gw.url`. */
  readonly claude: Anthropic;
  /** The Anthropic SDK with `baseURL: gw.url + "/anthropic"`. */
  readonly prefixed: Anthropic;
  /** The openai SDK with `baseURL: gw.url + "/v1"`. */
  readonly openai: OpenAI;
  readonly up: Readonly<Record<string, MockUpstream>>;
}

/** One keyed route (`route-<model>`) and one mock per model, in order, behind a real gateway. */
async function setup(t: TestContext, specs: Readonly<Record<string, RouteSpec>>, yaml = ""): Promise<Setup> {
  const up: Record<string, MockUpstream> = {};
  let routes = "routes:\n";
  for (const [model, spec] of Object.entries(specs)) {
    const mock = await useMock(t, spec.handler);
    up[model] = mock;
    const url = spec.api === "openai" ? `${mock.origin}/v1\n    isBaseUrl: true` : `${mock.origin}\n    api: anthropic`;
    routes += `  - name: route-${model}\n    url: ${url}\n    apiKey: ${keyOf(model)}\n    model: ${model}\n${spec.extra ?? ""}`;
  }
  const gw = await useGateway(t, `${yaml}${routes}`);
  const anthropic = (baseURL: string) => new Anthropic({ baseURL, apiKey: "placeholder", maxRetries: 0, timeout: 30_000 });
  return { gw, claude: anthropic(gw.url), prefixed: anthropic(`${gw.url}/anthropic`), openai: sdk(gw), up };
}

const ask = (model: string) => ({ model, max_tokens: 1024, messages: [{ role: "user" as const, content: "Say hello." }] });
const chatAsk = (model: string) => ({ model, messages: [{ role: "user" as const, content: "Say hello." }] });

function textOfMessage(message: Anthropic.Message): string {
  return message.content.map((block) => (block.type === "text" ? block.text : "")).join("");
}

/** The text of Chat Completions content: a string or text parts. */
function chatText(content: unknown): string {
  if (typeof content === "string") return content;
  if (Array.isArray(content)) return content.map((part) => String((part as { text?: unknown }).text ?? "")).join("");
  return "";
}

/** The text of Anthropic content: a string or text blocks. */
function blocksText(content: unknown): string {
  if (typeof content === "string") return content;
  if (Array.isArray(content)) return content.map((block) => ((block as { type?: unknown }).type === "text" ? String((block as { text?: unknown }).text) : "")).join("");
  return "";
}

/** What reached an OpenAI upstream: its chat endpoint, the route's Bearer key, nothing of the client's nor of Anthropic's. */
function assertOpenAIUpstream(mock: MockUpstream, model: string): void {
  assert.ok(mock.received.length > 0, "the upstream got no request");
  for (const received of mock.received) {
    assert.equal(received.method, "POST");
    assert.equal(received.url, "/v1/chat/completions");
    assert.equal(received.headers.authorization, `Bearer ${keyOf(model)}`, "the route's key, as a Bearer token");
    assert.equal(received.headers["x-api-key"], undefined, "an x-api-key header reached the OpenAI upstream");
    assert.equal(received.headers["anthropic-version"], undefined, "an anthropic-version header reached the OpenAI upstream");
    assert.equal(received.headers["anthropic-beta"], undefined);
    assert.ok(!JSON.stringify(received.headers).includes("placeholder"), `the client's placeholder key reached the upstream: ${JSON.stringify(received.headers)}`);
  }
}

/** What reached an Anthropic upstream: /v1/messages with the route's x-api-key and version 2023-06-01. */
function assertAnthropicUpstream(mock: MockUpstream, model: string): void {
  assert.ok(mock.received.length > 0, "the upstream got no request");
  for (const received of mock.received) {
    assert.equal(received.method, "POST");
    assert.equal(received.url, "/v1/messages");
    assert.equal(received.headers["x-api-key"], keyOf(model), "the route's key, in x-api-key");
    assert.equal(received.headers["anthropic-version"], "2023-06-01");
    assert.equal(received.headers.authorization, undefined, "the client's Authorization header reached the upstream");
    assert.ok(!JSON.stringify(received.headers).includes("placeholder"), `the client's placeholder key reached the upstream: ${JSON.stringify(received.headers)}`);
  }
}

function assertSwitchHeaders(headers: { get(name: string): string | null }, from: MockUpstream, to: string): void {
  assert.equal(headers.get("x-gateway-model-used"), to);
  assert.equal(headers.get("x-gateway-switched"), "1");
  assert.ok(from.received.length >= 1, "the first candidate was never tried");
  assert.equal(headers.get("x-gateway-attempt-count"), String(from.received.length + 1), "every attempt on the first candidate, then one on the second");
}

const rawHeaders = (res: RawResponse) => ({ get: (name: string) => (res.headers[name] === undefined ? null : String(res.headers[name])) });

// ---------------------------------------------------------------------------
// Anthropic streams

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

/** Every event of a raw Anthropic stream; fails on one the SDK would drop or choke on (no `event:` line, not a JSON object, a name that is not its type). */
function anthropicEvents(text: string): { event: string; data: Json }[] {
  const out: { event: string; data: Json }[] = [];
  for (const block of sseBlocks(text)) {
    if (block.data === undefined) {
      assert.equal(block.event, undefined, `an event without data: ${block.event}`);
      continue;
    }
    assert.ok(block.event, `a data line without an event: line (the SDK drops it): ${block.data}`);
    let value: unknown;
    assert.doesNotThrow(() => (value = JSON.parse(block.data as string)), `a data line that is not JSON: ${block.data}`);
    assert.ok(value && typeof value === "object" && !Array.isArray(value), `a data line that is not an object: ${block.data}`);
    const data = value as Json;
    assert.equal(data.type, block.event, `event name and data type differ: ${block.event} / ${block.data}`);
    out.push({ event: block.event, data });
  }
  return out;
}

type StreamEvent = { readonly type: string; readonly index?: unknown; readonly delta?: unknown; readonly content_block?: unknown };

/**
 * The order the real API streams in: message_start; content blocks one after
 * another, each start → deltas → stop, indices 0, 1, 2…; message_delta;
 * message_stop (pings anywhere). A block opened before the previous one closed,
 * or a delta for another block, is what a client assuming the API's order trips on.
 */
function assertEventGrammar(events: readonly StreamEvent[]): void {
  const seq = events.filter((event) => event.type !== "ping");
  const types = seq.map((event) => event.type).join(" ");
  assert.equal(seq[0]?.type, "message_start", types);
  assert.equal(seq.at(-1)?.type, "message_stop", types);
  assert.equal(seq.at(-2)?.type, "message_delta", types);
  let open: unknown;
  let next = 0;
  for (const event of seq.slice(1, -2)) {
    switch (event.type) {
      case "content_block_start":
        assert.equal(open, undefined, `block ${String(event.index)} started while block ${String(open)} is open: ${types}`);
        assert.equal(event.index, next, `content block indices must run 0, 1, 2…: ${types}`);
        open = event.index;
        next++;
        break;
      case "content_block_delta":
        assert.equal(event.index, open, `a delta for block ${String(event.index)} while block ${String(open)} is open`);
        break;
      case "content_block_stop":
        assert.equal(event.index, open, `a stop for block ${String(event.index)} while block ${String(open)} is open`);
        open = undefined;
        break;
      default:
        assert.fail(`${event.type} between message_start and message_delta: ${types}`);
    }
  }
  assert.equal(open, undefined, "a block left open");
  assert.ok(next > 0, `no content block: ${types}`);
}

function streamedText(events: readonly StreamEvent[]): string {
  return events
    .filter((event) => event.type === "content_block_delta")
    .map((event) => {
      const delta = event.delta as { type?: string; text?: string };
      return delta.type === "text_delta" ? (delta.text ?? "") : "";
    })
    .join("");
}

/** The concatenated input_json_delta fragments per block index. */
function streamedInputs(events: readonly StreamEvent[]): Map<number, string> {
  const out = new Map<number, string>();
  for (const event of events) {
    if (event.type !== "content_block_delta") continue;
    const delta = event.delta as { type?: string; partial_json?: string };
    if (delta.type === "input_json_delta") out.set(event.index as number, (out.get(event.index as number) ?? "") + (delta.partial_json ?? ""));
  }
  return out;
}

/** Reads `messages.create({stream: true})` in a for-await loop; the loop's error, if any, with what came before it. */
async function readStream(client: Anthropic, params: Anthropic.MessageCreateParamsNonStreaming): Promise<{ events: Anthropic.RawMessageStreamEvent[]; headers: Headers; error: unknown }> {
  const { data: stream, response } = await client.messages.create({ ...params, stream: true }).withResponse();
  const events: Anthropic.RawMessageStreamEvent[] = [];
  let error: unknown;
  try {
    for await (const event of stream) events.push(event);
  } catch (caught) {
    error = caught;
  }
  return { events, headers: response.headers, error };
}

/** A Messages request over raw HTTP, as an OpenClaw-style client sends it (x-api-key placeholder, anthropic-version 2023-06-01). */
function postMessages(gw: TestGateway, body: Json, path = "/v1/messages"): Promise<RawResponse> {
  return rawRequest(gw.url, {
    method: "POST",
    path,
    headers: { "content-type": "application/json", "x-api-key": "placeholder", "anthropic-version": "2023-06-01", "anthropic-beta": "fine-grained-tool-streaming-2025-05-14" },
    body: JSON.stringify(body),
  });
}

function postChat(gw: TestGateway, body: Json): Promise<RawResponse> {
  return rawRequest(gw.url, {
    method: "POST",
    path: "/v1/chat/completions",
    headers: { "content-type": "application/json", authorization: "Bearer placeholder" },
    body: JSON.stringify(body),
  });
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

/** An OpenAI error body: `{"error":{"message","type","code"}}`. */
function assertOpenAIErrorBody(body: unknown, mentions?: RegExp): { message: string; type: string; code: unknown } {
  assert.ok(body && typeof body === "object", `not an object: ${JSON.stringify(body)}`);
  const record = body as { type?: unknown; error?: { message?: unknown; type?: unknown; code?: unknown } };
  assert.notEqual(record.type, "error", `Anthropic-shaped, not OpenAI-shaped: ${JSON.stringify(body)}`);
  assert.ok(record.error && typeof record.error === "object", `no error object: ${JSON.stringify(body)}`);
  assert.equal(typeof record.error.message, "string", JSON.stringify(body));
  assert.ok((record.error.message as string).length > 0);
  assert.equal(typeof record.error.type, "string", JSON.stringify(body));
  assert.ok("code" in record.error, `no code: ${JSON.stringify(body)}`);
  if (mentions) assert.match(record.error.message as string, mentions);
  return record.error as { message: string; type: string; code: unknown };
}

// ---------------------------------------------------------------------------
// tools

const TOOLS: Anthropic.Tool[] = [
  {
    name: "get_weather",
    description: "The current weather in a city.",
    input_schema: { type: "object", properties: { city: { type: "string" }, unit: { type: "string", enum: ["celsius", "fahrenheit"] } }, required: ["city"] },
  },
  {
    name: "get_time",
    description: "The local time in a time zone.",
    input_schema: { type: "object", properties: { timezone: { type: "string" } }, required: ["timezone"] },
  },
];
/** Two parallel calls, their arguments split mid-token as providers stream them. */
const CALLS: readonly ToolCallAnswer[] = [
  { id: "call_weather0001", name: "get_weather", args: ['{"city"', ':"Paris",', '"unit":"celsius"}'] },
  { id: "call_time0002", name: "get_time", args: ['{"timezone":', '"Europe/Paris"}'] },
];
const INPUTS: readonly Json[] = [{ city: "Paris", unit: "celsius" }, { timezone: "Europe/Paris" }];
const QUESTION: Anthropic.MessageParam = { role: "user", content: "What is the weather and the time in Paris?" };

function toolUses(message: Anthropic.Message): Anthropic.ToolUseBlock[] {
  return message.content.filter((block): block is Anthropic.ToolUseBlock => block.type === "tool_use");
}

// ===========================================================================

describe("an Anthropic client on an OpenAI route (Messages → Chat Completions)", () => {
  for (const prefix of [false, true]) {
    test(`messages.create (baseURL gw.url${prefix ? "/anthropic" : ""}) → a Message from the chat completion; the upstream gets a valid chat request with the route's Bearer key`, T, async (t) => {
      const setupped = await setup(t, { [GPT]: openaiRoute(gptOk(GPT, { id: "chatcmpl-7TranslateMe", usage: { prompt_tokens: 17, completion_tokens: 9 } })) });
      const client = prefix ? setupped.prefixed : setupped.claude;

      const { data, response } = await client.messages.create({ ...ask(GPT), system: "Be brief." }).withResponse();

      assert.equal(data.type, "message");
      assert.equal(data.role, "assistant");
      assert.equal(data.model, GPT, "the requested model");
      assert.equal(data.id, "msg_7TranslateMe", "msg_ + the chat id without chatcmpl-");
      assert.deepEqual(data.content.map((block) => block.type), ["text"]);
      assert.equal(textOfMessage(data), textOf(GPT));
      assert.equal(data.stop_reason, "end_turn");
      assert.equal(data.stop_sequence, null);
      assert.equal(data.usage.input_tokens, 17, "the upstream's prompt_tokens");
      assert.equal(data.usage.output_tokens, 9, "the upstream's completion_tokens");
      assert.equal((data as unknown as { gateway_notice?: unknown }).gateway_notice, undefined);
      assert.equal(response.headers.get("x-gateway-model-used"), GPT);
      assert.equal(response.headers.get("x-gateway-attempt-count"), "1");
      assert.equal(response.headers.get("x-gateway-switched"), null);

      const up = setupped.up[GPT]!;
      assert.equal(up.received.length, 1);
      assertOpenAIUpstream(up, GPT);
      const sent = up.received[0]!.json!;
      assert.equal(sent.model, GPT);
      assert.equal(sent.max_tokens, 1024, "max_tokens is forwarded");
      assert.notEqual(sent.stream, true);
      const messages = sent.messages as { role: string; content: unknown }[];
      assert.deepEqual(messages.map((m) => m.role), ["system", "user"], "the system prompt as a system message, first");
      assert.equal(chatText(messages[0]!.content), "Be brief.");
      assert.equal(chatText(messages[1]!.content), "Say hello.");
    });
  }

  test("maxTokens on the OpenAI route caps what a Messages client asks for (Claude Code's 32000)", T, async (t) => {
    const { claude, up } = await setup(t, { [GPT]: openaiRoute(gptOk(GPT), "    maxTokens: 8192\n") });
    await claude.messages.create({ ...ask(GPT), max_tokens: 32000 });
    await claude.messages.create({ ...ask(GPT), max_tokens: 100 });
    assert.deepEqual(up[GPT]!.received.map((received) => received.json?.max_tokens), [8192, 100]);
  });

  test("cached prompt tokens → input_tokens without them, cache_read_input_tokens = cached_tokens (JSON and stream)", T, async (t) => {
    const { claude, up } = await setup(t, { [GPT]: openaiRoute(gptOk(GPT, { usage: { prompt_tokens: 30, completion_tokens: 7, cached_tokens: 10 } })) });

    const message = await claude.messages.create(ask(GPT));
    assert.equal(message.usage.input_tokens, 20);
    assert.equal(message.usage.cache_read_input_tokens, 10);
    assert.equal(message.usage.output_tokens, 7);

    const final = await claude.messages.stream(ask(GPT)).finalMessage();
    assert.equal(final.usage.input_tokens, 20);
    assert.equal(final.usage.cache_read_input_tokens, 10);
    assert.equal(final.usage.output_tokens, 7);
    assert.equal(up[GPT]!.received.length, 2);
  });

  test("finish_reason length → stop_reason max_tokens; a vLLM stop_reason naming a requested stop sequence → stop_sequence", T, async (t) => {
    const { claude, up } = await setup(t, { [GPT]: openaiRoute(gptOk(GPT, { finishReason: "length" })) });
    const truncated = await claude.messages.create(ask(GPT));
    assert.equal(truncated.stop_reason, "max_tokens");
    const streamed = await claude.messages.stream(ask(GPT)).finalMessage();
    assert.equal(streamed.stop_reason, "max_tokens");

    up[GPT]!.handle(gptOk(GPT, { choiceExtra: { stop_reason: "END" } }));
    const stopped = await claude.messages.create({ ...ask(GPT), stop_sequences: ["END", "STOP"] });
    assert.equal(stopped.stop_reason, "stop_sequence");
    assert.equal(stopped.stop_sequence, "END");
    assert.deepEqual(up[GPT]!.received.at(-1)!.json!.stop, ["END", "STOP"], "stop_sequences as stop");
    const streamedStop = await claude.messages.stream({ ...ask(GPT), stop_sequences: ["END", "STOP"] }).finalMessage();
    assert.equal(streamedStop.stop_reason, "stop_sequence");
    assert.equal(streamedStop.stop_sequence, "END");
  });

  test("create({stream: true}) → message_start, a text block, message_delta with the usage, message_stop, in the API's order", T, async (t) => {
    const { claude, up } = await setup(t, { [GPT]: openaiRoute(gptOk(GPT, { usage: { prompt_tokens: 17, completion_tokens: 9 } })) });

    const { events, headers, error } = await readStream(claude, { ...ask(GPT), system: "Be brief." });

    assert.equal(error, undefined, `the loop threw: ${String(error)}`);
    assertEventGrammar(events);
    const start = events[0] as Anthropic.RawMessageStartEvent;
    assert.equal(start.message.model, GPT);
    assert.match(start.message.id, /^msg_/);
    assert.equal(start.message.role, "assistant");
    assert.deepEqual(start.message.content, []);
    const blockStart = events.find((event) => event.type === "content_block_start") as Anthropic.RawContentBlockStartEvent;
    assert.equal(blockStart.content_block.type, "text");
    assert.equal(streamedText(events), textOf(GPT));
    const delta = events.at(-2) as Anthropic.RawMessageDeltaEvent;
    assert.equal(delta.delta.stop_reason, "end_turn");
    assert.equal(delta.usage.output_tokens, 9, "message_delta carries the upstream's completion_tokens");
    assert.equal(headers.get("x-gateway-model-used"), GPT);
    assert.equal(headers.get("x-gateway-attempt-count"), "1");
    assert.equal(headers.get("x-gateway-switched"), null);

    assertOpenAIUpstream(up[GPT]!, GPT);
    const sent = up[GPT]!.received[0]!.json!;
    assert.equal(sent.stream, true);
    assert.equal(sent.max_tokens, 1024);
    assert.deepEqual(sent.stream_options, { include_usage: true }, "the usage chunk is asked for, for message_delta");
  });

  test("messages.stream().finalMessage() (baseURL gw.url/anthropic) → the full text, stop_reason and usage", T, async (t) => {
    const { prefixed, up } = await setup(t, { [GPT]: openaiRoute(gptOk(GPT, { usage: { prompt_tokens: 17, completion_tokens: 9 } })) });

    const final = await prefixed.messages.stream(ask(GPT)).finalMessage();

    assert.equal(textOfMessage(final), textOf(GPT));
    assert.equal(final.model, GPT);
    assert.equal(final.stop_reason, "end_turn");
    assert.equal(final.usage.output_tokens, 9);
    assert.equal(final.usage.input_tokens, 17, "the final usage has the upstream's prompt tokens");
    assertOpenAIUpstream(up[GPT]!, GPT);
  });

  test("raw SSE (an OpenClaw-style client: x-api-key, anthropic-version, anthropic-beta) → named events only, no comment, no Anthropic header upstream", T, async (t) => {
    const { gw, up } = await setup(t, { [GPT]: openaiRoute(gptOk(GPT)) });

    const res = await postMessages(gw, { ...ask(GPT), stream: true }, "/anthropic/v1/messages");

    assert.equal(res.status, 200, res.text);
    assert.match(String(res.headers["content-type"]), /text\/event-stream/);
    assert.ok(sseBlocks(res.text).every((block) => block.comments.length === 0), "a comment without a switch");
    assert.ok(!res.text.includes("[DONE]"), "OpenAI's [DONE] in an Anthropic stream");
    const events = anthropicEvents(res.text);
    assertEventGrammar(events.map((event) => event.data as unknown as StreamEvent));
    assert.equal(streamedText(events.map((event) => event.data as unknown as StreamEvent)), textOf(GPT));
    assertOpenAIUpstream(up[GPT]!, GPT);
  });
});

describe("tool use through an OpenAI route", () => {
  for (const stream of [false, true]) {
    test(`two tool calls in one turn (${stream ? "streamed, arguments split" : "JSON"}) → tool_use blocks with parsed input; tool_results → tool messages → the final answer`, T, async (t) => {
      const { claude, up } = await setup(t, {
        [GPT]: openaiRoute(
          gptOk(GPT, {
            toolCalls: CALLS,
            toolText: "Let me check both.",
            afterToolResults: (results) => `In Paris: ${results.map((result) => result.content).join(", at ")}.`,
          }),
        ),
      });

      const params = { model: GPT, max_tokens: 1024, tools: TOOLS, messages: [QUESTION] };
      const first = stream ? await claude.messages.stream(params).finalMessage() : await claude.messages.create(params);

      assert.equal(first.stop_reason, "tool_use");
      assert.equal(first.content[0]?.type, "text", "the text said before the calls comes first");
      assert.equal(textOfMessage(first), "Let me check both.");
      const calls = toolUses(first);
      assert.deepEqual(
        calls.map((call) => ({ id: call.id, name: call.name, input: call.input })),
        CALLS.map((call, i) => ({ id: call.id, name: call.name, input: INPUTS[i] })),
        "tool call ids pass through; the arguments add up to the input objects",
      );
      const sentTools = up[GPT]!.received[0]!.json!.tools;
      assert.deepEqual(
        sentTools,
        TOOLS.map((tool) => ({ type: "function", function: { name: tool.name, description: tool.description, parameters: tool.input_schema } })),
        "input_schema as function parameters",
      );

      const second = await claude.messages.create({
        ...params,
        messages: [
          QUESTION,
          { role: "assistant", content: first.content },
          {
            role: "user",
            content: [
              { type: "tool_result", tool_use_id: calls[0]!.id, content: "18 °C and sunny" },
              { type: "tool_result", tool_use_id: calls[1]!.id, content: [{ type: "text", text: "14:05" }] },
            ],
          },
        ],
      });

      assert.equal(second.stop_reason, "end_turn");
      assert.equal(textOfMessage(second), "In Paris: 18 °C and sunny, at 14:05.");
      assert.equal(up[GPT]!.received.length, 2, "the strict upstream validates tool_call_id pairing: a bad round trip is a 400, not a second answer");
      const messages = up[GPT]!.received[1]!.json!.messages as Json[];
      assert.deepEqual(messages.map((m) => m.role), ["user", "assistant", "tool", "tool"]);
      const assistant = messages[1]!;
      assert.equal(chatText(assistant.content), "Let me check both.");
      const sentCalls = assistant.tool_calls as { id: string; type: string; function: { name: string; arguments: string } }[];
      assert.deepEqual(
        sentCalls.map((call) => ({ id: call.id, type: call.type, name: call.function.name, input: JSON.parse(call.function.arguments) as unknown })),
        CALLS.map((call, i) => ({ id: call.id, type: "function", name: call.name, input: INPUTS[i] })),
      );
      assert.deepEqual(
        messages.slice(2).map((m) => ({ id: m.tool_call_id, text: chatText(m.content) })),
        [
          { id: CALLS[0]!.id, text: "18 °C and sunny" },
          { id: CALLS[1]!.id, text: "14:05" },
        ],
      );
      assertOpenAIUpstream(up[GPT]!, GPT);
    });
  }

  test('tool_choice {type: "tool", name} → {type: "function", function: {name}}; {type: "any"} → "required"; disable_parallel_tool_use → parallel_tool_calls: false', T, async (t) => {
    const { claude, up } = await setup(t, { [GPT]: openaiRoute(gptOk(GPT, { toolCalls: CALLS.slice(0, 1) })) });

    const forced = await claude.messages.create({ model: GPT, max_tokens: 1024, tools: TOOLS, tool_choice: { type: "tool", name: "get_weather" }, messages: [QUESTION] });
    assert.equal(forced.stop_reason, "tool_use");
    assert.deepEqual(toolUses(forced).map((call) => call.input), [INPUTS[0]]);
    assert.deepEqual(up[GPT]!.received[0]!.json!.tool_choice, { type: "function", function: { name: "get_weather" } });

    await claude.messages.create({ model: GPT, max_tokens: 1024, tools: TOOLS, tool_choice: { type: "any", disable_parallel_tool_use: true }, messages: [QUESTION] });
    const sent = up[GPT]!.received[1]!.json!;
    assert.equal(sent.tool_choice, "required");
    assert.equal(sent.parallel_tool_calls, false);
  });

  test("parallel tool-call deltas interleaved by the upstream (0, 1, 0, 1, 0) → both tool_use blocks complete, one block after the other", T, async (t) => {
    const interleaved = gptOk(GPT, { toolCalls: CALLS, order: [[0, 0], [1, 0], [0, 1], [1, 1], [0, 2]] });
    const { gw, claude, up } = await setup(t, { [GPT]: openaiRoute(interleaved) });
    const params = { model: GPT, max_tokens: 1024, tools: TOOLS, messages: [QUESTION] };

    const final = await claude.messages.stream(params).finalMessage();

    assert.equal(final.stop_reason, "tool_use");
    assert.deepEqual(
      toolUses(final).map((call) => ({ id: call.id, name: call.name, input: call.input })),
      CALLS.map((call, i) => ({ id: call.id, name: call.name, input: INPUTS[i] })),
    );

    const { events, error } = await readStream(claude, params);
    assert.equal(error, undefined, `the loop threw: ${String(error)}`);
    assertEventGrammar(events);
    const starts = events.filter((event): event is Anthropic.RawContentBlockStartEvent => event.type === "content_block_start");
    assert.deepEqual(
      starts.map((event) => event.content_block.type === "tool_use" && { id: event.content_block.id, name: event.content_block.name }),
      CALLS.map((call) => ({ id: call.id, name: call.name })),
    );
    const inputs = streamedInputs(events);
    assert.deepEqual(
      starts.map((event) => JSON.parse(inputs.get(event.index) ?? "") as unknown),
      INPUTS,
      "each block's input_json_delta fragments add up to its own arguments",
    );

    const res = await postMessages(gw, { ...params, stream: true });
    assert.equal(res.status, 200, res.text);
    assertEventGrammar(anthropicEvents(res.text).map((event) => event.data as unknown as StreamEvent));
    assert.equal(up[GPT]!.received.length, 3);
  });
});

// ===========================================================================

describe("an OpenAI client on an Anthropic route (Chat Completions → Messages)", () => {
  test("chat.completions.create → a chat completion from the Message; the upstream gets the route's x-api-key, version 2023-06-01 and the route's maxTokens", T, async (t) => {
    const { openai, up } = await setup(t, { [CLAUDE]: anthropicRoute(claudeOk(CLAUDE, { usage: { input_tokens: 12, output_tokens: 5 } }), "    maxTokens: 1234\n") });

    const { data, response } = await openai.chat.completions
      .create({ model: CLAUDE, messages: [{ role: "system", content: "Be brief." }, { role: "user", content: "Say hello." }] })
      .withResponse();

    assert.equal(data.object, "chat.completion");
    assert.match(data.id, /^chatcmpl-msg_01/, "chatcmpl- + the whole message id");
    assert.equal(data.model, CLAUDE);
    assert.equal(data.choices.length, 1);
    assert.equal(data.choices[0]!.message.role, "assistant");
    assert.equal(data.choices[0]!.message.content, textOf(CLAUDE));
    assert.equal(data.choices[0]!.finish_reason, "stop");
    assert.equal(data.usage?.prompt_tokens, 12);
    assert.equal(data.usage?.completion_tokens, 5);
    assert.equal(data.usage?.total_tokens, 17);
    assert.equal(response.headers.get("x-gateway-model-used"), CLAUDE);
    assert.equal(response.headers.get("x-gateway-attempt-count"), "1");

    assertAnthropicUpstream(up[CLAUDE]!, CLAUDE);
    const sent = up[CLAUDE]!.received[0]!.json!;
    assert.equal(sent.model, CLAUDE);
    assert.equal(sent.max_tokens, 1234, "the route's maxTokens when the client set none");
    assert.equal(blocksText(sent.system), "Be brief.", "the system message as the top-level system prompt");
    const messages = sent.messages as { role: string; content: unknown }[];
    assert.deepEqual(messages.map((m) => m.role), ["user"]);
    assert.equal(blocksText(messages[0]!.content), "Say hello.");
  });

  test("max_tokens: the client's max_tokens or max_completion_tokens when given, else 8192 on a route without maxTokens", T, async (t) => {
    const { openai, up } = await setup(t, { [CLAUDE]: anthropicRoute(claudeOk(CLAUDE)) });

    await openai.chat.completions.create(chatAsk(CLAUDE));
    await openai.chat.completions.create({ ...chatAsk(CLAUDE), max_tokens: 77 });
    await openai.chat.completions.create({ ...chatAsk(CLAUDE), max_completion_tokens: 55 });

    assert.deepEqual(up[CLAUDE]!.received.map((received) => received.json!.max_tokens), [8192, 77, 55]);
    assertAnthropicUpstream(up[CLAUDE]!, CLAUDE);
  });

  test("an OpenClaw-style streamed turn with tools (stream() → finalChatCompletion) → tool_calls with id, name, full arguments; the usage chunk last with choices: []; then a tool round trip", T, async (t) => {
    const toolId = "toolu_01TranslateRoundTrip0001";
    const { openai, up } = await setup(t, {
      [CLAUDE]: anthropicRoute(
        claudeOk(CLAUDE, {
          text: "Checking.",
          toolUse: [{ id: toolId, name: "get_weather", input: { city: "Paris", unit: "celsius" } }],
          afterToolResult: (results) => `It is ${results.join(", ")} in Paris.`,
        }),
        "    maxTokens: 1234\n",
      ),
    });
    const tools: OpenAI.ChatCompletionTool[] = TOOLS.map((tool) => ({ type: "function", function: { name: tool.name, description: tool.description ?? "", parameters: tool.input_schema as Json } }));
    const question: OpenAI.ChatCompletionMessageParam = { role: "user", content: "What is the weather in Paris?" };

    const runner = openai.chat.completions.stream({
      model: CLAUDE,
      messages: [{ role: "system", content: "You are a helpful agent." }, question],
      tools,
      tool_choice: "auto",
      max_completion_tokens: 4096,
      stream_options: { include_usage: true },
    });
    const chunks: OpenAI.ChatCompletionChunk[] = [];
    runner.on("chunk", (chunk) => chunks.push(chunk));
    const final = await runner.finalChatCompletion();

    const choice = final.choices[0]!;
    assert.equal(choice.finish_reason, "tool_calls");
    assert.equal(choice.message.content, "Checking.");
    const calls = choice.message.tool_calls ?? [];
    assert.equal(calls.length, 1, JSON.stringify(choice.message));
    const call = calls[0]!;
    assert.equal(call.type, "function");
    assert.equal(call.id, toolId, "the tool_use id passes through");
    assert.ok(call.type === "function");
    assert.equal(call.function.name, "get_weather");
    assert.deepEqual(JSON.parse(call.function.arguments), { city: "Paris", unit: "celsius" });
    const last = chunks.at(-1)!;
    assert.deepEqual(last.choices, [], "the usage chunk has choices: []");
    assert.ok(last.usage && last.usage.prompt_tokens > 0 && last.usage.completion_tokens > 0, `no usage in the last chunk: ${JSON.stringify(last)}`);
    assert.equal(chunks.filter((chunk) => chunk.usage).length, 1, "one usage chunk");
    assert.ok(chunks.slice(0, -1).every((chunk) => chunk.choices.length === 1), "every other chunk has its choice");
    assert.ok(chunks.every((chunk) => chunk.id === chunks[0]!.id && chunk.model === CLAUDE), "one id and the model on every chunk");

    const sent = up[CLAUDE]!.received[0]!.json!;
    assert.equal(sent.stream, true);
    assert.equal(sent.max_tokens, 4096, "max_completion_tokens as max_tokens");
    assert.equal(sent.stream_options, undefined, "stream_options is not an Anthropic field");
    assert.deepEqual(
      (sent.tools as Json[]).map((tool) => ({ name: tool.name, input_schema: tool.input_schema })),
      TOOLS.map((tool) => ({ name: tool.name, input_schema: tool.input_schema })),
    );

    const answer = await openai.chat.completions.create({
      model: CLAUDE,
      tools,
      messages: [
        question,
        { role: "assistant", content: choice.message.content, tool_calls: [{ id: call.id, type: "function", function: { name: call.function.name, arguments: call.function.arguments } }] },
        { role: "tool", tool_call_id: call.id, content: "18 °C and sunny" },
      ],
    });

    assert.equal(answer.choices[0]!.finish_reason, "stop");
    assert.equal(answer.choices[0]!.message.content, "It is 18 °C and sunny in Paris.");
    assert.equal(up[CLAUDE]!.received.length, 2, "the Anthropic mock validates tool_use/tool_result pairing: a bad round trip is a 400");
    const round = up[CLAUDE]!.received[1]!.json!.messages as { role: string; content: unknown }[];
    assert.deepEqual(round.map((m) => m.role), ["user", "assistant", "user"]);
    const result = (round[2]!.content as Json[])[0]!;
    assert.equal(result.type, "tool_result");
    assert.equal(result.tool_use_id, toolId);
    assert.equal(blocksText(result.content), "18 °C and sunny");
    assertAnthropicUpstream(up[CLAUDE]!, CLAUDE);
  });

  test("a stream without stream_options → no usage chunk; every chunk has its choice; raw: data lines only, ending with [DONE]", T, async (t) => {
    const { gw, openai, up } = await setup(t, { [CLAUDE]: anthropicRoute(claudeOk(CLAUDE)) });

    const chunks: OpenAI.ChatCompletionChunk[] = [];
    for await (const chunk of await openai.chat.completions.create({ ...chatAsk(CLAUDE), stream: true })) chunks.push(chunk);

    assert.ok(chunks.length > 2);
    assert.ok(chunks.every((chunk) => !chunk.usage), "a usage chunk nobody asked for");
    assert.ok(chunks.every((chunk) => chunk.choices.length === 1), "a chunk without its choice");
    assert.equal(chunks[0]!.choices[0]!.delta.role, "assistant", "role in the first delta");
    assert.equal(chunks.map((chunk) => chunk.choices[0]!.delta.content ?? "").join(""), textOf(CLAUDE));
    assert.equal(chunks.at(-1)!.choices[0]!.finish_reason, "stop");
    assert.equal(chunks.filter((chunk) => chunk.choices[0]!.finish_reason).length, 1, "one finish_reason");

    const res = await postChat(gw, { ...chatAsk(CLAUDE), stream: true });
    assert.equal(res.status, 200, res.text);
    assert.match(String(res.headers["content-type"]), /text\/event-stream/);
    assert.ok(!/^event:/m.test(res.text), "Anthropic event names in an OpenAI stream");
    const data = sseData(res.text);
    assert.equal(data.at(-1), "[DONE]");
    for (const payload of data.slice(0, -1)) {
      const chunk = JSON.parse(payload) as { object?: unknown; choices?: unknown };
      assert.equal(chunk.object, "chat.completion.chunk", payload);
      assert.ok(Array.isArray(chunk.choices), payload);
    }
    assertAnthropicUpstream(up[CLAUDE]!, CLAUDE);
  });
});

// ===========================================================================

describe("failover across kinds in one auto group, before the first output", () => {
  test("Anthropic client: an Anthropic route answering 529, then an OpenAI route → for await sees the OpenAI model's answer as Anthropic events", T, async (t) => {
    const { claude, up } = await setup(t, { [CLAUDE]: anthropicRoute(replyAnthropicError(529, "overloaded_error")), [GPT]: openaiRoute(gptOk(GPT)) }, ORDERED);

    const { events, headers, error } = await readStream(claude, ask("auto"));

    assert.equal(error, undefined, `the loop threw: ${String(error)}`);
    assertEventGrammar(events);
    assert.equal(events.filter((event) => event.type === "message_start").length, 1);
    assert.equal((events[0] as Anthropic.RawMessageStartEvent).message.model, GPT);
    assert.equal(streamedText(events), textOf(GPT));
    assertSwitchHeaders(headers, up[CLAUDE]!, GPT);
    assertAnthropicUpstream(up[CLAUDE]!, CLAUDE);
    assertOpenAIUpstream(up[GPT]!, GPT);
    assert.equal(up[GPT]!.received[0]!.json!.model, GPT, "the second candidate gets its own model name");
  });

  test("Anthropic client, raw: the notice is an SSE comment ahead of the events, never a data event", T, async (t) => {
    const { gw, up } = await setup(t, { [CLAUDE]: anthropicRoute(replyAnthropicError(529, "overloaded_error")), [GPT]: openaiRoute(gptOk(GPT)) }, `${ORDERED}notice:\n  sse: event\n`);

    const res = await postMessages(gw, { ...ask("auto"), stream: true });

    assert.equal(res.status, 200, res.text);
    assertSwitchHeaders(rawHeaders(res), up[CLAUDE]!, GPT);
    assert.ok(res.text.startsWith(": gateway_notice "), `the stream does not open with the notice comment: ${JSON.stringify(res.text.slice(0, 120))}`);
    assert.ok(!/^event: *gateway_notice/m.test(res.text), "a named gateway_notice event in an Anthropic stream");
    const firstLine = res.text.slice(0, res.text.indexOf("\n"));
    const notice = JSON.parse(firstLine.slice(": gateway_notice ".length)) as Json;
    assert.equal(notice.from_model, CLAUDE);
    assert.equal(notice.to_model, GPT);
    assert.equal(notice.trigger_status, 529);
    const events = anthropicEvents(res.text);
    assertEventGrammar(events.map((event) => event.data as unknown as StreamEvent));
    assert.equal(streamedText(events.map((event) => event.data as unknown as StreamEvent)), textOf(GPT));
  });

  test("OpenAI client: an OpenAI route answering 429, then an Anthropic route → the chunks of the Anthropic model", T, async (t) => {
    const { openai, up } = await setup(
      t,
      { [GPT]: openaiRoute(replyOpenAIError(429, "Rate limit reached for requests", "requests", "rate_limit_exceeded")), [CLAUDE]: anthropicRoute(claudeOk(CLAUDE)) },
      ORDERED,
    );

    const { data: stream, response } = await openai.chat.completions.create({ ...chatAsk("auto"), stream: true, stream_options: { include_usage: true } }).withResponse();
    const chunks: OpenAI.ChatCompletionChunk[] = [];
    for await (const chunk of stream) chunks.push(chunk);

    assert.equal(chunks.map((chunk) => chunk.choices[0]?.delta.content ?? "").join(""), textOf(CLAUDE));
    assert.ok(chunks.every((chunk) => chunk.model === CLAUDE), "chunks from the Anthropic model");
    assert.ok(chunks.every((chunk) => Array.isArray(chunk.choices)), "a chunk without choices (the notice as a data event?)");
    assert.ok(chunks.at(-1)!.usage, "the asked-for usage chunk");
    assertSwitchHeaders(response.headers, up[GPT]!, CLAUDE);
    assertOpenAIUpstream(up[GPT]!, GPT);
    assertAnthropicUpstream(up[CLAUDE]!, CLAUDE);
    assert.equal(up[CLAUDE]!.received[0]!.json!.model, CLAUDE);
  });

  test("OpenAI client, finalChatCompletion and raw: the notice is a comment, the answer the Anthropic model's", T, async (t) => {
    const { openai, up } = await setup(
      t,
      { [GPT]: openaiRoute(replyOpenAIError(429, "Rate limit reached for requests", "requests", "rate_limit_exceeded")), [CLAUDE]: anthropicRoute(claudeOk(CLAUDE)) },
      ORDERED,
    );

    const final = await openai.chat.completions.stream(chatAsk("auto")).finalChatCompletion();
    assert.equal(final.choices[0]!.message.content, textOf(CLAUDE));
    assert.equal(final.choices[0]!.finish_reason, "stop");
    assert.equal(up[CLAUDE]!.received.length, 1);

    // A fresh gateway: the 429 above leaves the OpenAI model cooling down, so the next plan would skip it without a switch.
    const fresh = await setup(
      t,
      { [GPT]: openaiRoute(replyOpenAIError(429, "Rate limit reached for requests", "requests", "rate_limit_exceeded")), [CLAUDE]: anthropicRoute(claudeOk(CLAUDE)) },
      ORDERED,
    );
    const res = await postChat(fresh.gw, { ...chatAsk("auto"), stream: true });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.headers["x-gateway-model-used"], CLAUDE);
    assert.equal(res.headers["x-gateway-switched"], "1");
    assert.ok(res.text.startsWith(": gateway_notice "), `the stream does not open with the notice comment: ${JSON.stringify(res.text.slice(0, 120))}`);
    const notice = JSON.parse(res.text.slice(": gateway_notice ".length, res.text.indexOf("\n"))) as Json;
    assert.equal(notice.from_model, GPT);
    assert.equal(notice.to_model, CLAUDE);
    assert.equal(notice.trigger_status, 429);
    const data = sseData(res.text);
    assert.equal(data.at(-1), "[DONE]");
    assert.ok(data.slice(0, -1).every((payload) => Array.isArray((JSON.parse(payload) as { choices?: unknown }).choices)));
    assert.equal(fresh.up[GPT]!.received.length, 1);
    assert.equal(fresh.up[CLAUDE]!.received.length, 1);
  });

  test("non-streaming, both directions → the second model's answer in the client's format, with a gateway_notice", T, async (t) => {
    const toGpt = await setup(t, { [CLAUDE]: anthropicRoute(replyAnthropicError(529, "overloaded_error")), [GPT]: openaiRoute(gptOk(GPT)) }, ORDERED);
    const { data: message, response } = await toGpt.claude.messages.create(ask("auto")).withResponse();
    assert.equal(message.type, "message");
    assert.equal(textOfMessage(message), textOf(GPT));
    assert.equal(message.model, GPT);
    assertSwitchHeaders(response.headers, toGpt.up[CLAUDE]!, GPT);
    const notice = (message as unknown as { gateway_notice?: Json }).gateway_notice;
    assert.ok(notice, "no gateway_notice in the Message after a switch");
    assert.equal(notice.from_model, CLAUDE);
    assert.equal(notice.to_model, GPT);
    assert.equal(notice.trigger_status, 529);

    const toClaude = await setup(
      t,
      { [GPT]: openaiRoute(replyOpenAIError(429, "Rate limit reached for requests", "requests", "rate_limit_exceeded")), [CLAUDE]: anthropicRoute(claudeOk(CLAUDE)) },
      ORDERED,
    );
    const { data: completion, response: chatResponse } = await toClaude.openai.chat.completions.create(chatAsk("auto")).withResponse();
    assert.equal(completion.object, "chat.completion");
    assert.equal(completion.choices[0]!.message.content, textOf(CLAUDE));
    assertSwitchHeaders(chatResponse.headers, toClaude.up[GPT]!, CLAUDE);
    const chatNotice = (completion as unknown as { gateway_notice?: Json }).gateway_notice;
    assert.ok(chatNotice, "no gateway_notice in the chat completion after a switch");
    assert.equal(chatNotice.from_model, GPT);
    assert.equal(chatNotice.to_model, CLAUDE);
    assert.equal(chatNotice.trigger_status, 429);
  });
});

// ===========================================================================

describe("a failure after the first output of a translated stream", () => {
  const partial = "Hello from the partial answer, cut.";
  /** Every request to it is cut after three words (a replay of the request is cut too). */
  const cutting = () => gptOk(GPT, { text: partial, cutAfter: 3 });

  test("an OpenAI route cut mid-answer → the Anthropic SDK's for-await loop throws after the text sent, no message_stop", T, async (t) => {
    const { claude } = await setup(t, { [GPT]: openaiRoute(cutting()) });

    const { events, error } = await readStream(claude, ask(GPT));

    assert.ok(error instanceof AnthropicAPIError, `the loop ended without an APIError (${String(error)}): a truncated answer looks complete`);
    assertAnthropicErrorBody(error.error, undefined);
    assert.equal(streamedText(events), "Hello from the ");
    assert.ok(!events.some((event) => event.type === "message_stop"), "message_stop after a failure");
    await assert.rejects(claude.messages.stream(ask(GPT)).finalMessage(), (caught: unknown) => {
      assert.ok(caught instanceof AnthropicAPIError, `expected an APIError, got ${String(caught)}`);
      return true;
    });
  });

  test("an OpenAI route cut mid-answer → raw: the stream ends with event: error, named and Anthropic-shaped", T, async (t) => {
    const { gw } = await setup(t, { [GPT]: openaiRoute(cutting()) });

    const res = await postMessages(gw, { ...ask(GPT), stream: true });

    assert.equal(res.status, 200);
    const events = anthropicEvents(res.text);
    assert.equal(events[0]?.event, "message_start");
    const last = events.at(-1);
    assert.equal(last?.event, "error", `the stream does not end with event: error: ${JSON.stringify(res.text.slice(-300))}`);
    assertAnthropicErrorBody(last!.data, undefined);
    assert.ok(!events.some((event) => event.event === "message_stop"));
    assert.ok(!res.text.includes("[DONE]"));
  });

  test("an Anthropic route sending event: error after content → the openai SDK throws; raw: a data: {\"error\"} event last, no [DONE]", T, async (t) => {
    const { gw, openai } = await setup(t, { [CLAUDE]: anthropicRoute(streamAnthropicThenError({ afterText: ["Hello", " there"] })) });

    let text = "";
    let error: unknown;
    try {
      for await (const chunk of await openai.chat.completions.create({ ...chatAsk(CLAUDE), stream: true })) text += chunk.choices[0]?.delta.content ?? "";
    } catch (caught) {
      error = caught;
    }
    assert.ok(error instanceof OpenAIAPIError, `the loop ended without an APIError (${String(error)}) after ${JSON.stringify(text)}`);
    assert.equal(error.status, undefined, "an in-band error: the 200 was already sent");
    assert.equal(text, "Hello there");

    const res = await postChat(gw, { ...chatAsk(CLAUDE), stream: true });
    assert.equal(res.status, 200);
    const data = sseData(res.text);
    assert.ok(!data.includes("[DONE]"), "[DONE] after a failure: the answer looks complete");
    const last = JSON.parse(data.at(-1) ?? "null") as { error?: unknown };
    assertOpenAIErrorBody(last);
  });
});

// ===========================================================================

describe("errors in the client's shape", () => {
  test("an OpenAI route answering 400 to a Messages client → 400 invalid_request_error, Anthropic-shaped, with the upstream's message", T, async (t) => {
    const message = "This model's maximum context length is 8192 tokens. However, your messages resulted in 9100 tokens.";
    const { gw, claude } = await setup(t, { [GPT]: openaiRoute(replyOpenAIError(400, message, "invalid_request_error", "context_length_exceeded")) });

    await assert.rejects(claude.messages.create(ask(GPT)), (error: unknown) => {
      assert.ok(error instanceof Anthropic.BadRequestError, `expected a BadRequestError, got ${String(error)}`);
      assertAnthropicErrorBody(error.error, "invalid_request_error");
      assert.equal((error.error as { error: { message: string } }).error.message, message);
      return true;
    });

    const res = await postMessages(gw, { ...ask(GPT), stream: true });
    assert.equal(res.status, 400);
    assert.match(String(res.headers["content-type"]), /application\/json/);
    assertAnthropicErrorBody(res.json(), "invalid_request_error");
    assert.equal((res.json() as { error: { message: string } }).error.message, message);
  });

  test("a 200 that carries only an error (no choices) → 502 Anthropic-shaped with the upstream's message, never an empty answer", T, async (t) => {
    const handler: Handler = (_req, res) => sendJson(res, 200, { error: { message: "Your account quota is exhausted.", type: "insufficient_quota", code: "insufficient_quota" } });
    const { claude } = await setup(t, { [GPT]: openaiRoute(handler) });
    await assert.rejects(claude.messages.create(ask(GPT)), (error: unknown) => {
      assert.ok(error instanceof AnthropicAPIError, `expected an APIError, got ${String(error)}`);
      assert.equal(error.status, 502);
      assertAnthropicErrorBody(error.error, "api_error", /quota is exhausted/);
      return true;
    });
  });

  test("an Anthropic route answering 401 to a chat client → 401, OpenAI-shaped {error: {message, type, code}}", T, async (t) => {
    const { gw, openai } = await setup(t, { [CLAUDE]: anthropicRoute(replyAnthropicError(401, "authentication_error", "invalid x-api-key")) });

    await assert.rejects(openai.chat.completions.create(chatAsk(CLAUDE)), (error: unknown) => {
      assert.ok(error instanceof OpenAI.AuthenticationError, `expected an AuthenticationError, got ${String(error)}`);
      assert.equal(error.status, 401);
      assert.equal((error.error as { message?: unknown }).message, "invalid x-api-key");
      return true;
    });

    const res = await postChat(gw, { ...chatAsk(CLAUDE), stream: true });
    assert.equal(res.status, 401);
    assert.match(String(res.headers["content-type"]), /application\/json/);
    const error = assertOpenAIErrorBody(res.json());
    assert.equal(error.message, "invalid x-api-key");
  });

  for (const stream of [false, true]) {
    test(`an Anthropic server tool (web_search) for an OpenAI route (${stream ? "stream" : "JSON"}) → 400 Anthropic-shaped naming it; the upstream is never called`, T, async (t) => {
      const { gw, claude, up } = await setup(t, { [GPT]: openaiRoute(gptOk(GPT)) });
      const params: Anthropic.MessageCreateParamsNonStreaming = { ...ask(GPT), tools: [{ type: "web_search_20250305", name: "web_search" }] };

      await assert.rejects(stream ? readStream(claude, params) : claude.messages.create(params), (error: unknown) => {
        assert.ok(error instanceof Anthropic.BadRequestError, `expected a BadRequestError, got ${String(error)}`);
        assertAnthropicErrorBody(error.error, "invalid_request_error", /web_search/);
        return true;
      });

      const res = await postMessages(gw, { ...params, ...(stream ? { stream: true } : {}) });
      assert.equal(res.status, 400);
      assert.match(String(res.headers["content-type"]), /application\/json/);
      assertAnthropicErrorBody(res.json(), "invalid_request_error", /web_search/);
      assert.equal(up[GPT]!.received.length, 0, "an untranslatable request reached the upstream");
    });
  }

  test("n: 2 for an Anthropic route → 400 OpenAI-shaped naming n; the upstream is never called", T, async (t) => {
    const { openai, up } = await setup(t, { [CLAUDE]: anthropicRoute(claudeOk(CLAUDE)) });
    await assert.rejects(openai.chat.completions.create({ ...chatAsk(CLAUDE), n: 2 }), (error: unknown) => {
      assert.ok(error instanceof OpenAI.BadRequestError, `expected a BadRequestError, got ${String(error)}`);
      assert.match(String((error.error as { message?: unknown }).message), /\bn\b/);
      return true;
    });
    assert.equal(up[CLAUDE]!.received.length, 0);
  });
});
