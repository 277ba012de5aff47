import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { SseParser } from "../../src/stream/sse.js";
import { ChatTranscript, ReplayVerifier, isContentChunk, type ReplayVerdict } from "../../src/stream/transcript.js";
import { withAssistantPrefix } from "../../src/proxy/request-body.js";

type Json = Record<string, unknown>;

/** The test sources' fixtures, seen from build/test/unit/. */
const FIXTURES = new URL("../../../test/fixtures/streams/", import.meta.url);

/** The JSON chunks of a recorded SSE stream (comments and [DONE] left out). */
function recorded(name: string): Json[] {
  const parser = new SseParser();
  const bytes = readFileSync(new URL(name, FIXTURES));
  const events = [...parser.push(bytes), ...parser.end()];
  return events.filter((e) => e.data !== undefined && e.data.trim() !== "[DONE]").map((e) => JSON.parse(e.data as string) as Json);
}

const choice = (delta: Json, index = 0, finish: string | null = null): Json => ({ index, delta, finish_reason: finish });
/** An original chunk (id chatcmpl-A, model model-a). */
const chunk = (...choices: Json[]): Json => ({ id: "chatcmpl-A", object: "chat.completion.chunk", created: 1, model: "model-a", choices });
/** A replay chunk: another id and model. */
const replay = (...choices: Json[]): Json => ({ id: "chatcmpl-R", object: "chat.completion.chunk", created: 2, model: "model-b", choices });
const content = (text: string, index = 0) => chunk(choice({ content: text }, index));
const rContent = (text: string, index = 0) => replay(choice({ content: text }, index));
const head = (index: number, id: string, name: string, args = "") => ({ tool_calls: [{ index, id, type: "function", function: { name, arguments: args } }] });
const args = (index: number, text: string) => ({ tool_calls: [{ index, function: { arguments: text } }] });

function transcriptOf(chunks: Json[]): ChatTranscript {
  const transcript = new ChatTranscript();
  for (const c of chunks) transcript.apply(c);
  return transcript;
}

function feedAll(verifier: ReplayVerifier, chunks: Json[]): ReplayVerdict[] {
  return chunks.map((c) => verifier.feed(c));
}

const kinds = (verdicts: ReplayVerdict[]) => verdicts.map((v) => v.kind);
const emitted = (verdicts: ReplayVerdict[]): Json[] => verdicts.flatMap((v) => (v.kind === "emit" ? [v.chunk] : []));
const choicesOf = (c: Json) => (c.choices as Json[]) ?? [];
const deltaOf = (c: Json, index = 0): Json | undefined => choicesOf(c).find((ch) => ch.index === index)?.delta as Json | undefined;

/** The concatenation of `field` over the emitted chunks, for choice `index`. */
function emittedText(verdicts: ReplayVerdict[], field = "content", index = 0): string {
  let text = "";
  for (const c of emitted(verdicts)) {
    const value = deltaOf(c, index)?.[field];
    if (typeof value === "string") text += value;
  }
  return text;
}

/** Emitted tool-call deltas for choice `index`, flattened. */
function emittedCalls(verdicts: ReplayVerdict[], index = 0): Json[] {
  return emitted(verdicts).flatMap((c) => ((deltaOf(c, index)?.tool_calls as Json[] | undefined) ?? []));
}

