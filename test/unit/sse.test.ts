import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { SseParser, type SseEvent } from "../../src/stream/sse.js";

const b = (text: string) => Buffer.from(text, "utf8");

/** An event as a plain value, raw bytes as hex so a mismatch shows exactly which byte differs. */
interface Plain {
  event: string | undefined;
  data: string | undefined;
  raw: string;
}
const plain = (events: SseEvent[]): Plain[] => events.map((e) => ({ event: e.event, data: e.data, raw: e.raw.toString("hex") }));
const expect = (raw: string, data: string | undefined, event?: string): Plain => ({ event, data, raw: b(raw).toString("hex") });

/** Feeds `chunks` one by one, then end(); every event, in order. */
function parseChunks(chunks: Buffer[]): SseEvent[] {
  const parser = new SseParser();
  const events: SseEvent[] = [];
  for (const chunk of chunks) events.push(...parser.push(chunk));
  events.push(...parser.end());
  return events;
}

/**
 * A stream that mixes every line ending (LF, CRLF, CR, and mixed pairs), comments,
 * pings, `event:`, multi-line data, `data:` without the space, fields with no
 * colon, ignored fields and multi-byte UTF-8, with the event each block must give.
 */
const BLOCKS: { raw: string; data: string | undefined; event?: string }[] = [
  { raw: ": hello comment\n\n", data: undefined },
  { raw: 'event: message\ndata: {"a":1}\n\n', data: '{"a":1}', event: "message" },
  { raw: "data: line1\r\ndata: line2\r\n\r\n", data: "line1\nline2" },
  { raw: "data:nospace\r\r", data: "nospace" },
  { raw: "data: é漢😀\n\r\n", data: "é漢😀" },
  { raw: ": ping\r\n\r\n", data: undefined },
  { raw: "id: 7\nretry: 10\ndata: y\r\n\n", data: "y" },
  { raw: "data\r\n\r\n", data: "" },
  { raw: "data: a\rdata:  two spaces\r\n\r", data: "a\n two spaces" },
  { raw: "data: [DONE]\n\n", data: "[DONE]" },
];
const STREAM = b(BLOCKS.map((block) => block.raw).join(""));
const EXPECTED: Plain[] = BLOCKS.map((block) => expect(block.raw, block.data, block.event));

describe("SseParser: fields", () => {
  test("LF, CRLF and CR line endings each end an event", () => {
    assert.deepEqual(plain(new SseParser().push(b("data: x\n\n"))), [expect("data: x\n\n", "x")]);
    assert.deepEqual(plain(new SseParser().push(b("data: x\r\n\r\n"))), [expect("data: x\r\n\r\n", "x")]);
    // A final CR may still be the start of CRLF: the event completes once the next byte shows it is not.
    const cr = new SseParser();
    assert.deepEqual(plain(cr.push(b("data: x\r\r"))), []);
    assert.deepEqual(plain(cr.push(b("data: y\r\r"))), [expect("data: x\r\r", "x")]);
    assert.deepEqual(plain(cr.end()), [expect("data: y\r\r", "y")]);
  });

  test("mixed line endings inside one event and between events", () => {
    const events = new SseParser().push(b("data: a\r\ndata: b\rdata: c\n\r\ndata: d\r\n\ndata: e\n\r\r"));
    // "\n\r\r": the lone CR after LF is the blank line; the last CR is a stray blank line of its own.
    assert.deepEqual(plain(events), [expect("data: a\r\ndata: b\rdata: c\n\r\n", "a\nb\nc"), expect("data: d\r\n\n", "d"), expect("data: e\n\r", "e")]);
  });

  test("the whole mixed stream in one push", () => {
    const parser = new SseParser();
    const events = [...parser.push(STREAM), ...parser.end()];
    assert.deepEqual(plain(events), EXPECTED);
  });

  test("multiple data lines are joined with \\n; a blank data line counts", () => {
    assert.deepEqual(plain(new SseParser().push(b("data: 1\ndata:\ndata: 3\n\n"))), [expect("data: 1\ndata:\ndata: 3\n\n", "1\n\n3")]);
  });

  test("event: field; the last one wins; events without it have event undefined", () => {
    const events = new SseParser().push(b("event: a\nevent: b\ndata: x\n\ndata: y\n\nevent:error\n\n"));
    assert.deepEqual(
      events.map((e) => [e.event, e.data]),
      [
        ["b", "x"],
        [undefined, "y"],
        ["error", undefined],
      ],
    );
  });

  test("comments and pings are events with no data, and keep their raw bytes", () => {
    const events = new SseParser().push(b(": keep-alive\n\n: OPENROUTER PROCESSING\r\n\r\nevent: ping\n\n:\n\n"));
    assert.deepEqual(plain(events), [
      expect(": keep-alive\n\n", undefined),
      expect(": OPENROUTER PROCESSING\r\n\r\n", undefined),
      expect("event: ping\n\n", undefined, "ping"),
      expect(":\n\n", undefined),
    ]);
  });

  test("a comment line inside an event is skipped, the data kept", () => {
    assert.deepEqual(plain(new SseParser().push(b("data: a\n: note\ndata: b\n\n"))), [expect("data: a\n: note\ndata: b\n\n", "a\nb")]);
  });

  test("data: with and without the space; only one space is removed", () => {
    const events = new SseParser().push(b("data: x\n\ndata:x\n\ndata:  x\n\ndata: \n\n"));
    assert.deepEqual(
      events.map((e) => e.data),
      ["x", "x", " x", ""],
    );
  });

  test("a field with no colon is that field with an empty value", () => {
    const events = new SseParser().push(b("data\n\nevent\ndata: z\n\nunknown\n\n"));
    assert.deepEqual(
      events.map((e) => [e.event, e.data]),
      [
        [undefined, ""],
        ["", "z"],
        [undefined, undefined],
      ],
    );
  });

  test("a colon inside the value is kept", () => {
    assert.equal(new SseParser().push(b('data: {"url":"http://x"}\n\n'))[0]?.data, '{"url":"http://x"}');
  });
});

