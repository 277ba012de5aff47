import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { prng } from "../helpers/prng.js";
import { readFileSync } from "node:fs";
import { ChunkShape } from "../../src/stream/chunk-shape.js";
import { SseParser } from "../../src/stream/sse.js";
import { ChatTranscript } from "../../src/stream/transcript.js";

type Json = Record<string, unknown>;

const FIXTURES = new URL("../../../test/fixtures/streams/", import.meta.url);

/** An OpenAI chunk as the API writes it (key order, `logprobs`, optional padding). */
function openai(delta: Json, options: { finish?: string | null; obfuscation?: string; index?: number } = {}): Json {
  const chunk: Json = {
    id: "chatcmpl-C1",
    object: "chat.completion.chunk",
    created: 1765000000,
    model: "gpt-4.1-2025-04-14",
    service_tier: "default",
    system_fingerprint: "fp_x",
    choices: [{ index: options.index ?? 0, delta, logprobs: null, finish_reason: options.finish ?? null }],
  };
  if (options.obfuscation !== undefined) chunk.obfuscation = options.obfuscation;
  return chunk;
}

const text = (content: string, options?: Parameters<typeof openai>[1]) => openai({ content }, options);
const args = (piece: string, call = 0) => openai({ tool_calls: [{ index: call, function: { arguments: piece } }] });

function learn(chunk: Json, data = JSON.stringify(chunk)): ChunkShape {
  const shape = ChunkShape.learn(data, chunk);
  assert.ok(shape, `a shape for ${data}`);
  return shape;
}

/** The chunk of `shape`'s template with `piece` at its target (and the parse's own padding). */
function expected(template: Json, shape: ChunkShape, piece: string, parsed: Json): Json {
  const copy = structuredClone(template);
  const delta = (copy.choices as Json[])[0]!.delta as Json;
  if (shape.target.call === undefined) delta[shape.target.field] = piece;
  else ((delta.tool_calls as Json[])[0]!.function as Json).arguments = piece;
  // The padding may be any string.
  if ("obfuscation" in template && typeof parsed.obfuscation === "string") copy.obfuscation = parsed.obfuscation;
  return copy;
}