describe("isContentChunk", () => {
  test("text, refusal, reasoning, tool calls and function_call count", () => {
    assert.equal(isContentChunk(content("hi")), true);
    assert.equal(isContentChunk(chunk(choice({ refusal: "no" }))), true);
    assert.equal(isContentChunk(chunk(choice({ reasoning_content: "hmm" }))), true);
    assert.equal(isContentChunk(chunk(choice({ reasoning: "hmm" }))), true);
    assert.equal(isContentChunk(chunk(choice(head(0, "call_1", "f")))), true);
    assert.equal(isContentChunk(chunk(choice({ function_call: { name: "f", arguments: "" } }))), true);
    assert.equal(isContentChunk(chunk(choice({ role: "assistant", content: "" }), choice({ content: "x" }, 1))), true, "any choice counts");
  });

  test("role-only, empty content, usage-only, finish-only and shapeless chunks don't", () => {
    assert.equal(isContentChunk(chunk(choice({ role: "assistant" }))), false);
    assert.equal(isContentChunk(chunk(choice({ role: "assistant", content: "" }))), false);
    assert.equal(isContentChunk(chunk(choice({ content: null }))), false);
    assert.equal(isContentChunk(chunk(choice({ tool_calls: [] }))), false);
    assert.equal(isContentChunk({ ...chunk(), usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 } }), false);
    assert.equal(isContentChunk(chunk(choice({}, 0, "stop"))), false);
    assert.equal(isContentChunk(chunk({ index: 0, finish_reason: "stop" })), false);
    for (const value of [null, undefined, "data", 5, [], {}, { choices: "x" }, { choices: [null, 1, "a"] }]) assert.equal(isContentChunk(value), false, JSON.stringify(value));
  });
});

describe("ChatTranscript", () => {
  test("accumulates content per choice index, the first id, role and finish_reason", () => {
    const t = transcriptOf([
      chunk(choice({ role: "assistant", content: "" }, 0), choice({ role: "assistant", content: "" }, 1)),
      content("Hel"),
      content("Bon", 1),
      { ...content("lo"), id: "chatcmpl-other" },
      chunk(choice({ content: "jour" }, 1, "length")),
      chunk(choice({}, 0, "stop")),
    ]);
    assert.equal(t.id, "chatcmpl-A", "the first id is kept");
    assert.equal(t.choices.get(0)?.text.get("content"), "Hello");
    assert.equal(t.choices.get(1)?.text.get("content"), "Bonjour");
    assert.equal(t.choices.get(0)?.finish, "stop");
    assert.equal(t.choices.get(1)?.finish, "length");
    assert.equal(t.choices.get(0)?.role, true);
  });

  test('finish_reason "" (sent on every chunk by some servers) is not a finish', () => {
    const t = transcriptOf([chunk(choice({ content: "Hel" }, 0, "")), chunk(choice({ content: "lo" }, 0, ""))]);
    assert.equal(t.choices.get(0)?.finish, null);
    assert.equal(t.finished(), false);
    t.apply(chunk(choice({}, 0, "stop")));
    assert.equal(t.choices.get(0)?.finish, "stop");
  });

  test("a choice without an index is choice 0; refusal and reasoning accumulate apart from content", () => {
    const t = transcriptOf([
      { id: "x", choices: [{ delta: { reasoning_content: "think" } }] },
      chunk(choice({ reasoning_content: "ing" })),
      chunk(choice({ refusal: "I can" })),
      chunk(choice({ refusal: "not" })),
    ]);
    const state = t.choices.get(0);
    assert.equal(state?.text.get("reasoning_content"), "thinking");
    assert.equal(state?.text.get("refusal"), "I cannot");
    assert.equal(state?.text.get("content"), undefined);
    assert.equal(t.choices.size, 1);
  });

  test("tool calls by index: id, name, arguments concatenated", () => {
    const t = transcriptOf([
      chunk(choice(head(0, "call_0", "get_weather"))),
      chunk(choice(args(0, '{"city":'))),
      chunk(choice(args(0, '"Paris"}'))),
      chunk(choice(head(1, "call_1", "get_", '{"tz"'))),
      chunk(choice({ tool_calls: [{ index: 1, function: { name: "time", arguments: ':"CET"}' } }] })),
      chunk(choice({}, 0, "tool_calls")),
    ]);
    const calls = t.choices.get(0)?.toolCalls;
    assert.deepEqual(calls?.get(0), { id: "call_0", name: "get_weather", args: '{"city":"Paris"}' });
    assert.deepEqual(calls?.get(1), { id: "call_1", name: "get_time", args: '{"tz":"CET"}' });
    assert.equal(t.choices.get(0)?.finish, "tool_calls");
  });

  test("usage-only and choice-less chunks change nothing but the id", () => {
    const t = transcriptOf([{ id: "chatcmpl-U", choices: [], usage: { total_tokens: 1 } }, { object: "x" }]);
    assert.equal(t.id, "chatcmpl-U");
    assert.equal(t.choices.size, 0);
  });

  test("finished() and finishedAny()", () => {
    const t = new ChatTranscript();
    assert.equal(t.finished(), false, "nothing said is not a finished answer");
    assert.equal(t.finishedAny(), false);
    t.apply(content("a"));
    t.apply(content("b", 1));
    assert.equal(t.finished(), false);
    assert.equal(t.finishedAny(), false);
    t.apply(chunk(choice({}, 1, "stop")));
    assert.equal(t.finished(), false, "choice 0 is still open");
    assert.equal(t.finishedAny(), true);
    t.apply(chunk(choice({}, 0, "stop")));
    assert.equal(t.finished(), true);
    assert.equal(t.finishedAny(), true);
  });

  test("plainText(): choice 0's content; onlyText false with tool calls, other fields or several choices", () => {
    assert.deepEqual(new ChatTranscript().plainText(), { text: "", onlyText: true });
    assert.deepEqual(transcriptOf([chunk(choice({ role: "assistant", content: "" })), content("Hi"), content(" there")]).plainText(), { text: "Hi there", onlyText: true });
    assert.deepEqual(transcriptOf([content("Let me"), chunk(choice(head(0, "c", "f", "{}")))]).plainText(), { text: "Let me", onlyText: false });
    assert.deepEqual(transcriptOf([content("a"), content("b", 1)]).plainText(), { text: "a", onlyText: false });
    assert.deepEqual(transcriptOf([chunk(choice({ reasoning_content: "hmm" })), content("a")]).plainText(), { text: "a", onlyText: false });
    assert.deepEqual(transcriptOf([chunk(choice({ refusal: "no" }))]).plainText(), { text: "", onlyText: false });
  });

  test("clone() is deep: changing the clone leaves the original alone", () => {
    const original = transcriptOf([content("Hel"), chunk(choice(head(0, "call_0", "f", '{"a"')))]);
    const copy = original.clone();
    assert.equal(copy.id, "chatcmpl-A");
    copy.apply(content("lo"));
    copy.apply(chunk(choice(args(0, ":1}"))));
    copy.apply(content("new", 1));
    copy.apply(chunk(choice({}, 0, "stop")));
    const toolCall = copy.choices.get(0)?.toolCalls.get(0);
    assert.ok(toolCall);
    toolCall.id = "changed";
    assert.equal(original.choices.get(0)?.text.get("content"), "Hel");
    assert.deepEqual(original.choices.get(0)?.toolCalls.get(0), { id: "call_0", name: "f", args: '{"a"' });
    assert.equal(original.choices.size, 1);
    assert.equal(original.choices.get(0)?.finish, null);
    assert.equal(copy.choices.get(0)?.text.get("content"), "Hello");
    // And the other way round.
    original.apply(content("p!"));
    assert.equal(copy.choices.get(0)?.text.get("content"), "Hello");
  });
});

