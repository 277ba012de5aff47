import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { BodyDestroyedError, UpstreamBody, type BodySink } from "../../src/upstream/body.js";

const b = (text: string) => Buffer.from(text, "utf8");

/** A body with a producer that records what the body asked of it. */
function producer() {
  const calls = { resumes: 0, aborts: [] as Error[] };
  const body = new UpstreamBody({ resume: () => calls.resumes++, abort: (error) => calls.aborts.push(error) });
  return { body, calls };
}

/** A sink that records everything it is handed. */
function recorder() {
  const seen: string[] = [];
  const sink: BodySink = {
    onData: (chunk) => seen.push(chunk.toString()),
    onEnd: () => seen.push("<end>"),
    onError: (error) => seen.push(`<error ${error.message}>`),
  };
  return { sink, seen };
}

const tick = () => new Promise((resolve) => process.nextTick(resolve));

describe("UpstreamBody", () => {
  test("chunks that arrive before a reader are handed to it in order, then the end", () => {
    const { body } = producer();
    body.push(b("a"));
    body.push(b("b"));
    body.finish();
    const { sink, seen } = recorder();
    body.consume(sink);
    assert.deepEqual(seen, ["a", "b", "<end>"]);
  });

  test("with a reader attached, chunks go straight to it and the producer keeps going", () => {
    const { body } = producer();
    const { sink, seen } = recorder();
    body.consume(sink);
    assert.equal(body.push(b("a")), true);
    body.finish();
    assert.deepEqual(seen, ["a", "<end>"]);
  });

  test("pause: the producer is told to wait, and resumed (outside the chunk's callback) once the reader resumes", async () => {
    const { body, calls } = producer();
    const { sink, seen } = recorder();
    body.consume(sink);
    body.pause();
    assert.equal(body.push(b("a")), false, "a paused body asks the producer to wait");
    assert.deepEqual(seen, [], "and does not hand the chunk over while paused");
    body.resume();
    assert.deepEqual(seen, ["a"]);
    assert.equal(calls.resumes, 0, "not synchronously");
    await tick();
    assert.equal(calls.resumes, 1);
  });

  test("a reader that pauses inside onData stops the producer after that chunk", () => {
    const { body } = producer();
    body.consume({ onData: () => body.pause(), onEnd: () => undefined, onError: () => undefined });
    assert.equal(body.push(b("a")), false);
  });

  test("without a reader, at most 64 KiB wait before the producer is told to stop", () => {
    const { body } = producer();
    let accepted = 0;
    while (body.push(Buffer.alloc(1024)) && accepted < 1000) accepted++;
    assert.equal(accepted, 63);
  });

  test("destroy(): the reader gets an error, the request is aborted, later chunks are refused", () => {
    const { body, calls } = producer();
    const { sink, seen } = recorder();
    body.consume(sink);
    body.destroy();
    assert.deepEqual(seen, ["<error the upstream stream closed before its end>"]);
    assert.equal(calls.aborts.length, 1);
    assert.ok(calls.aborts[0] instanceof BodyDestroyedError);
    assert.equal(body.push(b("late")), false);
    assert.equal(body.destroyed, true);
  });

  test("destroy() after the end aborts nothing", () => {
    const { body, calls } = producer();
    body.finish();
    body.destroy();
    assert.equal(calls.aborts.length, 0);
  });

  test("a failure before any reader reaches the first reader, and is not held behind unread data", () => {
    const { body } = producer();
    body.push(b("a"));
    body.fail(new Error("reset"));
    const { sink, seen } = recorder();
    body.consume(sink);
    assert.deepEqual(seen, ["<error reset>"]);
  });

  test("release(): what arrives after it waits for the next reader", () => {
    const { body } = producer();
    const first = recorder();
    body.consume(first.sink);
    body.push(b("a"));
    body.release();
    body.push(b("b"));
    body.finish();
    const second = recorder();
    body.consume(second.sink);
    assert.deepEqual(first.seen, ["a"]);
    assert.deepEqual(second.seen, ["b", "<end>"]);
  });

  test("a reader attached paused gets nothing until it resumes", () => {
    const { body } = producer();
    body.push(b("a"));
    const { sink, seen } = recorder();
    body.consume(sink, true);
    assert.deepEqual(seen, []);
    body.resume();
    assert.deepEqual(seen, ["a"]);
  });

  test("destroy() after an end its paused reader has not had tells the reader (it is not left waiting)", () => {
    const { body, calls } = producer();
    const { sink, seen } = recorder();
    body.consume(sink);
    body.pause();
    body.push(b("a"));
    body.finish();
    assert.deepEqual(seen, [], "paused: neither the chunk nor the end delivered");
    body.destroy();
    assert.deepEqual(seen, ["<error the upstream stream closed before its end>"]);
    assert.equal(calls.aborts.length, 0, "the request had ended: nothing to abort");
    body.resume();
    body.destroy();
    assert.deepEqual(seen, ["<error the upstream stream closed before its end>"], "told once, the dropped data never comes");
  });

  test("drain(limit): a small body is read to its end (the connection stays reusable)", () => {
    const { body, calls } = producer();
    body.push(b("small error body"));
    body.drain(1024);
    body.finish();
    assert.equal(calls.aborts.length, 0);
    assert.equal(body.destroyed, true);
  });

  test("drain(limit): a body longer than the limit is cut", () => {
    const { body, calls } = producer();
    body.drain(4);
    body.push(b("0123456789"));
    assert.equal(calls.aborts.length, 1);
  });
});
