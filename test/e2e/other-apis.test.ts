/**
 * Issue 6: every other `/v1/*` endpoint — embeddings, legacy completions,
 * audio (multipart) — is forwarded with model routing, and fails over
 * wherever the body names a model; on an `api: anthropic` route, which serves
 * only the Messages and Chat APIs, such a request is refused with 501.
 * Clients: the official `openai` SDK (maxRetries: 0).
 */
import assert from "node:assert/strict";
import { describe, test, type TestContext } from "node:test";
import { APIError, toFile } from "openai";
import { replyStatus, sendJson, type Handler, type MockUpstream } from "../helpers/mock-upstream.js";
import { sdk, useGateway, useMock } from "../helpers/sdk.js";

const T = { timeout: 20_000 };
const ORDERED = "auto:\n  strategy: ordered\n";

/** Answers what each endpoint answers, naming the model it received (a JSON field, or a multipart part). */
const endpoints: Handler = (req, res) => {
  const url = req.url.split("?")[0];
  if (url === "/v1/embeddings") {
    const model = String(req.json?.model);
    sendJson(res, 200, { object: "list", data: [{ object: "embedding", index: 0, embedding: [0.25, -0.5, model.length] }], model, usage: { prompt_tokens: 2, total_tokens: 2 } });
    return;
  }
  if (url === "/v1/completions") {
    const model = String(req.json?.model);
    sendJson(res, 200, { id: "cmpl-1", object: "text_completion", created: 1, model, choices: [{ index: 0, text: `completed by ${model}`, finish_reason: "stop", logprobs: null }] });
    return;
  }
  if (url === "/v1/audio/transcriptions") {
    const model = /name="model"\r\n\r\n([^\r]*)\r\n/.exec(req.body.toString("latin1"))?.[1] ?? "none";
    sendJson(res, 200, { text: `transcribed by ${model}` });
    return;
  }
  sendJson(res, 404, { error: { message: `no ${url} here`, type: "invalid_request_error", code: null } });
};

/** model-a on one mock, model-b on another, both OpenAI routes with their own keys; model-c on an Anthropic route. */
async function setup(t: TestContext, a: Handler) {
  const mockA = await useMock(t, a);
  const mockB = await useMock(t, endpoints);
  const mockC = await useMock(t, endpoints);
  const gw = await useGateway(
    t,
    `${ORDERED}routes:
  - name: route-a
    url: ${mockA.origin}/v1
    isBaseUrl: true
    apiKey: key-a
    model: model-a
  - name: route-b
    url: ${mockB.origin}/v1
    isBaseUrl: true
    apiKey: key-b
    model: model-b
  - name: route-c
    url: ${mockC.origin}
    api: anthropic
    apiKey: key-c
    model: model-c
groups:
  pair: [model-a, model-b]
`,
  );
  return { mockA, mockB, mockC, client: sdk(gw) };
}

function assertOnlyTried(mock: MockUpstream, model: string, key: string): void {
  assert.ok(mock.received.length > 0, `${model}'s upstream got nothing`);
  for (const received of mock.received) assert.equal(received.headers.authorization, `Bearer ${key}`);
}

describe("other /v1 endpoints: model routing and failover", () => {
  test("embeddings in a group: a 429 on the first model → the second model's embedding, the model spliced in, the switch in the headers", T, async (t) => {
    const { mockA, mockB, client } = await setup(t, replyStatus(429));
    const { data, response } = await client.embeddings.create({ model: "pair", input: "hello", encoding_format: "float" }).withResponse();
    assert.deepEqual(data.data[0]?.embedding, [0.25, -0.5, "model-b".length]);
    assert.equal(response.headers.get("x-gateway-model-used"), "model-b");
    assert.equal(response.headers.get("x-gateway-switched"), "1");
    assert.equal(response.headers.get("x-gateway-attempt-count"), "2");
    assert.equal(mockA.received[0]?.json?.model, "model-a");
    assert.equal(mockB.received[0]?.json?.model, "model-b");
    assert.equal(mockB.received[0]?.json?.input, "hello", "the rest of the body is kept");
    assertOnlyTried(mockA, "model-a", "key-a");
    assertOnlyTried(mockB, "model-b", "key-b");
  });

  test("legacy completions, pinned: the model's own upstream and key, the answer as sent", T, async (t) => {
    const { mockA, mockB, client } = await setup(t, endpoints);
    const completion = await client.completions.create({ model: "model-b", prompt: "Say hi", max_tokens: 5 });
    assert.equal(completion.choices[0]?.text, "completed by model-b");
    assert.equal(mockA.received.length, 0);
    assert.equal(mockB.received[0]?.url, "/v1/completions");
    assertOnlyTried(mockB, "model-b", "key-b");
  });

  test("a multipart audio transcription in a group: a 503 on the first → the second, its model written into the form", T, async (t) => {
    const { mockA, mockB, client } = await setup(t, replyStatus(503));
    const file = await toFile(Buffer.from("RIFF....WAVEfmt "), "clip.wav", { type: "audio/wav" });
    const { data, response } = await client.audio.transcriptions.create({ model: "pair", file }).withResponse();
    assert.equal(data.text, "transcribed by model-b");
    assert.equal(response.headers.get("x-gateway-switched"), "1");
    // A 5xx is retried on the same model first (the retry policy), then the next model takes over.
    assert.ok(mockA.received.length >= 1);
    assert.equal(response.headers.get("x-gateway-attempt-count"), String(mockA.received.length + 1));
    assert.ok(mockA.received.every((received) => received.body.includes(Buffer.from('name="model"\r\n\r\nmodel-a\r\n'))), "the first upstream got its own model");
    assert.match(mockB.received[0]?.headers["content-type"] ?? "", /^multipart\/form-data; boundary=/);
    assert.ok(mockB.received[0]?.body.includes(Buffer.from("RIFF....WAVEfmt ")), "the file reached the second upstream");
  });

  test("embeddings for a model on an api: anthropic route → 501 naming the reason; the upstream is not called", T, async (t) => {
    const { mockC, client } = await setup(t, endpoints);
    await assert.rejects(client.embeddings.create({ model: "model-c", input: "x", encoding_format: "float" }), (error: unknown) => {
      assert.ok(error instanceof APIError, String(error));
      assert.equal(error.status, 501);
      assert.match(error.message, /api: anthropic/);
      return true;
    });
    assert.equal(mockC.received.length, 0);
  });
});