describe("ReplayVerifier: text (golden streams)", () => {
  const ORIGINAL = recorded("text-original.sse");
  const FULL = "Hello, world! How are you?";
  /** Committed: the role chunk, "Hello", ", wor" — then the stream was cut. */
  const COMMITTED = ORIGINAL.slice(0, 3);
  const PREFIX = "Hello, wor";

  test("the fixtures are what the tests assume", () => {
    assert.equal(ORIGINAL.length, 7);
    assert.equal(transcriptOf(ORIGINAL).plainText().text, FULL);
    assert.equal(transcriptOf(COMMITTED).plainText().text, PREFIX);
    assert.equal(transcriptOf(recorded("text-replay-rechunked.sse")).plainText().text, FULL);
  });

  test("an identical replay: the committed prefix is held, the rest emitted, role stripped, id rewritten, model kept", () => {
    const verifier = new ReplayVerifier(transcriptOf(COMMITTED));
    const again = ORIGINAL.map((c) => ({ ...c, id: "chatcmpl-R", model: "model-b" }));
    const verdicts = feedAll(verifier, again);
    assert.deepEqual(kinds(verdicts), ["hold", "hold", "hold", "emit", "emit", "emit", "emit"]);
    assert.equal(emittedText(verdicts), FULL.slice(PREFIX.length));
    assert.equal(PREFIX + emittedText(verdicts), FULL);
    for (const c of emitted(verdicts)) {
      assert.equal(c.id, "chatcmpl-A", "the client keeps seeing the committed id");
      assert.equal(c.model, "model-b", "the model is the one that answered");
      for (const ch of choicesOf(c)) assert.ok(!("role" in (ch.delta as Json)), "no second role");
    }
    const [, , finish, usage] = emitted(verdicts);
    assert.deepEqual(choicesOf(finish as Json), [{ index: 0, delta: {}, finish_reason: "stop" }]);
    assert.deepEqual(usage, { id: "chatcmpl-A", object: "chat.completion.chunk", created: 1700000000, model: "model-b", choices: [], usage: { prompt_tokens: 9, completion_tokens: 7, total_tokens: 16 } });
  });

  test("an identical replay cut at every chunk boundary (before the finish) reproduces the full text exactly", () => {
    // Chunks 0..4 are the role and the text; chunk 5 is the finish (a finished answer is covered below).
    for (let cut = 1; cut <= 5; cut++) {
      const committed = transcriptOf(ORIGINAL.slice(0, cut));
      const verifier = new ReplayVerifier(committed);
      const verdicts = feedAll(verifier, ORIGINAL);
      assert.ok(verdicts.every((v) => v.kind !== "diverged"), `cut ${cut}`);
      assert.equal(committed.plainText().text + emittedText(verdicts), FULL, `cut ${cut}`);
      assert.deepEqual(kinds(verdicts).slice(0, cut), Array<string>(cut).fill("hold"), `cut ${cut}: what was sent is held`);
      assert.ok(kinds(verdicts).slice(cut).every((k) => k === "emit"), `cut ${cut}: the rest is emitted`);
    }
  });

  test("replay chunking differs: a chunk straddling the boundary is trimmed to the new part", () => {
    const verifier = new ReplayVerifier(transcriptOf(COMMITTED));
    const verdicts = feedAll(verifier, recorded("text-replay-rechunked.sse"));
    assert.deepEqual(kinds(verdicts), ["hold", "hold", "emit", "emit", "emit", "emit", "emit"]);
    assert.equal(deltaOf(emitted(verdicts)[0] as Json)?.content, "ld", '"lo, world" → "ld"');
    assert.equal(emittedText(verdicts), "ld! How are you?");
    assert.equal(PREFIX + emittedText(verdicts), FULL);
    for (const c of emitted(verdicts)) assert.equal(c.id, "chatcmpl-A");
  });

  test("the replay split at every character reproduces the full text exactly", () => {
    const verifier = new ReplayVerifier(transcriptOf(COMMITTED));
    const chars = [...FULL].map((ch) => rContent(ch));
    const verdicts = feedAll(verifier, [...chars, replay(choice({}, 0, "stop"))]);
    assert.deepEqual(kinds(verdicts), [...Array<string>(PREFIX.length).fill("hold"), ...Array<string>(FULL.length - PREFIX.length + 1).fill("emit")]);
    assert.equal(emittedText(verdicts), FULL.slice(PREFIX.length));
  });

  test("divergent text → diverged", () => {
    // Differs inside the prefix.
    let verifier = new ReplayVerifier(transcriptOf(COMMITTED));
    assert.deepEqual(kinds(feedAll(verifier, [rContent("Hello"), rContent(", Wor")])), ["hold", "diverged"]);
    // Differs in a chunk that goes past the prefix.
    verifier = new ReplayVerifier(transcriptOf(COMMITTED));
    assert.deepEqual(kinds(feedAll(verifier, [rContent("Hello, there")])), ["diverged"]);
    // Differs at the very first character.
    verifier = new ReplayVerifier(transcriptOf(COMMITTED));
    const [first] = feedAll(verifier, [rContent("Help")]);
    assert.equal(first?.kind, "diverged");
    assert.ok(first?.kind === "diverged" && /content/.test(first.why));
  });

  test("a replay that finishes before reproducing the prefix → diverged", () => {
    let verifier = new ReplayVerifier(transcriptOf(COMMITTED));
    assert.deepEqual(kinds(feedAll(verifier, [rContent("Hello"), replay(choice({}, 0, "stop"))])), ["hold", "diverged"]);
    // Content and finish in the same chunk, still short.
    verifier = new ReplayVerifier(transcriptOf(COMMITTED));
    assert.deepEqual(kinds(feedAll(verifier, [replay(choice({ content: "Hello, wo" }, 0, "stop"))])), ["diverged"]);
    // Finishing exactly at the prefix is fine: the finish is new.
    verifier = new ReplayVerifier(transcriptOf(COMMITTED));
    const verdicts = feedAll(verifier, [rContent("Hello, wor"), replay(choice({}, 0, "stop"))]);
    assert.deepEqual(kinds(verdicts), ["hold", "emit"]);
    assert.equal(choicesOf(emitted(verdicts)[0] as Json)[0]?.finish_reason, "stop");
  });

  test('a replay that sends finish_reason "" on every chunk is not finishing: held, then emitted', () => {
    const verifier = new ReplayVerifier(transcriptOf(COMMITTED));
    const verdicts = feedAll(verifier, [replay(choice({ content: "Hello" }, 0, "")), replay(choice({ content: ", world" }, 0, "")), replay(choice({}, 0, "stop"))]);
    assert.deepEqual(kinds(verdicts), ["hold", "emit", "emit"]);
    assert.equal(PREFIX + emittedText(verdicts), "Hello, world");
  });

  test("a usage-only chunk is emitted, even while still holding", () => {
    const verifier = new ReplayVerifier(transcriptOf(COMMITTED));
    const usage = { id: "chatcmpl-R", object: "chat.completion.chunk", model: "model-b", choices: [], usage: { prompt_tokens: 1, completion_tokens: 2, total_tokens: 3 } };
    const [verdict] = feedAll(verifier, [usage]);
    assert.deepEqual(verdict, { kind: "emit", chunk: { ...usage, id: "chatcmpl-A" } });
  });

  test("the committed transcript is copied: later changes to it do not move the prefix", () => {
    const committed = transcriptOf(COMMITTED);
    const verifier = new ReplayVerifier(committed);
    committed.apply(content("ld"));
    const verdicts = feedAll(verifier, [rContent("Hello, wor"), rContent("ld!")]);
    assert.deepEqual(kinds(verdicts), ["hold", "emit"]);
    assert.equal(emittedText(verdicts), "ld!");
  });

  test("feed() does not modify the replay chunks", () => {
    const verifier = new ReplayVerifier(transcriptOf(COMMITTED));
    const chunks = recorded("text-replay-rechunked.sse");
    const copy = structuredClone(chunks);
    feedAll(verifier, chunks);
    assert.deepEqual(chunks, copy);
  });

  test("without a committed id, the replay's id is kept", () => {
    const verifier = new ReplayVerifier(transcriptOf([{ choices: [{ index: 0, delta: { content: "a" } }] }]));
    const [verdict] = feedAll(verifier, [rContent("ab")]);
    assert.ok(verdict?.kind === "emit");
    assert.equal(verdict.chunk.id, "chatcmpl-R");
  });

  test("a role is passed on when the client never got one", () => {
    const verifier = new ReplayVerifier(transcriptOf([content("a")]));
    const [verdict] = feedAll(verifier, [replay(choice({ role: "assistant", content: "ab" }))]);
    assert.ok(verdict?.kind === "emit");
    assert.deepEqual(deltaOf(verdict.chunk), { role: "assistant", content: "b" });
  });
});

