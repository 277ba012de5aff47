/**
 * `POST /v1/responses` (OpenAI Responses API) through the real gateway with the
 * official openai SDK (maxRetries: 0) — `responses.create`,
 * `responses.create({stream: true})` and `responses.stream().finalResponse()` —
 * and raw HTTP for what the SDK hides (the SSE bytes: comments, event names).
 *
 * - Passthrough on a pinned model: the route's key, the body as sent, every
 *   event relayed in order.
 * - Failover in `auto` before the first output (a 429 answer, a stream opening
 *   with an `error` event, `response.failed`, a cut): the client sees one clean
 *   answer from the second model, the headers say so, and the switch notice is
 *   an SSE comment even with `notice: {sse: event}` configured (a named event
 *   would break `responses.stream()`, which needs `response.created` first, and
 *   OpenClaw resubmits a turn on any data object without a string `type`).
 * - After the first output, a cut, a stall or an end without a terminal event
 *   ends the stream with an `error` event the SDK raises, never a clean end.
 *
 * The upstreams are the Responses-API mocks of test/helpers/mock-responses.ts,
 * one per model, each requiring its route's own key.
 */
import assert from "node:assert/strict";
import type { ServerResponse } from "node:http";
import { describe, test, type TestContext } from "node:test";
import OpenAI, { APIError } from "openai";
import type { TestGateway } from "../helpers/gateway.js";
import type { Handler, MockUpstream } from "../helpers/mock-upstream.js";
import {
  messageItemId,
  replyResponses,
  replyResponsesError,
  responseEvents,
  streamResponsesCut,
  streamResponsesError,
  streamResponsesFailed,
} from "../helpers/mock-responses.js";
import { deferred, rawRequest, sdk, useGateway, useMock, type RawResponse } from "../helpers/sdk.js";
import { within } from "../helpers/faults.js";

const T = { timeout: 30_000 };
const A = "model-a";
const B = "model-b";
const ORDERED = "auto:\n  strategy: ordered\n";
const NOTICE_EVENT = "notice:\n  sse: event\n";

const keyOf = (model: string) => `sk-route-${model}`;
const textOf = (model: string) => `Hello from ${model}, the answering model.`;

/** A well-behaved Responses upstream for `model`, requiring its route's key. */
const ok = (model: string): Handler => replyResponses({ text: textOf(model), apiKey: keyOf(model) });

interface Setup {
  readonly gw: TestGateway;
  readonly client: OpenAI;
  readonly up: Readonly<Record<string, MockUpstream>>;
}

/** One keyed OpenAI route (`route-<model>`) and one mock per model, in order, behind a real gateway. */
async function setup(t: TestContext, handlers: Readonly<Record<string, Handler>>, yaml = "", routeExtra: Readonly<Record<string, string>> = {}): Promise<Setup> {
  const up: Record<string, MockUpstream> = {};
  let routes = "routes:\n";
  for (const [model, handler] of Object.entries(handlers)) {
    const mock = await useMock(t, handler);
    up[model] = mock;
    routes += `  - name: route-${model}\n    url: ${mock.origin}/v1\n    isBaseUrl: true\n    apiKey: ${keyOf(model)}\n    model: ${model}\n${routeExtra[model] ?? ""}`;
  }
  const gw = await useGateway(t, `${yaml}${routes}`);
  return { gw, client: sdk(gw), up };
}

// ---------------------------------------------------------------------------
// SSE as the client sees it

interface SseBlock {
  readonly event: string | undefined;
  readonly data: string | undefined;
  readonly comments: readonly string[];
}

/** The events of an SSE text, comments included, in order. */
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

