/**
 * Issue 4, "Tests and evidence": a Chat Completions stream is held until its
 * first real output, so what goes wrong before it — an error event, a late or
 * stalled first token, a cut — still fails over invisibly. Through the real
 * gateway and the openai SDK (maxRetries: 0), read both ways: `for await` over
 * `chat.completions.create({stream: true})` and
 * `chat.completions.stream().finalChatCompletion()`.
 * After the commit point: streaming-recovery.test.ts, streaming-prefill.test.ts,
 * streaming-events.test.ts.
 *
 * Time bounds: lower bounds are tight (less timer granularity) only where the
 * gateway must wait; upper bounds are generous for a loaded 2-core machine.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { APIError } from "openai";
import { chatBody, rawRequest, sseData } from "../helpers/sdk.js";
import { within } from "../helpers/faults.js";
import { assertComplete, describeError, HOWS, streamChat, streamGateway } from "../helpers/stream-faults.js";

const T = { timeout: 30_000 };
const TOL = 5;
const SLACK_MS = 2_500;
const A = "model-a";
const B = "model-b";

const overloaded = { message: "The engine is currently overloaded, please try again later.", type: "server_error", code: "overloaded" };

/** The ways of asking for a model that has another candidate after it. */
const withNext = [
  { how: "auto", model: "auto", yaml: "" },
  { how: "pinned with a fallback chain", model: A, yaml: `fallbacks:\n  ${A}: [${B}]\n` },
] as const;

describe("an error event before the first token", () => {
  for (const { how: asked, model, yaml } of withNext) {
    for (const how of HOWS) {
      test(`${asked}: fails over invisibly to the next model; the SDK sees one clean answer (${how})`, T, async (t) => {
        const { client, up } = await streamGateway(t, [A, B], { yaml: `retry:\n  retries: 0\n${yaml}` });
        up[A]!.otherwise({ fault: { at: 0, do: "error", error: overloaded } });

        const got = await streamChat(client, model, how);

        assertComplete(got, up[B]!.text, how);
        assert.ok(got.chunks.length > 0 && got.chunks.every((chunk) => chunk.model === B), `models: ${got.chunks.map((c) => c.model).join(",")}`);
        assert.equal(up[A]!.count, 1);
        assert.equal(up[B]!.count, 1);
        assert.equal(up[B]!.requests[0]!.model, B);
        assert.ok(got.elapsed < SLACK_MS, `took ${got.elapsed} ms`);
        if (how === "finalChatCompletion") assert.equal(got.final?.model, B);
      });
    }
  }

  for (const how of HOWS) {
    test(`once, on a lone pinned model → the same model is retried and answers (${how})`, T, async (t) => {
      const { client, up } = await streamGateway(t, [A]);
      up[A]!.next([{ fault: { at: 0, do: "error", error: overloaded } }]);

      const got = await streamChat(client, A, how);

      assertComplete(got, up[A]!.text, how);
      assert.equal(up[A]!.count, 2, "an error event is a transient failure: one retry");
      assert.ok(got.elapsed < SLACK_MS, `took ${got.elapsed} ms`);
    });
  }

  for (const how of HOWS) {
    test(`no candidate left → an HTTP error status (APIError), never a 200 (${how})`, T, async (t) => {
      const { client, up } = await streamGateway(t, [A, B]);
      up[A]!.otherwise({ fault: { at: 0, do: "error", error: overloaded } });

      const got = await streamChat(client, A, how);

      assert.ok(got.error instanceof APIError, `expected an APIError, got ${describeError(got.error)}`);
      assert.equal(got.error.status, 500, "the error event becomes the HTTP status (500: it names none)");
      assert.deepEqual(got.error.error, overloaded, "the upstream's error object reaches the client");
      assert.equal(got.text, "");
      assert.equal(got.chunks.length, 0);
      assert.equal(up[A]!.count, 2, "retried once, then answered with the error");
      assert.equal(up[B]!.count, 0, "a pinned model without a chain never switches");
      assert.ok(got.elapsed < SLACK_MS, `took ${got.elapsed} ms`);
    });
  }

  test("an error event naming a status (429) → that status, with the upstream's error object", T, async (t) => {
    const { gw, up } = await streamGateway(t, [A], { yaml: "retry:\n  retries: 0\n" });
    const limited = { message: "Rate limit reached for requests", type: "rate_limit_error", code: "rate_limit_exceeded", status: 429 };
    up[A]!.otherwise({ fault: { at: 0, do: "error", error: limited } });
    const res = await rawRequest(gw.url, { method: "POST", path: "/v1/chat/completions", headers: { "content-type": "application/json" }, body: chatBody(A, { stream: true }) });
    assert.equal(res.status, 429);
    assert.match(String(res.headers["content-type"]), /application\/json/);
    assert.deepEqual(res.json(), { error: limited });
    assert.equal(up[A]!.count, 1);
  });
});

