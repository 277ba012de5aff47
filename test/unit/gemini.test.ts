import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { GEMINI_SKIP_SIGNATURE, isGoogleOrigin, withThoughtSignatures } from "../../src/compat/gemini.js";

const call = (id: string, signature?: string) => ({
  id,
  type: "function",
  function: { name: "f", arguments: "{}" },
  ...(signature ? { extra_content: { google: { thought_signature: signature } } } : {}),
});

describe("withThoughtSignatures", () => {
  test("a history another model made: the first call of each assistant message gets the stand-in, nothing else changes", () => {
    const messages = [
      { role: "user", content: "Go." },
      { role: "assistant", content: null, tool_calls: [call("a"), call("b")] },
      { role: "tool", tool_call_id: "a", content: "1" },
      { role: "tool", tool_call_id: "b", content: "2" },
      { role: "assistant", content: "Done." },
    ];
    const out = withThoughtSignatures(messages);
    assert.deepEqual(out, [
      messages[0],
      { role: "assistant", content: null, tool_calls: [{ ...call("a"), extra_content: { google: { thought_signature: GEMINI_SKIP_SIGNATURE } } }, call("b")] },
      messages[2],
      messages[3],
      messages[4],
    ]);
    assert.equal((messages[1] as { tool_calls: { extra_content?: unknown }[] }).tool_calls[0]!.extra_content, undefined, "the input is not mutated");
  });

  test("Gemini's own history (a signature on the first call) is left alone: undefined, so the body is not rewritten", () => {
    assert.equal(withThoughtSignatures([{ role: "user", content: "Go." }, { role: "assistant", content: null, tool_calls: [call("a", "c2lnbmF0dXJl"), call("b")] }]), undefined);
    assert.equal(withThoughtSignatures([{ role: "user", content: "Hi" }, { role: "assistant", content: "Hello" }]), undefined);
    assert.equal(withThoughtSignatures("not a list"), undefined);
  });

  test("other extra_content fields are kept beside the signature", () => {
    const first = { ...call("a"), extra_content: { google: { other: 1 }, vendor: true } };
    const out = withThoughtSignatures([{ role: "assistant", content: null, tool_calls: [first] }]);
    assert.deepEqual((out?.[0] as { tool_calls: unknown[] }).tool_calls[0], { ...call("a"), extra_content: { google: { other: 1, thought_signature: GEMINI_SKIP_SIGNATURE }, vendor: true } });
  });
});

describe("isGoogleOrigin", () => {
  test("the Gemini API and Vertex AI, and nothing that merely contains their names", () => {
    for (const origin of ["https://generativelanguage.googleapis.com", "https://aiplatform.googleapis.com", "https://us-central1-aiplatform.googleapis.com", "https://europe-west4-aiplatform.googleapis.com:443"]) {
      assert.equal(isGoogleOrigin(origin), true, origin);
    }
    for (const origin of ["https://api.openai.com", "https://generativelanguage.googleapis.com.example.com", "https://example.com", "http://127.0.0.1:8080"]) {
      assert.equal(isGoogleOrigin(origin), false, origin);
    }
  });
});