/** Every data object of a raw stream; fails the test on one that is not a JSON object with a string `type` (OpenClaw's check). */
function typedEvents(text: string): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  for (const block of sseBlocks(text)) {
    if (block.data === undefined) continue;
    let value: unknown;
    assert.doesNotThrow(() => (value = JSON.parse(block.data as string)), `a data line that is not JSON: ${block.data}`);
    assert.ok(value && typeof value === "object" && !Array.isArray(value), `a data line that is not an object: ${block.data}`);
    const record = value as Record<string, unknown>;
    assert.equal(typeof record.type, "string", `a data object without a string type (OpenClaw: "malformed event"): ${block.data}`);
    if (block.event !== undefined) assert.equal(block.event, record.type, `event name and data type differ: ${block.event} / ${block.data}`);
    out.push(record);
  }
  return out;
}

/** The concatenated `response.output_text.delta` texts. */
function deltaText(events: readonly { type: string; delta?: unknown }[]): string {
  return events
    .filter((event) => event.type === "response.output_text.delta")
    .map((event) => String(event.delta))
    .join("");
}

function postResponses(gw: TestGateway, body: Record<string, unknown>): Promise<RawResponse> {
  return rawRequest(gw.url, { method: "POST", path: "/v1/responses", headers: { "content-type": "application/json", authorization: "Bearer placeholder-key" }, body: JSON.stringify(body) });
}

const USAGE = { input_tokens: 5, output_tokens: 8, cached_tokens: 0, reasoning_tokens: 0 };

const params = (model: string) => ({ model, input: "Say hello.", instructions: "Be brief.", store: false });

/** Reads a `responses.create({stream: true})` stream the way OpenClaw does; the loop's error, if any, is returned with what came before it. */
async function readStream(client: OpenAI, model: string): Promise<{ events: OpenAI.Responses.ResponseStreamEvent[]; headers: Headers; error: unknown }> {
  const { data: stream, response } = await client.responses.create({ ...params(model), stream: true }).withResponse();
  const events: OpenAI.Responses.ResponseStreamEvent[] = [];
  let error: unknown;
  try {
    for await (const event of stream) events.push(event);
  } catch (caught) {
    error = caught;
  }
  return { events, headers: response.headers, error };
}

function assertEveryEventTyped(events: readonly unknown[]): void {
  for (const event of events) {
    assert.equal(typeof (event as { type?: unknown }).type, "string", `the SDK loop got an event without a string type: ${JSON.stringify(event)}`);
  }
}

// ---------------------------------------------------------------------------