describe("SseParser: raw bytes", () => {
  test("each raw is exactly the event's input bytes; all raws + the unterminated tail reproduce the input", () => {
    const tail = "data: unterminated";
    const input = Buffer.concat([STREAM, b(tail)]);
    const parser = new SseParser();
    const events = parser.push(input);
    assert.deepEqual(plain(events), EXPECTED);
    const last = parser.end();
    assert.deepEqual(plain(last), [expect(tail, "unterminated")]);
    assert.ok(Buffer.concat([...events, ...last].map((e) => e.raw)).equals(input));
  });

  test("raws are exact when fed byte by byte", () => {
    const events = parseChunks([...STREAM].map((byte) => Buffer.from([byte])));
    assert.deepEqual(plain(events), EXPECTED);
    assert.ok(Buffer.concat(events.map((e) => e.raw)).equals(STREAM));
  });

  test("an event's raw bytes are its own, not a view that changes when later chunks arrive", () => {
    const parser = new SseParser();
    const [first] = parser.push(b("data: 1\n\ndata: 2"));
    assert.ok(first);
    const before = first.raw.toString("hex");
    parser.push(b("\n\ndata: 3\n\n"));
    assert.equal(first.raw.toString("hex"), before);
  });
});

describe("SseParser: chunk boundaries", () => {
  test("split into two chunks at every byte position", () => {
    for (let i = 0; i <= STREAM.length; i++) {
      const events = parseChunks([STREAM.subarray(0, i), STREAM.subarray(i)]);
      assert.deepEqual(plain(events), EXPECTED, `split at ${i}: ${JSON.stringify(STREAM.subarray(Math.max(0, i - 4), i).toString("latin1"))} | ${JSON.stringify(STREAM.subarray(i, i + 4).toString("latin1"))}`);
    }
  });

  test("split into three chunks at every pair of positions (bounded)", () => {
    // The stream is ~170 bytes: ~15,000 splits.
    for (let i = 0; i <= STREAM.length; i++) {
      for (let j = i; j <= STREAM.length; j++) {
        const events = parseChunks([STREAM.subarray(0, i), STREAM.subarray(i, j), STREAM.subarray(j)]);
        assert.deepEqual(plain(events), EXPECTED, `split at ${i}, ${j}`);
      }
    }
  });

  test("a boundary split between chunks: \\n | \\n", () => {
    const parser = new SseParser();
    assert.deepEqual(parser.push(b("data: a\n")), []);
    assert.deepEqual(plain(parser.push(b("\ndata: b\n"))), [expect("data: a\n\n", "a")]);
    assert.deepEqual(plain(parser.push(b("\n"))), [expect("data: b\n\n", "b")]);
    assert.deepEqual(parser.end(), []);
  });

  test("a boundary split between chunks: \\r | \\n\\r\\n", () => {
    const parser = new SseParser();
    assert.deepEqual(parser.push(b("data: a\r")), []);
    assert.deepEqual(plain(parser.push(b("\n\r\n"))), [expect("data: a\r\n\r\n", "a")]);
    assert.deepEqual(parser.end(), []);
  });

  test("a boundary split between chunks: \\r\\n | \\r\\n", () => {
    const parser = new SseParser();
    assert.deepEqual(parser.push(b("data: a\r\n")), []);
    assert.deepEqual(plain(parser.push(b("\r\n"))), [expect("data: a\r\n\r\n", "a")]);
  });

  test("a boundary split between chunks: \\r\\n\\r | \\n", () => {
    const parser = new SseParser();
    assert.deepEqual(parser.push(b("data: a\r\n\r")), []);
    assert.deepEqual(plain(parser.push(b("\n"))), [expect("data: a\r\n\r\n", "a")]);
    assert.deepEqual(plain(parser.push(b("data: b\r\n\r\n"))), [expect("data: b\r\n\r\n", "b")]);
  });

  test("a boundary split between chunks: \\n\\r | \\n", () => {
    const parser = new SseParser();
    assert.deepEqual(parser.push(b("data: a\n\r")), []);
    assert.deepEqual(plain(parser.push(b("\n"))), [expect("data: a\n\r\n", "a")]);
  });

  test("a boundary split between chunks: \\r\\r | next event", () => {
    const parser = new SseParser();
    assert.deepEqual(parser.push(b("data: a\r\r")), []);
    assert.deepEqual(plain(parser.push(b("data: b\r\r"))), [expect("data: a\r\r", "a")]);
    assert.deepEqual(plain(parser.end()), [expect("data: b\r\r", "b")]);
  });

  test("UTF-8 multi-byte characters split across chunks decode correctly", () => {
    const text = "é漢😀👩‍💻";
    const input = b(`data: ${text}\n\n`);
    for (let i = 0; i <= input.length; i++) {
      for (let j = i; j <= input.length; j++) {
        const events = parseChunks([input.subarray(0, i), input.subarray(i, j), input.subarray(j)]);
        assert.equal(events.length, 1);
        assert.equal(events[0]?.data, text, `split at ${i}, ${j}`);
        assert.ok(events[0]?.raw.equals(input));
      }
    }
  });
});