describe("ChunkShape: learning", () => {
  test("a text chunk: the same shape with other text gives that text, escapes decoded", () => {
    const shape = learn(text("Hello"));
    assert.deepEqual(shape.target, { choice: 0, field: "content", call: undefined });
    for (const piece of [" world", "", "line\nbreak", 'a "quote"', "back\\slash", "é ü 漢字 🎉", "\u2028", "tab\there", "</script>"]) {
      assert.equal(shape.match(JSON.stringify(text(piece))), piece);
    }
    // Escapes the upstream chose itself (\u00e9 and \/ where JSON.stringify writes é and /).
    const data = JSON.stringify(text("X")).replace('"X"', '"caf\\u00e9 \\/ \\ud83c\\udf89"');
    assert.equal(shape.match(data), "café / 🎉");
  });

  test("a reasoning field, a refusal, a choice other than 0", () => {
    assert.deepEqual(learn(openai({ reasoning_content: "Let me think", content: null })).target, { choice: 0, field: "reasoning_content", call: undefined });
    assert.deepEqual(learn(openai({ refusal: "I can't" })).target, { choice: 0, field: "refusal", call: undefined });
    const shape = learn(text("b", { index: 1 }));
    assert.deepEqual(shape.target, { choice: 1, field: "content", call: undefined });
    assert.equal(shape.match(JSON.stringify(text("c", { index: 1 }))), "c");
    assert.equal(shape.match(JSON.stringify(text("c", { index: 0 }))), undefined);
  });

  test("tool call arguments; a call's head (its name) has no shape", () => {
    const shape = learn(args('{"ci'));
    assert.deepEqual(shape.target, { choice: 0, field: "arguments", call: 0 });
    assert.equal(shape.match(JSON.stringify(args('ty": "Par'))), 'ty": "Par');
    assert.equal(shape.match(JSON.stringify(args("x", 1))), undefined);
    const head = openai({ tool_calls: [{ index: 0, id: "call_1", type: "function", function: { name: "get_weather", arguments: "" } }] });
    assert.equal(ChunkShape.learn(JSON.stringify(head), head), undefined);
    assert.equal(ChunkShape.textOnly(head), false);
    // Nor a chunk that repeats the call's id: apply sets it from every chunk, append would not.
    const withId = openai({ tool_calls: [{ index: 0, id: "call_1", function: { arguments: "x" } }] });
    assert.equal(ChunkShape.learn(JSON.stringify(withId), withId), undefined);
  });

  test("OpenAI's obfuscation padding varies with every chunk and is matched too", () => {
    const shape = learn(text("Hi", { obfuscation: "k8Y" }));
    assert.equal(shape.match(JSON.stringify(text(" there", { obfuscation: "Zq01bX" }))), " there");
    assert.equal(shape.match(JSON.stringify(text(" there", { obfuscation: "" }))), " there");
    assert.equal(shape.match(JSON.stringify(text('"},"obfuscation":"', { obfuscation: 'a\\"},"obfuscation":"' }))), '"},"obfuscation":"');
    // Without the padding field it is another shape.
    assert.equal(shape.match(JSON.stringify(text(" there"))), undefined);
  });

  test("whitespace and key order as the upstream writes them", () => {
    const chunk = text("a");
    const data = JSON.stringify(chunk, null, 1);
    const shape = learn(chunk, data);
    assert.equal(shape.match(JSON.stringify(text("zz"), null, 1)), "zz");
    assert.equal(shape.match(JSON.stringify(text("zz"))), undefined);
  });

  test("no shape for a chunk that is more than text", () => {
    const none = (chunk: Json, data = JSON.stringify(chunk)) => assert.equal(ChunkShape.learn(data, chunk), undefined, data);
    none(text("done", { finish: "stop" }));
    none({ ...text("a"), error: { message: "x" } });
    none({ ...text("a"), choices: [...(text("a").choices as Json[]), ...(text("b", { index: 1 }).choices as Json[])] });
    none({ ...text("a"), choices: [] });
    none(openai({}));
    none(openai({ content: "a", reasoning_content: "b" }));
    none(openai({ content: "a", tool_calls: [{ index: 0, function: { arguments: "{" } }] }));
    none(openai({ content: 1 }));
    // Padding found before the text, or not as a string the chunk has: not a shape this knows.
    const early = { obfuscation: "p", ...text("a") };
    none(early);
    // A duplicate key: the parse keeps the last one, not the first, where the text is found.
    const dup = JSON.stringify(text("a")).replace('"content":"a"', '"content":"a","content":"a"');
    none(JSON.parse(dup) as Json, dup);
    // The same with the probe's own strings as the text (a single probe would find its string there and pass).
    for (const probe of ["gateway-probe-text-1", "gateway-probe-text-2"]) {
      const twice = JSON.stringify(text(probe)).replace(`"content":"${probe}"`, `"content":"${probe}","content":"${probe}"`);
      none(JSON.parse(twice) as Json, twice);
    }
    // A long chunk: its shape would hold on to all of it.
    none(text("x".repeat(5000)));
  });

  test("a chunk of another shape does not match", () => {
    const shape = learn(text("Hello"));
    const miss = (data: string) => assert.equal(shape.match(data), undefined, data);
    miss(JSON.stringify(text("x", { finish: "stop" })));
    miss(JSON.stringify({ ...text("x"), id: "chatcmpl-C2" }));
    miss(JSON.stringify({ ...text("x"), usage: null }));
    miss(JSON.stringify(text("x")).slice(0, -1));
    miss("");
    miss("[DONE]");
    // Not JSON at all, though it begins and ends like the shape.
    const data = JSON.stringify(text("x"));
    const [before, after] = data.split('"x"') as [string, string];
    miss(`${before}"a"b"${after}`);
    miss(`${before}"a\\"${after}`);
    miss(`${before}"a\u0001"${after}`);
    miss(`${before}"\\q"${after}`);
    miss(`${before}"\\u12"${after}`);
    miss(`${before}"a","content":"b"${after}`);
  });
});

describe("ChunkShape: fuzz against JSON.parse", () => {
  const templates: Json[] = [text("Hello"), text("Hi", { obfuscation: "k8Y" }), args('{"a'), openai({ reasoning_content: "hm", content: null })];
  const alphabet = ['"', "\\", "{", "}", "[", "]", ",", ":", " ", "a", "n", "u", "0", "\n", "\u0001", "é", "/", "t"];

  test("whatever a mutated chunk holds, a match means JSON.parse reads the same chunk with that text", () => {
    const random = prng(20261207);
    let matched = 0;
    let tried = 0;
    for (const template of templates) {
      const data = JSON.stringify(template);
      const shape = learn(template, data);
      const hole = data.indexOf(JSON.stringify(shape.target.call === undefined ? ((template.choices as Json[])[0]!.delta as Json)[shape.target.field] : "{\"a"));
      for (let round = 0; round < 4000; round++) {
        let mutated = data;
        const edits = 1 + Math.floor(random() * 3);
        for (let e = 0; e < edits; e++) {
          // Mostly near the text, where a mutation can still match; sometimes anywhere.
          const at = random() < 0.8 ? Math.max(0, hole - 3 + Math.floor(random() * 12)) : Math.floor(random() * mutated.length);
          const char = alphabet[Math.floor(random() * alphabet.length)] as string;
          const op = random();
          mutated = op < 0.5 ? mutated.slice(0, at) + char + mutated.slice(at) : op < 0.8 ? mutated.slice(0, at) + char + mutated.slice(at + 1) : mutated.slice(0, at) + mutated.slice(at + 1);
        }
        tried++;
        const piece = shape.match(mutated);
        if (piece === undefined) continue;
        matched++;
        let parsed: Json;
        assert.doesNotThrow(() => (parsed = JSON.parse(mutated) as Json), mutated);
        assert.deepEqual(parsed!, expected(template, shape, piece, parsed!), mutated);
      }
    }
    // The fuzz must exercise matches, not only misses.
    assert.ok(matched > tried / 20, `${matched} of ${tried} matched`);
  });

  test("every chunk of the shape matches, whatever its text", () => {
    const random = prng(7);
    const chars = ["a", " ", "\n", '"', "\\", "\u0000", "\u001f", "é", "漢", "🎉", "\u2028", "/", "<", "\t", "\ud800"];
    for (const template of templates) {
      const shape = learn(template);
      for (let round = 0; round < 500; round++) {
        let piece = "";
        // Up to 24: a slice of 13 or more is a view in V8, which the copy must not be.
        const length = Math.floor(random() * 24);
        for (let i = 0; i < length; i++) piece += chars[Math.floor(random() * chars.length)];
        const chunk = structuredClone(template);
        const delta = (chunk.choices as Json[])[0]!.delta as Json;
        if (shape.target.call === undefined) delta[shape.target.field] = piece;
        else ((delta.tool_calls as Json[])[0]!.function as Json).arguments = piece;
        if ("obfuscation" in chunk) chunk.obfuscation = piece.slice(0, 3);
        assert.equal(shape.match(JSON.stringify(chunk)), piece, JSON.stringify(chunk));
      }
    }
  });
});

