import assert from "node:assert/strict";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import OpenAI from "openai";
import { cleanEnv, eventually, ROOT, runCli, startCli, tempDir } from "../helpers/cli.js";
import { startMockUpstream, type MockUpstream } from "../helpers/mock-upstream.js";

const pkg = JSON.parse(readFileSync(path.join(ROOT, "package.json"), "utf8")) as { version: string };

describe("CLI commands", () => {
  for (const flag of ["--version", "-v"]) {
    test(`${flag} prints the package version`, async () => {
      const result = await runCli([flag]);
      assert.equal(result.code, 0);
      assert.equal(result.stdout.trim(), pkg.version);
    });
  }

  for (const args of [["help"], ["--help"], ["-h"]]) {
    test(`${args.join(" ")} prints usage`, async () => {
      const result = await runCli(args);
      assert.equal(result.code, 0);
      assert.match(result.stdout, /openclaw-autoproxy gateway|\[gateway\] start/);
      assert.match(result.stdout, /--config PATH/);
    });
  }

  test("gateway help prints the gateway commands", async () => {
    const result = await runCli(["gateway", "help"]);
    assert.equal(result.code, 0);
    assert.match(result.stdout, /openclaw-autoproxy gateway start/);
    assert.match(result.stdout, /openclaw-autoproxy gateway dev/);
  });

  test("an unknown command prints a message and the help, and exits 1", async () => {
    const result = await runCli(["frobnicate"]);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /Unknown command: frobnicate/);
    assert.match(result.stderr, /Usage:/);
    const sub = await runCli(["gateway", "frobnicate"]);
    assert.equal(sub.code, 1);
    assert.match(sub.stderr, /Unknown gateway subcommand: frobnicate/);
  });

  test("a bad flag exits 1 with a message", async () => {
    const result = await runCli(["start", "--port", "http"]);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /--port must be a TCP port number/);
  });
});