describe("passthrough on a pinned model", () => {
  test("responses.create → the upstream's response; the route's key, the body as sent, no switch", T, async (t) => {
    const { client, up } = await setup(t, { [A]: ok(A), [B]: ok(B) });

    const { data, response } = await client.responses.create(params(A)).withResponse();

    assert.equal(data.output_text, textOf(A));
    assert.equal(data.status, "completed");
    assert.equal(data.model, A);
    assert.equal((data as unknown as { gateway_notice?: unknown }).gateway_notice, undefined);
    assert.equal(response.headers.get("x-gateway-model-used"), A);
    assert.equal(response.headers.get("x-gateway-attempt-count"), "1");
    assert.equal(response.headers.get("x-gateway-switched"), null);

    assert.equal(up[A]!.received.length, 1);
    assert.equal(up[B]!.received.length, 0);
    const received = up[A]!.received[0]!;
    assert.equal(received.method, "POST");
    assert.equal(received.url, "/v1/responses");
    assert.equal(received.headers.authorization, `Bearer ${keyOf(A)}`, "the route's key replaces the client's placeholder");
    assert.ok(!JSON.stringify(received.headers).includes("placeholder-key"), "the client's placeholder key reached the upstream");
    assert.deepEqual(received.json, params(A), "the body reaches the upstream as sent");
  });

  test("create({stream: true}) → every event in order, each with a string type, ending with response.completed", T, async (t) => {
    const { client, up } = await setup(t, { [A]: ok(A) });

    const { events, headers, error } = await readStream(client, A);

    assert.equal(error, undefined, `the loop threw: ${String(error)}`);
    assertEveryEventTyped(events);
    assert.equal(events[0]?.type, "response.created");
    assert.equal(events.at(-1)?.type, "response.completed");
    assert.deepEqual(
      events.map((event) => event.sequence_number),
      events.map((_, i) => i),
      "events are relayed in order, none dropped or added",
    );
    assert.equal(deltaText(events), textOf(A));
    const completed = events.at(-1) as OpenAI.Responses.ResponseCompletedEvent;
    assert.equal(completed.response.model, A);
    assert.equal(headers.get("x-gateway-model-used"), A);
    assert.equal(headers.get("x-gateway-attempt-count"), "1");
    assert.equal(headers.get("x-gateway-switched"), null);
    assert.equal(up[A]!.received[0]!.json?.stream, true);
    assert.equal(up[A]!.received[0]!.headers.authorization, `Bearer ${keyOf(A)}`);
  });

  test("responses.stream().finalResponse() → the whole answer", T, async (t) => {
    const { client } = await setup(t, { [A]: ok(A) });

    const final = await client.responses.stream(params(A)).finalResponse();

    assert.equal(final.output_text, textOf(A));
    assert.equal(final.status, "completed");
    assert.equal(final.model, A);
  });

  test("raw: the stream has no comment and no event the upstream did not send", T, async (t) => {
    const { gw } = await setup(t, { [A]: ok(A) });

    const res = await postResponses(gw, { ...params(A), stream: true });

    assert.equal(res.status, 200);
    assert.match(String(res.headers["content-type"]), /text\/event-stream/);
    assert.ok(sseBlocks(res.text).every((block) => block.comments.length === 0), "a comment without a switch");
    const events = typedEvents(res.text);
    assert.equal(events[0]?.type, "response.created");
    assert.equal(events.at(-1)?.type, "response.completed");
  });
});

interface Scenario {
  readonly what: string;
  /** What model-a does. */
  readonly handler: Handler;
  /** Requests model-a gets before the switch (a 429 in auto fails over at once; a 5xx-like failure is retried once); undefined: not checked. */
  readonly attemptsOnA?: number;
  /** The notice's trigger_status; undefined: not checked. */
  readonly trigger?: number | null;
  /** Extra lines for model-a's route (its timeouts). */
  readonly routeExtraA?: string;
}

const scenarios: readonly Scenario[] = [
  { what: "a 429 answer", handler: replyResponsesError(429), attemptsOnA: 1, trigger: 429 },
  { what: "a stream opening with an error event (rate_limit_exceeded, after response.created)", handler: streamResponsesError(), attemptsOnA: 1, trigger: 429 },
  {
    what: "a stream whose very first event is a flat error event (server_error)",
    handler: streamResponsesError({ shape: "flat", lifecycle: false, code: "server_error" }),
    attemptsOnA: 2,
    trigger: 500,
  },
  { what: "response.failed before any output", handler: streamResponsesFailed(), attemptsOnA: 2, trigger: 500 },
];

/** A cut before output: created, in_progress, then the socket is destroyed. Whether the gateway retries model-a first is its choice. */
const cutBeforeOutput: Scenario = { what: "a cut before any output", handler: streamResponsesCut({ pieces: [] }) };