describe("ReplayVerifier: reasoning", () => {
  test("reasoning_content is held and trimmed like content", () => {
    const committed = transcriptOf([chunk(choice({ role: "assistant", content: "" })), chunk(choice({ reasoning_content: "Let me" })), chunk(choice({ reasoning_content: " think" }))]);
    const verifier = new ReplayVerifier(committed);
    const verdicts = feedAll(verifier, [
      replay(choice({ role: "assistant", content: "" })),
      replay(choice({ reasoning_content: "Let me th" })),
      replay(choice({ reasoning_content: "ink about it." })),
      replay(choice({ content: "42" })),
      replay(choice({}, 0, "stop")),
    ]);
    assert.deepEqual(kinds(verdicts), ["hold", "hold", "emit", "emit", "emit"]);
    assert.equal(emittedText(verdicts, "reasoning_content"), " about it.");
    assert.equal(emittedText(verdicts, "content"), "42");
  });

  test("divergent reasoning → diverged", () => {
    const verifier = new ReplayVerifier(transcriptOf([chunk(choice({ reasoning_content: "Let me think" }))]));
    assert.deepEqual(kinds(feedAll(verifier, [replay(choice({ reasoning_content: "Let us" }))])), ["diverged"]);
  });
});

describe("ReplayVerifier: tool calls (golden streams)", () => {
  const ORIGINAL = recorded("tools-original.sse");
  /** Committed: role, call 0's head, its arguments up to '{"city":"Par' — then the stream was cut. */
  const COMMITTED = ORIGINAL.slice(0, 4);

  test("the fixtures are what the tests assume", () => {
    const t = transcriptOf(COMMITTED);
    assert.deepEqual(t.choices.get(0)?.toolCalls.get(0), { id: "call_A0", name: "get_weather", args: '{"city":"Par' });
    assert.equal(t.choices.get(0)?.toolCalls.size, 1);
  });

  test("a replay with other ids, same names and arguments: started calls continue without duplication, a new call passes whole", () => {
    const verifier = new ReplayVerifier(transcriptOf(COMMITTED));
    const verdicts = feedAll(verifier, recorded("tools-replay.sse"));
    assert.deepEqual(kinds(verdicts), ["hold", "hold", "emit", "emit", "emit", "emit"]);
    const calls = emittedCalls(verdicts);
    assert.deepEqual(calls, [
      { index: 0, function: { arguments: 'is"}' } },
      { index: 1, id: "call_R1", type: "function", function: { name: "get_time", arguments: '{"tz"' } },
      { index: 1, function: { arguments: ':"CET"}' } },
    ]);
    // What the client ends up with: the committed call 0 completed, then call 1 as the replay made it.
    const client = transcriptOf(COMMITTED);
    for (const c of emitted(verdicts)) client.apply(c);
    assert.deepEqual(client.choices.get(0)?.toolCalls.get(0), { id: "call_A0", name: "get_weather", args: '{"city":"Paris"}' });
    assert.deepEqual(client.choices.get(0)?.toolCalls.get(1), { id: "call_R1", name: "get_time", args: '{"tz":"CET"}' });
    assert.equal(client.choices.get(0)?.finish, "tool_calls");
    for (const c of emitted(verdicts)) assert.equal(c.id, "chatcmpl-A");
  });

  test("an identical replay (chunk for chunk) cut at every chunk boundary rebuilds both calls exactly", () => {
    const whole = transcriptOf(ORIGINAL).choices.get(0)?.toolCalls;
    for (let cut = 1; cut < ORIGINAL.length; cut++) {
      const committed = transcriptOf(ORIGINAL.slice(0, cut));
      const verdicts = feedAll(new ReplayVerifier(committed), ORIGINAL.map((c) => ({ ...c, id: "chatcmpl-R" })));
      assert.ok(verdicts.every((v) => v.kind !== "diverged"), `cut ${cut}`);
      for (const c of emitted(verdicts)) committed.apply(c);
      assert.deepEqual(committed.choices.get(0)?.toolCalls, whole, `cut ${cut}`);
    }
  });

  test("a different tool name → diverged", () => {
    const verifier = new ReplayVerifier(transcriptOf(COMMITTED));
    const verdicts = feedAll(verifier, [replay(choice({ role: "assistant", content: null })), replay(choice(head(0, "call_R0", "get_time", '{"city":"Paris"}')))]);
    assert.deepEqual(kinds(verdicts), ["hold", "diverged"]);
  });

  test("a tool name that only extends the committed one (get_weather → get_weather_v2) → diverged, never silently dropped", () => {
    const verifier = new ReplayVerifier(transcriptOf(COMMITTED));
    const verdicts = feedAll(verifier, [replay(choice(head(0, "call_R0", "get_weather_v2", '{"city":"Paris"}')))]);
    assert.deepEqual(kinds(verdicts), ["diverged"]);
  });

  test("different arguments → diverged (inside the prefix and past it)", () => {
    let verifier = new ReplayVerifier(transcriptOf(COMMITTED));
    assert.deepEqual(kinds(feedAll(verifier, [replay(choice(head(0, "call_R0", "get_weather", '{"city":"Lon')))])), ["diverged"]);
    verifier = new ReplayVerifier(transcriptOf(COMMITTED));
    assert.deepEqual(kinds(feedAll(verifier, [replay(choice(head(0, "call_R0", "get_weather", '{"ci'))), replay(choice(args(0, 'ty":"Berlin"}')))])), ["hold", "diverged"]);
  });

  test("finishing before the committed arguments are reproduced → diverged", () => {
    const verifier = new ReplayVerifier(transcriptOf(COMMITTED));
    const verdicts = feedAll(verifier, [replay(choice(head(0, "call_R0", "get_weather", '{"city"'))), replay(choice({}, 0, "tool_calls"))]);
    assert.deepEqual(kinds(verdicts), ["hold", "diverged"]);
  });
});

