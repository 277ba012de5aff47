import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { FakeUpstream } from "../helpers/fake-body.js";
import { EventReader, StreamTimeoutError } from "../../src/stream/reader.js";

const b = (text: string) => Buffer.from(text, "utf8");

/** Resolves with the outcome of `promise`, or "pending" if it has not settled within `ms`. */
async function settleWithin<T>(promise: Promise<T>, ms: number): Promise<{ value: T } | { error: unknown } | "pending"> {
  let timer: NodeJS.Timeout | undefined;
  const guard = new Promise<"pending">((resolve) => {
    timer = setTimeout(() => resolve("pending"), ms);
  });
  try {
    return await Promise.race([promise.then((value) => ({ value }), (error: unknown) => ({ error })), guard]);
  } finally {
    clearTimeout(timer);
  }
}

describe("EventReader: events", () => {
  test("next() returns events in order, then null at the end", async () => {
    const body = new FakeUpstream();
    const reader = new EventReader(body.body, { record: true });
    body.write(b("data: 1\n\n: ping\n\n"));
    body.write(b("event: x\ndata: 2\n\ndata: 3\n"));
    body.end(b("\n"));
    const seen: (string | undefined)[] = [];
    for (let event = await reader.next(1000); event !== null; event = await reader.next(1000)) seen.push(`${event.event ?? ""}|${event.data ?? "<none>"}`);
    assert.deepEqual(seen, ["|1", "|<none>", "x|2", "|3"]);
    assert.equal(await reader.next(1000), null, "null again after the end");
  });

  test("an unterminated last event is delivered at the end", async () => {
    const body = new FakeUpstream();
    const reader = new EventReader(body.body, { record: true });
    body.end(b("data: 1\n\ndata: tail"));
    assert.equal((await reader.next(1000))?.data, "1");
    const last = await reader.next(1000);
    assert.equal(last?.data, "tail");
    assert.equal(last?.raw.toString(), "data: tail");
    assert.equal(await reader.next(1000), null);
  });

  test("events written after next() was called are delivered (next waits for them)", async () => {
    const body = new FakeUpstream();
    const reader = new EventReader(body.body, { record: true });
    const pending = reader.next(1000);
    setImmediate(() => body.write(b("data: later\n\n")));
    assert.equal((await pending)?.data, "later");
  });

  test("events split across chunks, the body ended before the first next()", async () => {
    const body = new FakeUpstream();
    const reader = new EventReader(body.body);
    body.write(b("data: a\n"));
    body.end(b("\ndata: b\n\n"));
    assert.equal((await reader.next(1000))?.data, "a");
    assert.equal((await reader.next(1000))?.data, "b");
    assert.equal(await reader.next(1000), null);
  });

  test("an empty body ends with null", async () => {
    const body = new FakeUpstream();
    const reader = new EventReader(body.body, { record: true });
    body.end();
    assert.equal(await reader.next(1000), null);
  });
});

describe("EventReader: errors", () => {
  test("a body error rejects a pending next()", async () => {
    const body = new FakeUpstream();
    const reader = new EventReader(body.body, { record: true });
    const pending = reader.next(1000);
    setImmediate(() => body.destroy(new Error("socket hang up")));
    await assert.rejects(pending, /socket hang up/);
  });

  test("a body error after some events rejects the next next()", async () => {
    const body = new FakeUpstream();
    const reader = new EventReader(body.body, { record: true });
    body.write(b("data: 1\n\n"));
    assert.equal((await reader.next(1000))?.data, "1");
    body.destroy(new Error("cut"));
    await assert.rejects(reader.next(1000), /cut/);
    await assert.rejects(reader.next(1000), /cut/, "and keeps rejecting");
  });

  test("a body error while next() has no timeout still rejects", async () => {
    const body = new FakeUpstream();
    const reader = new EventReader(body.body, { record: true });
    const pending = reader.next(undefined);
    body.write(b("data: {\"partial"));
    setTimeout(() => body.destroy(new Error("reset")), 5);
    await assert.rejects(pending, /reset/);
  });
});

