import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { CENSOR, censorSecrets, createLogger } from "../../src/observe/logger.js";

describe("logger: credentials never reach a line", () => {
  test("credential-named keys at the top level and one level down are censored, in any case", () => {
    const fields = {
      event: "x",
      apiKey: "sk-top",
      Authorization: "Bearer top",
      headers: { authorization: "Bearer h", "X-Api-Key": "sk-h", "api-key": "az-h", "x-goog-api-key": "g-h", cookie: "c", accept: "*/*" },
      route: { name: "r", apiKey: "sk-route", api_key: "sk-snake" },
    };
    assert.deepEqual(censorSecrets(fields), {
      event: "x",
      apiKey: CENSOR,
      Authorization: CENSOR,
      headers: { authorization: CENSOR, "X-Api-Key": CENSOR, "api-key": CENSOR, "x-goog-api-key": CENSOR, cookie: CENSOR, accept: "*/*" },
      route: { name: "r", apiKey: CENSOR, api_key: CENSOR },
    });
    assert.equal(fields.headers.authorization, "Bearer h", "the caller's object is not changed");
    assert.equal(fields.apiKey, "sk-top");
  });

  test("a line with no such key is passed through as it is, not copied", () => {
    const fields = { event: "switch", from_model: "a", to_model: "b", err: { message: "m", stack: "s" }, list: [{ apiKey: "in an array, not a credential field" }] };
    assert.equal(censorSecrets(fields), fields);
    assert.equal(censorSecrets(fields).err, fields.err);
  });

  test("through pino: the line has the field, censored, and not the secret", async () => {
    let text = "";
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        text += chunk.toString();
        done();
      },
    });
    const logger = createLogger("info", sink);
    logger.info({ event: "request", headers: { authorization: "Bearer sk-secret-1" }, apiKey: "sk-secret-2", model: "m" }, "hello");
    await new Promise((resolve) => setImmediate(resolve));
    const line = JSON.parse(text) as Record<string, unknown>;
    assert.deepEqual(line.headers, { authorization: CENSOR });
    assert.equal(line.apiKey, CENSOR);
    assert.equal(line.model, "m");
    assert.equal(line.msg, "hello");
    assert.ok(!text.includes("sk-secret"), text);
  });
});