describe("SseParser: end()", () => {
  test("flushes an unterminated last event", () => {
    for (const tail of ["data: x", "data: x\n", "data: x\r\n", "data: x\r", "data: x\n\r"]) {
      const parser = new SseParser();
      assert.deepEqual(parser.push(b(tail)), [], JSON.stringify(tail));
      assert.deepEqual(plain(parser.end()), [expect(tail, "x")], JSON.stringify(tail));
    }
  });

  test("a partial event after complete ones is flushed alone", () => {
    const parser = new SseParser();
    assert.equal(parser.push(b("data: 1\n\ndata: 2\n\ndata: 3")).length, 2);
    assert.deepEqual(plain(parser.end()), [expect("data: 3", "3")]);
  });

  test("returns nothing for an empty stream, a trailing blank, or after complete events", () => {
    assert.deepEqual(new SseParser().end(), []);
    for (const trailing of ["\n", "\r\n", "\r"]) {
      const parser = new SseParser();
      assert.equal(parser.push(b(`data: 1\n\n${trailing}`)).length, 1, JSON.stringify(trailing));
      assert.deepEqual(parser.end(), [], JSON.stringify(trailing));
    }
    const parser = new SseParser();
    parser.push(b("data: 1\n\n"));
    assert.deepEqual(parser.end(), []);
  });

  test("end() resets: a second end() returns nothing", () => {
    const parser = new SseParser();
    parser.push(b("data: 1"));
    assert.equal(parser.end().length, 1);
    assert.deepEqual(parser.end(), []);
  });
});

describe("SseParser: keeps only the unfinished tail", () => {
  test("10,000 events pushed one by one: each push returns exactly that event, nothing is left over", () => {
    const parser = new SseParser();
    for (let n = 0; n < 10_000; n++) {
      const raw = b(`data: {"n":${n}}\n\n`);
      const events = parser.push(raw);
      assert.equal(events.length, 1, `push ${n}`);
      assert.equal(events[0]?.data, `{"n":${n}}`);
      assert.ok(events[0]?.raw.equals(raw), `raw of ${n} is only its own bytes`);
    }
    assert.deepEqual(parser.end(), []);
  });

  test("events straddling chunks: each raw holds only its own bytes, never earlier events", () => {
    const parser = new SseParser();
    const seen: SseEvent[] = [];
    // Every chunk completes the previous event and starts the next one.
    seen.push(...parser.push(b("data: 0")));
    for (let n = 1; n < 2_000; n++) seen.push(...parser.push(b(`\n\ndata: ${n}`)));
    seen.push(...parser.end());
    assert.equal(seen.length, 2_000);
    seen.forEach((event, n) => {
      assert.equal(event.data, String(n));
      assert.equal(event.raw.toString(), n === 1_999 ? `data: ${n}` : `data: ${n}\n\n`);
    });
  });

  test("a long event trickled in small chunks completes once, with all its bytes", () => {
    const parser = new SseParser();
    const payload = "x".repeat(20_000);
    const input = b(`data: ${payload}\n\n`);
    let events: SseEvent[] = [];
    for (let i = 0; i < input.length; i += 7) {
      const out = parser.push(input.subarray(i, i + 7));
      if (i + 7 < input.length) assert.equal(out.length, 0);
      events = events.concat(out);
    }
    assert.equal(events.length, 1);
    assert.equal(events[0]?.data, payload);
    assert.ok(events[0]?.raw.equals(input));
  });
});