describe("EventReader: timeouts act on events, not bytes", () => {
  test("first_token: bytes of a partial event trickle in, no event completes → StreamTimeoutError", async () => {
    const body = new FakeUpstream();
    const reader = new EventReader(body.body, { record: true });
    const trickle = setInterval(() => body.write(b('data: {"choices":[{"delta":{"content":"x')), 10);
    const started = Date.now();
    try {
      await assert.rejects(reader.next(50, "first_token"), (error: unknown) => {
        assert.ok(error instanceof StreamTimeoutError);
        assert.equal(error.what, "first_token");
        assert.equal(error.name, "TimeoutError");
        assert.match(error.message, /50 ms/);
        return true;
      });
    } finally {
      clearInterval(trickle);
    }
    const elapsed = Date.now() - started;
    assert.ok(elapsed >= 45, `not before the timeout (${elapsed} ms)`);
    assert.ok(elapsed < 1000, `promptly after it (${elapsed} ms)`);
    assert.ok(reader.held.length >= 2, "bytes did arrive while waiting");
  });

  test("idle (the default): after an event, a trickle without a complete event times out", async () => {
    const body = new FakeUpstream();
    const reader = new EventReader(body.body, { record: true });
    body.write(b("data: 1\n\n"));
    assert.equal((await reader.next(1000))?.data, "1");
    const trickle = setInterval(() => body.write(b("data: more")), 10);
    try {
      await assert.rejects(reader.next(50), (error: unknown) => error instanceof StreamTimeoutError && error.what === "idle" && /silent for 50 ms/.test(error.message));
    } finally {
      clearInterval(trickle);
    }
  });

  test("a silent body times out too", async () => {
    const reader = new EventReader(new FakeUpstream().body);
    await assert.rejects(reader.next(30, "first_token"), (error: unknown) => error instanceof StreamTimeoutError && error.what === "first_token");
  });

  test("bytes read before a timeout are not lost: the event completes on a later next()", async () => {
    const body = new FakeUpstream();
    const reader = new EventReader(body.body, { record: true });
    body.write(b("data: hel"));
    await assert.rejects(reader.next(30), StreamTimeoutError);
    body.write(b("lo\n\n"));
    const event = await reader.next(1000);
    assert.equal(event?.data, "hello");
    assert.equal(event?.raw.toString(), "data: hello\n\n");
  });

  test("an event that comes before the timeout is returned, and the next call gets its own full timeout", async () => {
    const body = new FakeUpstream();
    const reader = new EventReader(body.body, { record: true });
    setTimeout(() => body.write(b("data: ok\n\n")), 5);
    assert.equal((await reader.next(200, "first_token"))?.data, "ok");
    setTimeout(() => body.write(b("data: two\n\n")), 40);
    assert.equal((await reader.next(200))?.data, "two");
  });
});

describe("EventReader: backpressure", () => {
  test("the body is paused before the first next(), and nothing is read", async () => {
    const body = new FakeUpstream();
    const reader = new EventReader(body.body, { record: true });
    body.write(b("data: 1\n\n"));
    await new Promise((resolve) => setImmediate(resolve));
    assert.ok(body.isPaused());
    assert.equal(reader.held.length, 0, "no byte read before it is asked for");
  });

  test("read-ahead is bounded: the body is paused once 32 events are queued", async () => {
    const body = new FakeUpstream();
    const reader = new EventReader(body.body, { record: true });
    for (let i = 0; i < 100; i++) body.write(b(`data: ${i}\n\n`));
    assert.equal((await reader.next(1000))?.data, "0");
    for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve));
    assert.ok(body.isPaused(), "paused with a backlog");
    assert.ok(reader.held.length <= 34, `read ahead ${reader.held.length} chunks`);
    assert.ok(body.readableLength > 0, "the rest waits in the body");
    // Every event still arrives, in order.
    for (let i = 1; i < 100; i++) assert.equal((await reader.next(1000))?.data, String(i));
  });

  test("an upstream writer sees backpressure when the consumer does not read", async () => {
    const body = new FakeUpstream({ highWaterMark: 64 });
    const reader = new EventReader(body.body, { record: true });
    body.write(b("data: first\n\n"));
    assert.equal((await reader.next(1000))?.data, "first");
    let accepted = 0;
    while (body.write(b("data: 0123456789abcdef\n\n")) && accepted < 1000) accepted++;
    assert.ok(accepted < 1000, "write() eventually returns false: the body is not drained behind the consumer's back");
    await new Promise((resolve) => setImmediate(resolve));
    assert.ok(reader.held.length <= 34, `read ahead ${reader.held.length} chunks`);
  });
});

