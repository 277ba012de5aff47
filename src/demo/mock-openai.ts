import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";

/**
 * A tiny OpenAI-compatible upstream for the demo: no keys, no network.
 * Paths under /rate-limited/ always answer 429 (as a provider out of quota
 * does); paths under /healthy/ answer chat completions, streaming or not.
 */

export function chatCompletion(model: string, text: string, id = "chatcmpl-demo") {
  return {
    id,
    object: "chat.completion",
    created: Math.floor(Date.now() / 1000),
    model,
    choices: [{ index: 0, message: { role: "assistant", content: text, refusal: null }, logprobs: null, finish_reason: "stop" }],
    usage: { prompt_tokens: 9, completion_tokens: text.split(" ").length, total_tokens: 9 + text.split(" ").length },
  };
}

/** The SSE events of a streamed chat completion, `data: [DONE]` included. */
export function chatCompletionEvents(model: string, pieces: readonly string[], id = "chatcmpl-demo", usage = false): string[] {
  const created = Math.floor(Date.now() / 1000);
  const chunk = (delta: object, finish: string | null) =>
    JSON.stringify({ id, object: "chat.completion.chunk", created, model, choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }] });
  const events = [chunk({ role: "assistant", content: "" }, null), ...pieces.map((piece) => chunk({ content: piece }, null)), chunk({}, "stop")];
  if (usage) {
    events.push(JSON.stringify({ id, object: "chat.completion.chunk", created, model, choices: [], usage: { prompt_tokens: 9, completion_tokens: pieces.length, total_tokens: 9 + pieces.length } }));
  }
  return [...events.map((data) => `data: ${data}\n\n`), "data: [DONE]\n\n"];
}

function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      try {
        resolve(JSON.parse(Buffer.concat(chunks).toString("utf8")) as Record<string, unknown>);
      } catch {
        resolve({});
      }
    });
  });
}

function send(res: ServerResponse, status: number, payload: unknown, headers: Record<string, string> = {}): void {
  const body = JSON.stringify(payload);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(body), ...headers });
  res.end(body);
}

export function createDemoUpstream(): Server {
  return createServer(async (req, res) => {
    const path = req.url ?? "/";
    const body = await readJson(req);
    const model = typeof body.model === "string" ? body.model : "demo";
    if (path.startsWith("/rate-limited/")) {
      send(res, 429, { error: { message: `Rate limit reached for ${model} (demo upstream).`, type: "rate_limit_error", code: "rate_limit_exceeded" } }, { "retry-after": "30" });
      return;
    }
    if (path.startsWith("/healthy/") && path.endsWith("/chat/completions")) {
      const text = `Hello from ${model}, answered by the demo upstream.`;
      if (body.stream === true) {
        res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
        const includeUsage = (body.stream_options as { include_usage?: unknown } | undefined)?.include_usage === true;
        for (const event of chatCompletionEvents(model, text.split(/(?<= )/), "chatcmpl-demo", includeUsage)) res.write(event);
        res.end();
        return;
      }
      send(res, 200, chatCompletion(model, text));
      return;
    }
    send(res, 404, { error: { message: `The demo upstream does not serve ${req.method} ${path}.`, type: "invalid_request_error", code: "not_found" } });
  });
}