describe("ReplayVerifier: new output only once everything sent has been reproduced", () => {
  test("content before the committed reasoning is reproduced → diverged, not emitted", () => {
    // The client has reasoning "Let me think"; the replay reasons "Let me" and moves on to its answer.
    const verifier = new ReplayVerifier(transcriptOf([chunk(choice({ reasoning_content: "Let me think" }))]));
    const verdicts = feedAll(verifier, [replay(choice({ reasoning_content: "Let me" })), replay(choice({ content: "42" }))]);
    assert.deepEqual(kinds(verdicts), ["hold", "diverged"]);
  });

  test("a tool call before the committed text is reproduced → diverged, not emitted", () => {
    const verifier = new ReplayVerifier(transcriptOf([content("I will check the weather")]));
    const verdicts = feedAll(verifier, [rContent("I will check"), replay(choice(head(0, "call_R0", "get_weather", "{}")))]);
    assert.deepEqual(kinds(verdicts), ["hold", "diverged"]);
  });

  test("a new tool call before the committed call's arguments are reproduced → diverged, not emitted", () => {
    const verifier = new ReplayVerifier(transcriptOf(recorded("tools-original.sse").slice(0, 4)));
    const verdicts = feedAll(verifier, [replay(choice(head(0, "call_R0", "get_weather", '{"ci'))), replay(choice(head(1, "call_R1", "get_time", "{}")))]);
    assert.deepEqual(kinds(verdicts), ["hold", "diverged"]);
  });
});