describe("EventReader: held bytes and destroy", () => {
  test("held keeps every raw byte read, in order, until stopRecording()", async () => {
    const body = new FakeUpstream();
    const reader = new EventReader(body.body, { record: true });
    const chunks = [b(": hi\n\ndata: 1"), b("\n\n"), b("data: é\n\n")];
    for (const chunk of chunks) body.write(chunk);
    assert.equal((await reader.next(1000))?.data, undefined);
    assert.equal((await reader.next(1000))?.data, "1");
    assert.equal((await reader.next(1000))?.data, "é");
    assert.ok(Buffer.concat(reader.held).equals(Buffer.concat(chunks)));
    reader.stopRecording();
    assert.equal(reader.held.length, 0);
    body.write(b("data: 2\n\n"));
    assert.equal((await reader.next(1000))?.data, "2");
    assert.equal(reader.held.length, 0, "nothing recorded after stopRecording()");
  });

  test("destroy() aborts the upstream request", () => {
    const body = new FakeUpstream();
    const reader = new EventReader(body.body, { record: true });
    reader.destroy();
    assert.ok(body.destroyed);
  });

  test("destroy() while next() is pending settles it promptly (no hang until the timeout)", async () => {
    const body = new FakeUpstream();
    const reader = new EventReader(body.body, { record: true });
    body.write(b("data: 1\n\n"));
    assert.equal((await reader.next(1000))?.data, "1");
    const pending = reader.next(undefined);
    setImmediate(() => reader.destroy());
    const outcome = await settleWithin(pending, 300);
    assert.notEqual(outcome, "pending", "next() with no timeout must not wait forever once the body is destroyed");
  });

  test("a body closed without end or error (destroyed elsewhere) settles a pending next()", async () => {
    const body = new FakeUpstream();
    const reader = new EventReader(body.body, { record: true });
    const pending = reader.next(undefined);
    setImmediate(() => body.destroy());
    const outcome = await settleWithin(pending, 300);
    assert.notEqual(outcome, "pending", "a premature close must end the wait (as a rejection, or null that callers treat as a cut)");
  });
});