/** response.created and response.in_progress, then silence: no output within firstTokenMs. */
function stallAfterPreamble(): Handler {
  return (req, res) => {
    const events = responseEvents(req.json ?? {}, [{ type: "message", id: messageItemId(), text: "Never sent." }], USAGE);
    res.writeHead(200, { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache" });
    for (const event of events.slice(0, 2)) res.write(event);
  };
}

const stallBeforeOutput: Scenario = {
  what: "a stall after response.in_progress (no output within firstTokenMs: 300)",
  handler: stallAfterPreamble(),
  attemptsOnA: 1,
  trigger: null,
  routeExtraA: "    timeouts:\n      firstTokenMs: 300\n",
};

function assertSwitchHeaders(headers: { get(name: string): string | null }, up: Readonly<Record<string, MockUpstream>>, attemptsOnA?: number): void {
  if (attemptsOnA !== undefined) assert.equal(up[A]!.received.length, attemptsOnA, `requests to ${A}`);
  assert.ok(up[A]!.received.length >= 1);
  assert.equal(up[B]!.received.length, 1, `requests to ${B}`);
  assert.equal(up[B]!.received[0]!.json?.model, B, "the next candidate gets its own model name");
  assert.equal(up[B]!.received[0]!.headers.authorization, `Bearer ${keyOf(B)}`);
  assert.equal(headers.get("x-gateway-model-used"), B);
  assert.equal(headers.get("x-gateway-switched"), "1");
  assert.equal(headers.get("x-gateway-attempt-count"), String(up[A]!.received.length + 1));
}

const rawHeaders = (res: RawResponse) => ({ get: (name: string) => (res.headers[name] === undefined ? null : String(res.headers[name])) });

describe("failover in auto before the first output", () => {
  test("non-stream: a 429 answer → the second model's response, with a top-level gateway_notice", T, async (t) => {
    const { client, up } = await setup(t, { [A]: replyResponsesError(429), [B]: ok(B) }, ORDERED);

    const { data, response } = await client.responses.create(params("auto")).withResponse();

    assert.equal(data.output_text, textOf(B));
    assert.equal(data.model, B);
    assertSwitchHeaders(response.headers, up, 1);
    const notice = (data as unknown as { gateway_notice?: Record<string, unknown> }).gateway_notice;
    assert.ok(notice, "no gateway_notice in the JSON answer after a switch");
    assert.equal(notice.trigger_status, 429);
    assert.equal(notice.from_model, A);
    assert.equal(notice.from_route, `route-${A}`);
    assert.equal(notice.to_model, B);
    assert.equal(notice.to_route, `route-${B}`);
    assert.equal(notice.reason, "status");
  });

  for (const scenario of [...scenarios, cutBeforeOutput, stallBeforeOutput]) {
    const routeExtra: Record<string, string> = scenario.routeExtraA ? { [A]: scenario.routeExtraA } : {};
    test(`${scenario.what} → for await over create({stream: true}) sees only the second model's answer`, T, async (t) => {
      const { client, up } = await setup(t, { [A]: scenario.handler, [B]: ok(B) }, ORDERED, routeExtra);

      const { events, headers, error } = await readStream(client, "auto");

      assert.equal(error, undefined, `the loop threw: ${String(error)}`);
      assertEveryEventTyped(events);
      assert.equal(events[0]?.type, "response.created");
      assert.equal(events.at(-1)?.type, "response.completed");
      assert.ok(!events.some((event) => event.type === "error" || event.type === "response.failed"), "a failed attempt reached the client");
      assert.equal(deltaText(events), textOf(B));
      assert.equal((events.at(-1) as OpenAI.Responses.ResponseCompletedEvent).response.model, B);
      assert.deepEqual(
        events.map((event) => event.sequence_number),
        events.map((_, i) => i),
        "only the second model's events, in order",
      );
      assertSwitchHeaders(headers, up, scenario.attemptsOnA);
    });

    test(`${scenario.what} → responses.stream().finalResponse() works, even with notice: {sse: event} configured`, T, async (t) => {
      const { client, up } = await setup(t, { [A]: scenario.handler, [B]: ok(B) }, `${ORDERED}${NOTICE_EVENT}`, routeExtra);

      const final = await client.responses.stream(params("auto")).finalResponse();

      assert.equal(final.output_text, textOf(B));
      assert.equal(final.status, "completed");
      assert.equal(final.model, B);
      assert.equal(up[B]!.received.length, 1);
    });

    test(`${scenario.what} → raw: the notice is a comment line (even with notice: {sse: event}), every data object has a string type`, T, async (t) => {
      const { gw, up } = await setup(t, { [A]: scenario.handler, [B]: ok(B) }, `${ORDERED}${NOTICE_EVENT}`, routeExtra);

      const res = await postResponses(gw, { ...params("auto"), stream: true });

      assert.equal(res.status, 200, res.text);
      assert.match(String(res.headers["content-type"]), /text\/event-stream/);
      assertSwitchHeaders(rawHeaders(res), up, scenario.attemptsOnA);
      assert.ok(res.text.startsWith(": gateway_notice "), `the stream does not open with the notice comment: ${JSON.stringify(res.text.slice(0, 120))}`);
      assert.ok(!/^event: *gateway_notice/m.test(res.text), "a named gateway_notice event in a Responses stream");
      const firstLine = res.text.slice(0, res.text.indexOf("\n"));
      const notice = JSON.parse(firstLine.slice(": gateway_notice ".length)) as Record<string, unknown>;
      assert.equal(notice.from_model, A);
      assert.equal(notice.to_model, B);
      if (scenario.trigger !== undefined) assert.equal(notice.trigger_status, scenario.trigger);

      const events = typedEvents(res.text);
      assert.equal(events[0]?.type, "response.created", "responses.stream() needs response.created first");
      assert.equal(events.at(-1)?.type, "response.completed");
      assert.ok(!events.some((event) => event.type === "error" || event.type === "response.failed"));
      assert.equal(deltaText(events as { type: string; delta?: unknown }[]), textOf(B));
    });
  }
});

describe("a group mixing OpenAI and Anthropic routes", () => {
  /** `auto` over model-a (OpenAI, Responses-capable) and claude-x on an Anthropic route, which has no Responses API. */
  async function mixed(t: TestContext, handler: Handler, extraA = ""): Promise<{ gw: TestGateway; client: OpenAI; a: MockUpstream; claude: MockUpstream }> {
    const a = await useMock(t, handler);
    const claude = await useMock(t);
    const gw = await useGateway(
      t,
      `${ORDERED}routes:\n  - name: route-${A}\n    url: ${a.origin}/v1\n    isBaseUrl: true\n    apiKey: ${keyOf(A)}\n    model: ${A}\n${extraA}` +
        `  - name: route-claude\n    api: anthropic\n    url: ${claude.origin}\n    apiKey: sk-ant-route\n    model: claude-x\n`,
    );
    return { gw, client: sdk(gw), a, claude };
  }

  test("the OpenAI route's 429 reaches the client: a route that cannot serve Responses is not somewhere to fail over to", T, async (t) => {
    const { client, a, claude } = await mixed(t, replyResponsesError(429));
    const error = await client.responses.create(params("auto")).then(() => undefined, (caught: unknown) => caught);
    assert.ok(error instanceof APIError, String(error));
    assert.equal(error.status, 429, error.message);
    assert.ok(a.received.length >= 1);
    assert.equal(claude.received.length, 0);
  });

  test("a first output later than firstTokenMs is waited for when the only other candidate cannot serve Responses", T, async (t) => {
    // 80 ms between events: the first text delta comes after about 400 ms, past firstTokenMs.
    const slow = replyResponses({ text: textOf(A), apiKey: keyOf(A), delayMs: 80 });
    const { client, claude } = await mixed(t, slow, "    timeouts:\n      firstTokenMs: 200\n");
    const { events, error } = await readStream(client, "auto");
    assert.equal(error, undefined);
    assert.equal(deltaText(events), textOf(A));
    assert.equal(claude.received.length, 0);
  });
});

describe("a reasoning model", () => {
  test("a reasoning item commits the stream: a model that thinks past firstTokenMs is not cut and restarted elsewhere", T, async (t) => {
    const thinking = replyResponses({ text: textOf(A), apiKey: keyOf(A), reasoning: true, delayMs: 120 });
    const { client, up } = await setup(t, { [A]: thinking, [B]: ok(B) }, ORDERED, { [A]: "    timeouts:\n      firstTokenMs: 300\n" });

    const { events, error, headers } = await readStream(client, "auto");

    assert.equal(error, undefined);
    assert.equal(deltaText(events), textOf(A));
    assert.equal(up[B]!.received.length, 0, "the thinking model was abandoned");
    assert.equal(headers.get("x-gateway-model-used"), A);
  });
});

describe("an opening error event that a rule makes final", () => {
  test("content_policy_violation in auto → that error, after one attempt: the next model is not tried behind the client's back", T, async (t) => {
    const refused = streamResponsesError({ code: "content_policy_violation", type: "invalid_request_error", message: "Your request was rejected as a result of our safety system." });
    const { gw, up } = await setup(t, { [A]: refused, [B]: ok(B) }, ORDERED);

    const res = await postResponses(gw, { ...params("auto"), stream: true });

    assert.equal(res.status, 400, res.text);
    assert.equal((res.json() as { error?: { code?: unknown } }).error?.code, "content_policy_violation");
    assert.equal(up[A]!.received.length, 1);
    assert.equal(up[B]!.received.length, 0, "a final error was failed over");
    assert.equal(res.headers["x-gateway-model-used"], A);
    assert.equal(res.headers["x-gateway-attempt-count"], "1");
    assert.equal(res.headers["x-gateway-switched"], undefined);
  });
});

describe("no candidate left before the first output", () => {
  test("a pinned model whose stream opens with an error event (429) → an HTTP 429 the SDK raises, never a 200 stream", T, async (t) => {
    const { gw, client, up } = await setup(t, { [A]: streamResponsesError(), [B]: ok(B) }, "retry:\n  retries: 0\n");

    let caught: unknown;
    try {
      await readStream(client, A);
    } catch (error) {
      caught = error;
    }
    assert.ok(caught instanceof APIError, `expected an APIError, got ${String(caught)}`);
    assert.equal(caught.status, 429);
    assert.equal((caught.error as { code?: unknown } | undefined)?.code, "rate_limit_exceeded");
    assert.equal(up[B]!.received.length, 0, "a pinned model without a chain never switches");

    const res = await postResponses(gw, { ...params(A), stream: true });
    assert.equal(res.status, 429);
    assert.match(String(res.headers["content-type"]), /application\/json/);
    const body = res.json() as { error?: { code?: unknown; message?: unknown } };
    assert.equal(body.error?.code, "rate_limit_exceeded");
    assert.equal(typeof body.error?.message, "string");
    assert.equal(res.headers["x-gateway-model-used"], A);
  });
});

// ---------------------------------------------------------------------------
// after the first output

/**
 * A stream of a whole answer except its terminal `response.completed`; then
 * the stream ends cleanly (`end: true`) or goes silent. `closed` resolves when
 * the gateway lets go of the upstream request.
 */
function withoutTerminal(end: boolean): { handler: Handler; closed: Promise<void> } {
  const closed = deferred<void>();
  return {
    closed: closed.promise,
    handler: (req, res: ServerResponse) => {
      res.on("close", () => closed.resolve());
      const events = responseEvents(req.json ?? {}, [{ type: "message", id: messageItemId(), text: "Hello from the partial answer." }], USAGE);
      res.writeHead(200, { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache" });
      for (const event of events.slice(0, -1)) res.write(event);
      if (end) res.end();
    },
  };
}

/** The raw stream ends with the gateway's `error` event: type error, code stream_interrupted, an `error` object, no response.completed. */
function assertInterrupted(res: RawResponse): Record<string, unknown>[] {
  assert.equal(res.status, 200);
  const events = typedEvents(res.text);
  const blocks = sseBlocks(res.text).filter((block) => block.data !== undefined);
  const last = events.at(-1) as Record<string, unknown>;
  assert.equal(blocks.at(-1)?.event, "error", `the stream does not end with an error event: ${JSON.stringify(res.text.slice(-300))}`);
  assert.equal(last.type, "error");
  assert.equal(last.code, "stream_interrupted");
  assert.equal(typeof last.message, "string");
  assert.ok(last.error && typeof last.error === "object", "no error object: the openai SDK would not raise it");
  assert.ok(!events.some((event) => event.type === "response.completed"), "a completed response after a failure");
  assert.ok(events.some((event) => event.type === "response.output_text.delta"), "the output before the failure was not relayed");
  return events;
}

describe("a failure after the first output", () => {
  test("a cut → the SDK loop throws an APIError after the text already sent", T, async (t) => {
    const { client, up } = await setup(t, { [A]: streamResponsesCut({ pieces: ["Hello ", "from ", "the "] }), [B]: ok(B) });

    const { events, error } = await readStream(client, A);

    assertEveryEventTyped(events);
    assert.ok(error instanceof APIError, `the loop ended without an APIError (${String(error)}): a truncated answer looks complete`);
    assert.equal((error.error as { code?: unknown } | undefined)?.code, "stream_interrupted");
    assert.equal(deltaText(events), "Hello from the ");
    assert.ok(!events.some((event) => event.type === "response.completed"));
    assert.equal(up[B]!.received.length, 0);
  });

  test("a cut → responses.stream().finalResponse() rejects", T, async (t) => {
    const { client } = await setup(t, { [A]: streamResponsesCut() });
    await assert.rejects(client.responses.stream(params(A)).finalResponse(), (error: unknown) => {
      assert.ok(error instanceof Error);
      return true;
    });
  });

  test("a cut → raw: the stream ends with event: error (stream_interrupted), not a clean end", T, async (t) => {
    const { gw } = await setup(t, { [A]: streamResponsesCut() });
    const res = await postResponses(gw, { ...params(A), stream: true });
    const events = assertInterrupted(res);
    assert.equal(deltaText(events as { type: string; delta?: unknown }[]), "Hello from the ");
  });

  test("an end without response.completed → the stream ends with the error event; the SDK loop throws", T, async (t) => {
    const { gw, client } = await setup(t, { [A]: withoutTerminal(true).handler });

    assertInterrupted(await postResponses(gw, { ...params(A), stream: true }));

    const { events, error } = await readStream(client, A);
    assert.ok(error instanceof APIError, `the loop ended without an APIError (${String(error)})`);
    assert.equal(deltaText(events), "Hello from the partial answer.");
  });

  test("a stall longer than idleMs (300) → the error event ends the stream, and the upstream request is closed", T, async (t) => {
    const stalled = withoutTerminal(false);
    const { gw } = await setup(t, { [A]: stalled.handler }, "", { [A]: "    timeouts:\n      idleMs: 300\n" });

    const started = performance.now();
    const res = await postResponses(gw, { ...params(A), stream: true });
    const elapsed = performance.now() - started;

    assertInterrupted(res);
    assert.ok(elapsed >= 300 - 5 && elapsed < 300 + 2_500, `took ${elapsed} ms`);
    await within(stalled.closed, 2_000, "the stalled upstream request closing");
  });

  test("an error event after output is relayed: the SDK loop throws, the raw stream ends with it", T, async (t) => {
    const handler = streamResponsesError({ afterText: ["Hello ", "from "], code: "server_error", message: "The server had an error." });
    const { gw, client } = await setup(t, { [A]: handler });

    const { events, error } = await readStream(client, A);
    assert.ok(error instanceof APIError, `the loop ended without an APIError (${String(error)})`);
    assert.equal(deltaText(events), "Hello from ");

    const res = await postResponses(gw, { ...params(A), stream: true });
    assert.equal(res.status, 200);
    const raw = typedEvents(res.text);
    assert.equal(raw.at(-1)?.type, "error");
    assert.ok(!raw.some((event) => event.type === "response.completed"));
  });
});