describe("a late or stalled first token", () => {
  for (const { how: asked, model, yaml } of withNext) {
    for (const how of HOWS) {
      test(`${asked}: first token later than firstTokenMs (300) → invisible failover; the slow attempt is closed (${how})`, T, async (t) => {
        const { client, up } = await streamGateway(t, [A, B], { yaml, routeExtra: { [A]: "    timeouts:\n      firstTokenMs: 300\n" } });
        up[A]!.otherwise({ firstTokenDelayMs: 5_000 });

        // The gateway's bound starts when it sends to A, which A may see a little later (a new connection).
        const called = performance.now();
        const got = await streamChat(client, model, how);

        assertComplete(got, up[B]!.text, how);
        assert.ok(got.chunks.every((chunk) => chunk.model === B));
        assert.equal(up[A]!.count, 1, "a model that timed out is not retried in the same request");
        assert.equal(up[B]!.count, 1);
        const waited = up[B]!.requests[0]!.at - called;
        assert.ok(waited >= 300 - TOL, `switched ${waited} ms after the call, before firstTokenMs`);
        assert.ok(got.elapsed >= 300 - TOL && got.elapsed < 300 + SLACK_MS, `took ${got.elapsed} ms`);
        await within(up[A]!.requests[0]!.ended, 2_000, "the slow upstream request closing");
        assert.equal(up[A]!.requests[0]!.aborted, true);
        // Only the role chunk was sent before the gateway gave up: nothing of A reached the client.
        assert.equal(up[A]!.requests[0]!.written.length, 1);
      });
    }
  }

  for (const { how: asked, model, yaml } of withNext) {
    for (const how of HOWS) {
      test(`${asked}: headers and role chunk, then a stall → invisible failover after firstTokenMs (${how})`, T, async (t) => {
        const { client, up } = await streamGateway(t, [A, B], { yaml, routeExtra: { [A]: "    timeouts:\n      firstTokenMs: 300\n" } });
        up[A]!.otherwise({ fault: { at: 0, do: "stall" } });

        const got = await streamChat(client, model, how);

        assertComplete(got, up[B]!.text, how);
        assert.equal(up[A]!.count, 1);
        assert.equal(up[B]!.count, 1);
        assert.ok(got.elapsed >= 300 - TOL && got.elapsed < 300 + SLACK_MS, `took ${got.elapsed} ms`);
        await within(up[A]!.requests[0]!.ended, 2_000, "the stalled upstream request closing");
        assert.equal(up[A]!.requests[0]!.aborted, true);
      });
    }
  }

  test("keep-alive comments (every 50 ms) but no first token → still a failover after firstTokenMs (300)", T, async (t) => {
    const { client, up } = await streamGateway(t, [A, B], { routeExtra: { [A]: "    timeouts:\n      firstTokenMs: 300\n" } });
    up[A]!.otherwise({ fault: { at: 0, do: "stall", pingMs: 50 } });

    const got = await streamChat(client, "auto", "for-await");

    assertComplete(got, up[B]!.text, "for-await");
    assert.equal(up[A]!.count, 1);
    assert.ok(up[A]!.requests[0]!.written.filter((event) => event.startsWith(":")).length >= 2, "the mock sent no keep-alive comments");
    assert.ok(got.elapsed >= 300 - TOL && got.elapsed < 300 + SLACK_MS, `took ${got.elapsed} ms`);
    await within(up[A]!.requests[0]!.ended, 2_000, "the stalled upstream request closing");
  });

  for (const how of HOWS) {
    test(`a first token under firstTokenMs is waited for: no failover (${how})`, T, async (t) => {
      const { client, up } = await streamGateway(t, [A, B], { routeExtra: { [A]: "    timeouts:\n      firstTokenMs: 3000\n" } });
      up[A]!.otherwise({ firstTokenDelayMs: 200 });

      const got = await streamChat(client, "auto", how);

      assertComplete(got, up[A]!.text, how);
      assert.equal(up[A]!.count, 1);
      assert.equal(up[B]!.count, 0);
      assert.ok(got.elapsed >= 200 - TOL && got.elapsed < 200 + SLACK_MS, `took ${got.elapsed} ms`);
    });
  }

  for (const how of HOWS) {
    test(`a cut before the first token → retried, one clean answer (${how})`, T, async (t) => {
      const { client, up } = await streamGateway(t, [A]);
      up[A]!.next([{ fault: { at: 0, do: "cut" } }]);

      const got = await streamChat(client, A, how);

      assertComplete(got, up[A]!.text, how);
      assert.equal(up[A]!.count, 2);
      assert.ok(got.elapsed < SLACK_MS, `took ${got.elapsed} ms`);
    });
  }
});