describe("EventReader: pump (the relay's synchronous steady state)", () => {
  test("events reach the step as their bytes arrive, with no await in between; a refused event stays for next()", async () => {
    const body = new FakeUpstream();
    const reader = new EventReader(body.body);
    const seen: string[] = [];
    const pumped = reader.pump((event) => {
      if (event.data === "stop") return false;
      seen.push(event.data ?? "<comment>");
      return true;
    }, 1000, performance.now());
    body.write(b("data: 1\n\n: ping\n\n"));
    assert.deepEqual(seen, ["1", "<comment>"], "delivered synchronously from the write");
    body.write(b("data: 2\n\ndata: stop\n\ndata: 3\n\n"));
    assert.deepEqual(seen, ["1", "<comment>", "2"]);
    await pumped;
    assert.equal((await reader.next(1000))?.data, "stop", "the refused event is next");
    assert.equal((await reader.next(1000))?.data, "3", "and the rest follows in order");
  });

  test("events queued before the pump are handed over first", async () => {
    const body = new FakeUpstream();
    const reader = new EventReader(body.body);
    body.write(b("data: 1\n\ndata: 2\n\n"));
    assert.equal((await reader.next(1000))?.data, "1");
    const seen: string[] = [];
    const pumped = reader.pump((event) => (seen.push(event.data as string), true), 1000, performance.now());
    body.end(b("data: 3\n\n"));
    await pumped;
    assert.deepEqual(seen, ["2", "3"]);
    assert.equal(await reader.next(1000), null, "the end is left to next()");
  });

  test("the pump ends when no data event comes within idleMs (comments do not count), and next() reports the timeout", async () => {
    const body = new FakeUpstream();
    const reader = new EventReader(body.body);
    const since = performance.now();
    const trickle = setInterval(() => body.write(b(": keep-alive\n\n")), 5);
    let last: number;
    try {
      last = await reader.pump(() => true, 40, since);
    } finally {
      clearInterval(trickle);
    }
    assert.ok(performance.now() - since >= 39, "not before idleMs");
    assert.equal(last, since, "no data event came");
    await assert.rejects(reader.next(1), StreamTimeoutError);
  });

  test("with anyEvent, comments keep the pump alive", async () => {
    const body = new FakeUpstream();
    const reader = new EventReader(body.body);
    let comments = 0;
    const trickle = setInterval(() => body.write(b(": keep-alive\n\n")), 5);
    const pumped = reader.pump(() => ++comments < 30 || false, 40, performance.now(), true);
    await pumped;
    clearInterval(trickle);
    assert.equal(comments, 30, "ended by the step (about 150 ms of comments), not by the 40 ms idle bound");
  });

  test("a paused pump (the client is not reading) holds the upstream, and the wait is not silence", async () => {
    const body = new FakeUpstream();
    const reader = new EventReader(body.body);
    const seen: string[] = [];
    const pumped = reader.pump((event) => {
      seen.push(event.data as string);
      if (event.data === "1") reader.pause();
      return true;
    }, 30, performance.now());
    body.write(b("data: 1\n\n"));
    body.write(b("data: 2\n\n"));
    assert.deepEqual(seen, ["1"], "held after the first");
    await new Promise((resolve) => setTimeout(resolve, 80));
    assert.deepEqual(seen, ["1"], "still held, and not timed out");
    reader.resume();
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(seen, ["1", "2"]);
    body.end();
    await pumped;
  });

  test("a pause the step makes on queued events stands: the pump does not resume the body behind it", async () => {
    const body = new FakeUpstream();
    const reader = new EventReader(body.body);
    body.write(b("data: 1\n\ndata: 2\n\n"));
    assert.equal((await reader.next(1000))?.data, "1");
    const seen: string[] = [];
    const pumped = reader.pump((event) => {
      seen.push(event.data as string);
      reader.pause();
      return true;
    }, 1000, performance.now());
    body.write(b("data: 3\n\n"));
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(seen, ["2"], "nothing past the queued event while the client is held");
    assert.ok(body.isPaused());
    reader.resume();
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(seen, ["2", "3"]);
    body.end();
    reader.resume();
    await pumped;
  });

  test("the body ends while the step holds it, then the client leaves: destroy() settles the pump", async () => {
    const body = new FakeUpstream();
    const reader = new EventReader(body.body);
    const pumped = reader.pump(() => (reader.pause(), true), 1000, performance.now());
    body.write(b("data: 1\n\n"));
    body.write(b("data: 2\n\n"));
    // undici completes a body delimited by the connection's close even while it is paused.
    body.body.finish();
    assert.equal(await settleWithin(pumped, 50), "pending", "held: the end is not delivered yet");
    reader.destroy();
    try {
      const outcome = await settleWithin(pumped, 300);
      assert.notEqual(outcome, "pending", "the pump waited on after the client left (its idle timer re-arms while paused)");
    } finally {
      // Should it have failed, this lets the end through so the pump's timer does not keep the file running.
      reader.resume();
    }
  });

  test("a body failure ends the pump; next() rejects with it", async () => {
    const body = new FakeUpstream();
    const reader = new EventReader(body.body);
    const pumped = reader.pump(() => true, 1000, performance.now());
    body.destroy(new Error("reset"));
    await pumped;
    await assert.rejects(reader.next(1000), /reset/);
  });
});