describe("ReplayVerifier: several choices (n=2)", () => {
  const COMMITTED = [chunk(choice({ role: "assistant", content: "" }, 0), choice({ role: "assistant", content: "" }, 1)), content("Hello", 0), content("Bonj", 1)];

  test("each choice is held and trimmed on its own", () => {
    const verifier = new ReplayVerifier(transcriptOf(COMMITTED));
    const verdicts = feedAll(verifier, [
      replay(choice({ role: "assistant", content: "" }, 0), choice({ role: "assistant", content: "" }, 1)),
      rContent("Hel", 0),
      rContent("Bonjour", 1),
      rContent("lo world", 0),
      replay(choice({ content: "!" }, 1, "stop")),
      replay(choice({}, 0, "stop")),
    ]);
    assert.deepEqual(kinds(verdicts), ["hold", "hold", "emit", "emit", "emit", "emit"]);
    assert.equal(emittedText(verdicts, "content", 0), " world");
    assert.equal(emittedText(verdicts, "content", 1), "our!");
    // Each emitted chunk carries only the choice it is about.
    assert.deepEqual(choicesOf(emitted(verdicts)[0] as Json), [{ index: 1, delta: { content: "our" }, finish_reason: null }]);
  });

  test("one chunk with both choices: the held one is left out, the other emitted", () => {
    const verifier = new ReplayVerifier(transcriptOf(COMMITTED));
    const [verdict] = feedAll(verifier, [replay(choice({ content: "Hel" }, 0), choice({ content: "Bonjour" }, 1))]);
    assert.ok(verdict?.kind === "emit");
    assert.deepEqual(choicesOf(verdict.chunk), [{ index: 1, delta: { content: "our" }, finish_reason: null }]);
  });

  test("a divergence in either choice → diverged", () => {
    let verifier = new ReplayVerifier(transcriptOf(COMMITTED));
    assert.deepEqual(kinds(feedAll(verifier, [rContent("Hello", 0), rContent("Bonsoir", 1)])), ["hold", "diverged"]);
    verifier = new ReplayVerifier(transcriptOf(COMMITTED));
    assert.deepEqual(kinds(feedAll(verifier, [rContent("Hola", 0)])), ["diverged"]);
    // Choice 1 finishing short, while choice 0 is fine.
    verifier = new ReplayVerifier(transcriptOf(COMMITTED));
    assert.deepEqual(kinds(feedAll(verifier, [rContent("Hello there", 0), replay(choice({ content: "Bon" }, 1, "stop"))])), ["emit", "diverged"]);
  });

  test("a choice the client already has complete is not finished a second time", () => {
    const committed = transcriptOf([...COMMITTED, chunk(choice({}, 0, "stop"))]);
    const verifier = new ReplayVerifier(committed);
    const verdicts = feedAll(verifier, [rContent("Hello", 0), replay(choice({}, 0, "stop")), rContent("Bonjour", 1), replay(choice({}, 1, "stop"))]);
    assert.deepEqual(kinds(verdicts), ["hold", "hold", "emit", "emit"]);
    for (const c of emitted(verdicts)) for (const ch of choicesOf(c)) assert.equal(ch.index, 1, "nothing more for choice 0");
  });

  test("more text for a choice the client already has complete → diverged", () => {
    const committed = transcriptOf([...COMMITTED, chunk(choice({}, 0, "stop"))]);
    const verifier = new ReplayVerifier(committed);
    assert.deepEqual(kinds(feedAll(verifier, [rContent("Hello there", 0)])), ["diverged"]);
  });
});