describe("ChatTranscript.append: the relay's fast path says what apply says", () => {
  /** The relay's loop: a chunk of the known shape is appended, any other applied (and a shape learned from it). */
  function relayed(chunks: readonly string[]): { transcript: ChatTranscript; fast: number } {
    const transcript = new ChatTranscript();
    let shape: ChunkShape | undefined;
    let fast = 0;
    let learning = 4;
    for (const data of chunks) {
      const piece = shape?.match(data);
      if (shape && piece !== undefined) {
        transcript.append(shape.target.choice, shape.target.field, shape.target.call, piece);
        fast++;
        continue;
      }
      const chunk = JSON.parse(data) as Json;
      transcript.apply(chunk);
      if (learning > 0 && ChunkShape.textOnly(chunk)) {
        learning--;
        shape = ChunkShape.learn(data, chunk) ?? shape;
      }
    }
    return { transcript, fast };
  }

  const applied = (chunks: readonly string[]) => {
    const transcript = new ChatTranscript();
    for (const data of chunks) transcript.apply(JSON.parse(data) as Json);
    return transcript;
  };

  // tools-replay.sse has no two successive chunks of one shape (each call's arguments come in one chunk).
  for (const [name, someFast] of [["text-original.sse", true], ["tools-original.sse", true], ["text-replay-rechunked.sse", true], ["tools-replay.sse", false]] as const) {
    test(`recorded stream ${name}`, () => {
      const parser = new SseParser();
      const events = [...parser.push(readFileSync(new URL(name, FIXTURES))), ...parser.end()];
      const chunks = events.flatMap((e) => (e.data === undefined || e.data.trim() === "[DONE]" ? [] : [e.data]));
      const { transcript, fast } = relayed(chunks);
      assert.deepEqual(transcript, applied(chunks));
      assert.equal(fast > 0, someFast, `${fast} chunks took the fast path`);
    });
  }

  test("empty pieces add nothing (an empty text is no text: no prefill refused for it)", () => {
    const chunks = [openai({ role: "assistant", content: "" }), openai({ reasoning_content: "" }), openai({ reasoning_content: "" }), text(""), text(""), text("a"), text("")].map((chunk) =>
      JSON.stringify(chunk),
    );
    const { transcript, fast } = relayed(chunks);
    assert.deepEqual(transcript, applied(chunks));
    assert.deepEqual(transcript.plainText(), { text: "a", onlyText: true });
    assert.ok(fast >= 3, `${fast} fast`);
  });

  test("text, then reasoning, then tool calls, with padding", () => {
    const chunks = [
      openai({ role: "assistant", content: "" }),
      openai({ reasoning_content: "think", content: null }, { obfuscation: "a" }),
      openai({ reasoning_content: " more", content: null }, { obfuscation: "bcd" }),
      text("Answer", { obfuscation: "x" }),
      text(": yes", { obfuscation: "yz" }),
      openai({ tool_calls: [{ index: 0, id: "call_1", type: "function", function: { name: "f", arguments: "" } }] }),
      args('{"q":'),
      args('"v"}'),
      openai({ tool_calls: [{ index: 1, id: "call_2", type: "function", function: { name: "g", arguments: "" } }] }),
      args("{}", 1),
      args("", 1),
      openai({}, { finish: "tool_calls" }),
    ].map((chunk) => JSON.stringify(chunk));
    const { transcript, fast } = relayed(chunks);
    assert.deepEqual(transcript, applied(chunks));
    assert.equal(transcript.finished(), true);
    assert.ok(fast >= 3, `${fast} fast`);
  });
});
