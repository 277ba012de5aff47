import { afterEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import type { ServerResponse } from "node:http";
import { clientWriter } from "../../src/proxy/respond.js";
import { UpstreamBody } from "../../src/upstream/body.js";
import { EventReader } from "../../src/stream/reader.js";

/** The part of a ServerResponse the writer uses, with a client that reads nothing: its buffer only fills. */
class StalledResponse extends EventEmitter {
  readonly writes: Buffer[] = [];
  buffered = 0;
  destroyed = false;
  writableEnded = false;
  constructor(readonly writableHighWaterMark: number) {
    super();
  }
  get writableLength(): number {
    return this.buffered;
  }
  get writableNeedDrain(): boolean {
    return this.buffered >= this.writableHighWaterMark;
  }
  write(data: Buffer | string): boolean {
    const bytes = Buffer.from(data);
    this.writes.push(bytes);
    this.buffered += bytes.length;
    return this.buffered < this.writableHighWaterMark;
  }
  end(data?: Buffer | string): void {
    if (data) this.write(data);
    this.writableEnded = true;
  }
  /** The client read everything. */
  drain(): void {
    this.buffered = 0;
    this.emit("drain");
  }
}

const event = (i: number) => Buffer.from(`data: {"i":${i},"pad":"${"y".repeat(1000)}"}\n\n`);
const tick = () => new Promise((resolve) => setImmediate(resolve));

/** Every body a test opened, destroyed after it (pass or fail) so that no pump's idle timer outlives it. */
const opened: UpstreamBody[] = [];
afterEach(() => {
  for (const body of opened.splice(0)) body.destroy();
});

function relay(highWaterMark: number) {
  let upstreamStalled = false;
  const body = new UpstreamBody({ resume: () => (upstreamStalled = false), abort: () => undefined });
  opened.push(body);
  const reader = new EventReader(body);
  const res = new StalledResponse(highWaterMark);
  const writer = clientWriter(res as unknown as ServerResponse, () => reader);
  void reader.pump((e) => {
    writer.send(e.raw);
    return true;
  }, 60_000, performance.now());
  /** One socket read of `count` events, as undici hands them over: it stops when the body says so. */
  const read = (from: number, count: number) => {
    let pushed = 0;
    while (pushed < count && !upstreamStalled) {
      pushed++;
      if (!body.push(event(from + pushed - 1))) upstreamStalled = true;
    }
    return pushed;
  };
  return { res, writer, read, stalled: () => upstreamStalled };
}

describe("clientWriter: batched sends", () => {
  test("the events of one read reach the client as one write, in order", async () => {
    const { res, read } = relay(1 << 20);
    read(0, 10);
    await tick();
    assert.equal(res.writes.length, 1);
    assert.equal(Buffer.concat(res.writes).toString(), Array.from({ length: 10 }, (_, i) => event(i).toString()).join(""));
  });

  test("a client that stops reading holds the upstream within the read that filled its buffer, not after it", async () => {
    const { res, read, stalled } = relay(16 * 1024);
    await tick();
    const pushed = read(0, 64);
    await tick();
    // The upstream is held at the event that fills the 16 KB, as when every event was its own write.
    const filling = Math.ceil((16 * 1024) / event(0).length);
    assert.equal(pushed, filling);
    assert.equal(stalled(), true);
    assert.ok(res.buffered < 18 * 1024, `${res.buffered} bytes buffered for the client`);
    // The client drains: the upstream resumes once and the rest flows, nothing lost or reordered.
    res.drain();
    await tick(); // the producer is resumed on the next tick, never from inside a chunk's callback
    assert.equal(stalled(), false);
    read(filling, 5);
    await tick();
    const text = Buffer.concat(res.writes).toString();
    assert.equal(text, Array.from({ length: filling + 5 }, (_, i) => event(i).toString()).join(""));
  });

  test("end() writes what is pending before the end; nothing is written after it", async () => {
    const { res, writer, read } = relay(1 << 20);
    read(0, 3);
    writer.end(Buffer.from("data: [DONE]\n\n"));
    assert.equal(res.writableEnded, true);
    const text = Buffer.concat(res.writes).toString();
    assert.ok(text.endsWith("data: [DONE]\n\n"));
    assert.equal(text, `${event(0)}${event(1)}${event(2)}data: [DONE]\n\n`);
    read(3, 1);
    await tick();
    assert.equal(Buffer.concat(res.writes).toString(), text);
  });
});