describe("withAssistantPrefix", () => {
  test("appends {role: assistant, content: partial} to messages and keeps every other field", () => {
    const request = {
      model: "gpt-4o",
      stream: true,
      stream_options: { include_usage: true },
      temperature: 0.2,
      tools: [{ type: "function", function: { name: "f", parameters: { type: "object" } } }],
      messages: [
        { role: "system", content: "Be brief." },
        { role: "user", content: [{ type: "text", text: "Hi" }] },
      ],
      metadata: { nested: [1, null, "x"] },
    };
    const out = JSON.parse(withAssistantPrefix(Buffer.from(JSON.stringify(request)), 'Hello, "wör').toString("utf8")) as typeof request;
    const { messages, ...rest } = out;
    const { messages: originalMessages, ...originalRest } = request;
    assert.deepEqual(rest, originalRest);
    assert.deepEqual(messages, [...originalMessages, { role: "assistant", content: 'Hello, "wör' }]);
  });

  test("the partial is appended verbatim, even when empty or multi-line", () => {
    for (const partial of ["", "line 1\nline 2", "😀 emoji"]) {
      const out = JSON.parse(withAssistantPrefix(Buffer.from('{"model":"m","messages":[{"role":"user","content":"q"}]}'), partial).toString("utf8")) as Json;
      assert.deepEqual(out.messages, [
        { role: "user", content: "q" },
        { role: "assistant", content: partial },
      ]);
    }
  });

  test("a body without messages gets a messages list with the assistant message", () => {
    const out = JSON.parse(withAssistantPrefix(Buffer.from('{"model":"m"}'), "p").toString("utf8")) as Json;
    assert.deepEqual(out, { model: "m", messages: [{ role: "assistant", content: "p" }] });
  });
});