describe("the switch notice of a held stream", () => {
  test("after a pre-commit failover the notice comment comes before the first event", T, async (t) => {
    const { gw, client, up } = await streamGateway(t, [A, B], { yaml: "retry:\n  retries: 0\n" });
    up[A]!.otherwise({ fault: { at: 0, do: "error", error: overloaded } });

    const res = await rawRequest(gw.url, {
      method: "POST",
      path: "/v1/chat/completions",
      headers: { "content-type": "application/json" },
      body: chatBody("auto", { stream: true }),
    });
    assert.equal(res.status, 200);
    assert.match(String(res.headers["content-type"]), /text\/event-stream/);
    assert.equal(res.headers["x-gateway-model-used"], B);
    assert.equal(res.headers["x-gateway-switched"], "1");
    assert.equal(res.headers["x-gateway-attempt-count"], "2");
    assert.ok(res.text.startsWith(": gateway_notice "), `the body does not start with the notice: ${JSON.stringify(res.text.slice(0, 80))}`);
    const firstLine = res.text.slice(0, res.text.indexOf("\n"));
    const notice = JSON.parse(firstLine.slice(": gateway_notice ".length)) as Record<string, unknown>;
    assert.equal(notice.from_model, A);
    assert.equal(notice.to_model, B);
    assert.equal(notice.reason, "body_status");
    assert.ok(res.text.indexOf(": gateway_notice") < res.text.indexOf("data:"));
    assert.equal(res.text.split(": gateway_notice").length, 2, "one notice");
    // Nothing of A's failed stream (its role chunk, its error event) reaches the client.
    const data = sseData(res.text);
    assert.ok(!data.some((d) => d.includes(`chatcmpl-${A}`) || d.includes("overloaded")), data.join("\n"));
    assert.equal(data[data.length - 1], "[DONE]");
    assert.equal(data.filter((d) => d === "[DONE]").length, 1);

    // The SDK ignores the comment: one clean answer.
    const got = await streamChat(client, "auto", "for-await");
    assertComplete(got, up[B]!.text, "for-await");
  });

  test("a pre-commit failover, then a cut on the answering model and a deterministic replay → still one notice, first; the answer once", T, async (t) => {
    const { gw, up } = await streamGateway(t, [A, B], { yaml: "retry:\n  retries: 0\n" });
    up[A]!.otherwise({ fault: { at: 0, do: "error", error: overloaded } });
    up[B]!.next([{ fault: { at: 3, do: "cut" } }]);

    const res = await rawRequest(gw.url, {
      method: "POST",
      path: "/v1/chat/completions",
      headers: { "content-type": "application/json" },
      body: chatBody("auto", { stream: true }),
    });

    assert.equal(res.status, 200);
    assert.ok(res.text.startsWith(": gateway_notice "), JSON.stringify(res.text.slice(0, 80)));
    assert.equal(res.text.split(": gateway_notice").length, 2, "one notice");
    const data = sseData(res.text);
    assert.equal(data[data.length - 1], "[DONE]");
    const chunks = data.slice(0, -1).map((d) => JSON.parse(d) as { error?: unknown; model: string; choices: { delta?: { content?: string | null } }[] });
    assert.ok(chunks.every((chunk) => chunk.error === undefined), "an error event in a recovered stream");
    assert.equal(chunks.map((chunk) => chunk.choices[0]?.delta?.content ?? "").join(""), up[B]!.text);
    assert.ok(chunks.every((chunk) => chunk.model === B));
    assert.equal(up[A]!.count, 1);
    assert.equal(up[B]!.count, 2, "B answered, was cut, and replayed");
  });
});