describe("init and validate", () => {
  test("init writes a commented routes.yml and .env.example, never overwriting", async () => {
    const tmp = tempDir({ ".env.example": "# mine\n" });
    try {
      const first = await runCli(["init"], { cwd: tmp.dir });
      assert.equal(first.code, 0);
      const routes = readFileSync(path.join(tmp.dir, "routes.yml"), "utf8");
      assert.match(routes, /^# routes\.yml/);
      assert.match(routes, /apiKeyEnv: OPENAI_API_KEY/);
      assert.equal(readFileSync(path.join(tmp.dir, ".env.example"), "utf8"), "# mine\n", "existing file kept");
      assert.match(first.stdout, /kept .*\.env\.example/);

      writeFileSync(path.join(tmp.dir, "routes.yml"), "# edited\nroutes: []\n");
      const second = await runCli(["gateway", "init"], { cwd: tmp.dir });
      assert.equal(second.code, 0);
      assert.equal(readFileSync(path.join(tmp.dir, "routes.yml"), "utf8"), "# edited\nroutes: []\n");

      // What init writes is a valid configuration.
      const fresh = tempDir();
      try {
        await runCli(["init"], { cwd: fresh.dir });
        assert.ok(existsSync(path.join(fresh.dir, ".env.example")));
        const validated = await runCli(["validate"], { cwd: fresh.dir });
        assert.equal(validated.code, 0, validated.stderr);
        assert.match(validated.stdout, /^OK: /);
        assert.match(validated.stderr, /OPENAI_API_KEY is not set/);
      } finally {
        fresh.remove();
      }
    } finally {
      tmp.remove();
    }
  });

  test("validate prints every problem with file, route, field and line, and exits 1", async () => {
    const tmp = tempDir({
      "routes.yml": ["routes:", "  - name: a", "    url: ''", "    model: m1", "  - url: http://127.0.0.1:1/v1", "    model: m1", "  - name: c", "    url: http://127.0.0.1:1/v1", "    model: m1", "    enabled: maybe", ""].join("\n"),
    });
    try {
      const result = await runCli(["validate"], { cwd: tmp.dir });
      assert.equal(result.code, 1);
      assert.match(result.stderr, /routes\.yml: route "a" \(routes\[0\]\) field "url": must be a non-empty URL \(line 3\)/);
      assert.match(result.stderr, /routes\.yml: route "c" \(routes\[2\]\) field "enabled": must be true or false \(line 10\)/);
    } finally {
      tmp.remove();
    }
  });

  test("validate reports a duplicate model across enabled routes, and a missing file", async () => {
    const tmp = tempDir({
      "routes.yml": "routes:\n  - name: a\n    url: http://127.0.0.1:1/v1\n    model: m1\n  - name: b\n    url: http://127.0.0.1:2/v1\n    models: [m2, m1]\n",
    });
    try {
      const result = await runCli(["validate"], { cwd: tmp.dir });
      assert.equal(result.code, 1);
      assert.match(result.stderr, /route "b" \(routes\[1\]\) field "models": "m1" is already served by enabled route "a"; a model may appear in one enabled route only \(line 7\)/);
      const missing = await runCli(["validate", "--config", "nope.yml"], { cwd: tmp.dir });
      assert.equal(missing.code, 1);
      assert.match(missing.stderr, /nope\.yml: file not found/);
    } finally {
      tmp.remove();
    }
  });

  test("start refuses to run on a broken config, naming the problem", async () => {
    const tmp = tempDir({ "routes.yml": "routes:\n  - name: x\n    url: http://127.0.0.1:1/v1\n    model: [m, \n" });
    try {
      const result = await runCli(["start"], { cwd: tmp.dir });
      assert.equal(result.code, 1);
      assert.match(result.stderr, /routes\.yml:\d+:\d+: invalid YAML/);
    } finally {
      tmp.remove();
    }
  });
});

describe("start through the real CLI", () => {
  let upstream: MockUpstream;
  before(async () => {
    upstream = await startMockUpstream();
  });
  after(() => upstream.close());

  const routes = () =>
    ["routes:", "  - name: mock", `    url: ${upstream.origin}/v1`, "    isBaseUrl: true", "    apiKeyEnv: MOCK_KEY", "    model: [m1, m2]", ""].join("\n");

  for (const args of [[], ["start"], ["gateway", "start"], ["gateway"]]) {
    test(`\`openclaw-autoproxy ${args.join(" ")}\` serves routes.yml and .env from the working directory`, async () => {
      const tmp = tempDir({ "routes.yml": routes(), ".env": "MOCK_KEY=key-from-dotenv\nPORT=0\nLOG_LEVEL=info\n" });
      const cli = await startCli(args, { cwd: tmp.dir });
      try {
        assert.match(cli.url, /^http:\/\/127\.0\.0\.1:\d+$/, "binds to 127.0.0.1 by default");
        const client = new OpenAI({ baseURL: `${cli.url}/v1`, apiKey: "placeholder", maxRetries: 0 });
        const { data, response } = await client.chat.completions.create({ model: "auto", messages: [{ role: "user", content: "hi" }] }).withResponse();
        assert.equal(data.choices[0]?.message.content, "Hello from the mock.");
        assert.ok(["m1", "m2"].includes(response.headers.get("x-gateway-model-used") ?? ""));
        assert.equal(upstream.received.at(-1)?.headers.authorization, "Bearer key-from-dotenv");
      } finally {
        assert.equal(await cli.stop(), 0, "exits cleanly on SIGTERM");
        tmp.remove();
      }
    });
  }

  test("--config, --port and --host override the files; the environment wins over .env", async () => {
    const tmp = tempDir({ "custom.yml": routes(), ".env": "MOCK_KEY=from-dotenv\nPORT=1\n" });
    const cli = await startCli(["start", "--config", "custom.yml", "--port", "0", "--host", "127.0.0.1"], {
      cwd: tmp.dir,
      env: cleanEnv({ MOCK_KEY: "from-environment" }),
    });
    try {
      const res = await fetch(`${cli.url}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ model: "m2", messages: [] }),
      });
      assert.equal(res.status, 200);
      assert.equal(upstream.received.at(-1)?.headers.authorization, "Bearer from-environment");
    } finally {
      await cli.stop();
      tmp.remove();
    }
  });

  test("ROUTES_FILE names the routes file", async () => {
    const tmp = tempDir({ "elsewhere.yml": routes() });
    const cli = await startCli(["start", "--port", "0"], { cwd: tmp.dir, env: cleanEnv({ ROUTES_FILE: "elsewhere.yml", MOCK_KEY: "k" }) });
    try {
      const res = await fetch(`${cli.url}/health`);
      const health = (await res.json()) as { models: { model: string }[] };
      assert.deepEqual(health.models.map((m) => m.model).sort(), ["m1", "m2"]);
    } finally {
      await cli.stop();
      tmp.remove();
    }
  });

  // stdout is written in batches of about 4 KB: no line may be cut, merged or lost, and what is still buffered when
  // the gateway stops is written before it exits.
  test("every request's log line reaches stdout whole, multi-byte text included, the last ones on exit", async () => {
    const tmp = tempDir({ "routes.yml": routes(), ".env": "MOCK_KEY=k\nPORT=0\nLOG_LEVEL=info\n" });
    const cli = await startCli(["start"], { cwd: tmp.dir });
    const count = 300;
    let exitCode: number | null = null;
    try {
      for (let batch = 0; batch < count; batch += 30) {
        await Promise.all(
          Array.from({ length: 30 }, async (_, i) => {
            const res = await fetch(`${cli.url}/v1/chat/completions`, {
              method: "POST",
              headers: { "content-type": "application/json" },
              body: JSON.stringify({ model: `modèle-✓-${batch + i}`, messages: [{ role: "user", content: "hi" }] }),
            });
            await res.arrayBuffer();
            assert.equal(res.status, 404);
          }),
        );
      }
    } finally {
      exitCode = await cli.stop();
      tmp.remove();
    }
    assert.equal(exitCode, 0);
    const lines = cli.output().split("\n").filter((line) => line.startsWith("{"));
    for (const line of lines) JSON.parse(line);
    const models = lines.map((line) => JSON.parse(line) as { event?: string; requested_model?: string }).filter((entry) => entry.event === "request").map((entry) => entry.requested_model);
    assert.equal(models.length, count);
    assert.deepEqual(new Set(models), new Set(Array.from({ length: count }, (_, i) => `modèle-✓-${i}`)));
  });

  test("dev restarts when routes.yml changes", async () => {
    const tmp = tempDir({ "routes.yml": routes(), ".env": "MOCK_KEY=k\n" });
    const cli = await startCli(["dev", "--port", "0"], { cwd: tmp.dir });
    try {
      const ask = (url: string, model: string) =>
        fetch(`${url}/v1/chat/completions`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ model, messages: [] }) });
      assert.equal((await ask(cli.url, "m3")).status, 404);
      writeFileSync(path.join(tmp.dir, "routes.yml"), routes().replace("[m1, m2]", "[m1, m2, m3]"));
      // The restarted child listens on a new port: read it from the output.
      const restarted = await eventually(async () => {
        const urls = [...cli.output().matchAll(/"event":"listening","url":"([^"]+)"/g)].map((m) => m[1] as string);
        if (urls.length < 2) return false;
        return (await ask(urls.at(-1) as string, "m3")).status === 200;
      });
      assert.ok(restarted, `dev did not restart with the new routes:\n${cli.output()}`);
      assert.match(cli.output(), /\[dev\] routes\.yml changed, restarting/);
    } finally {
      await cli.stop();
      tmp.remove();
    }
  });
});

describe("the README's demo", () => {
  test("`openclaw-autoproxy demo` switches from the rate-limited model and streams", async () => {
    const cli = await startCli(["demo", "--port", "0"], { env: cleanEnv() });
    try {
      // The README's curl: POST model auto; the first call starts on the busy model.
      const res = await fetch(`${cli.url}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ model: "auto", messages: [{ role: "user", content: "Hi" }] }),
      });
      assert.equal(res.status, 200);
      assert.equal(res.headers.get("x-gateway-switched"), "1");
      assert.equal(res.headers.get("x-gateway-model-used"), "demo-ok");
      assert.equal(res.headers.get("x-gateway-attempt-count"), "2");
      const body = (await res.json()) as { choices: { message: { content: string } }[]; gateway_notice: Record<string, unknown> };
      assert.match(body.choices[0]?.message.content ?? "", /Hello from demo-ok/);
      assert.deepEqual(
        { from: body.gateway_notice.from_model, to: body.gateway_notice.to_model, status: body.gateway_notice.trigger_status },
        { from: "demo-busy", to: "demo-ok", status: 429 },
      );

      // Streaming works through the SDK, and the switch notice does not disturb it.
      const client = new OpenAI({ baseURL: `${cli.url}/v1`, apiKey: "none", maxRetries: 0 });
      let text = "";
      for (let i = 0; i < 2; i++) {
        text = "";
        const stream = await client.chat.completions.create({ model: "auto", stream: true, messages: [{ role: "user", content: "Hi" }] });
        for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? "";
        assert.equal(text, "Hello from demo-ok, answered by the demo upstream.");
      }
      assert.match(cli.output(), /curl -si http:\/\/127\.0\.0\.1:\d+\/v1\/chat\/completions/);
    } finally {
      await cli.stop();
    }
  });
});
