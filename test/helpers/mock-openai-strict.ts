/**
 * A Chat Completions upstream (`POST …/chat/completions`) for `startMockUpstream`
 * that rejects, with 400 and OpenAI's error shape, what an OpenAI upstream
 * would reject — so a translation from Anthropic Messages that leaves
 * something Anthropic-shaped behind fails the test instead of passing
 * unnoticed:
 *
 * - unknown top-level fields (`system`, `stop_sequences`, `top_k`, `metadata`
 *   with Anthropic keys…), unknown roles, unknown keys in a message;
 * - content parts that are not Chat Completions parts (`tool_use`,
 *   `tool_result`, `image` with a `source`, `thinking`);
 * - tools not shaped `{type: "function", function: {name, parameters}}`, a
 *   `tool_choice` that is neither a mode string nor `{type: "function", function: {name}}`
 *   naming a declared tool;
 * - `tool` messages whose `tool_call_id` answers no tool call of the assistant
 *   message before them, and assistant tool calls left unanswered;
 * - `stream_options` without `stream`;
 * - the wrong credential (401), and Anthropic headers (`x-api-key`,
 *   `anthropic-version`, `anthropic-beta`) leaking through (400).
 *
 * Answers: a completion (JSON) or a stream — role chunk, content chunks,
 * tool-call chunks with their arguments split (in any interleaving), the
 * finish chunk, a usage chunk (`choices: []`) when `stream_options.include_usage`,
 * `data: [DONE]`. With tools and `toolCalls` configured it calls them; when
 * the conversation ends with `tool` messages it answers a text built from them.
 */
import type { IncomingHttpHeaders, ServerResponse } from "node:http";
import { sendJson, type Handler, type Received } from "./mock-upstream.js";

type Json = Record<string, unknown>;

const isObject = (value: unknown): value is Json => typeof value === "object" && value !== null && !Array.isArray(value);

/** One tool call the upstream makes, its `arguments` JSON text split into the pieces it streams. */
export interface ToolCallAnswer {
  readonly id: string;
  readonly name: string;
  readonly args: readonly string[];
}

export interface OpenAIUsageSpec {
  readonly prompt_tokens: number;
  readonly completion_tokens: number;
  /** Reported as `prompt_tokens_details.cached_tokens` (a part of prompt_tokens). */
  readonly cached_tokens?: number;
}

export interface StrictChatOptions {
  /** The answer's text (default "Hello from the strict mock."). */
  readonly text?: string;
  /** The answer's text as explicit streamed pieces (default: split into words). */
  readonly pieces?: readonly string[];
  /** The route's key: `Authorization: Bearer <apiKey>` is required (else 401). */
  readonly apiKey?: string;
  /** Tool calls made when the request has tools and does not end with tool results. */
  readonly toolCalls?: readonly ToolCallAnswer[];
  /** The order of streamed argument pieces as [call index, piece index] (default: call by call). */
  readonly order?: readonly (readonly [number, number])[];
  /** Text said before the tool calls (default none: `content: null`). */
  readonly toolText?: string;
  /** The answer when the conversation ends with tool messages (default `Tools said: …`). */
  readonly afterToolResults?: (results: readonly { readonly tool_call_id: string; readonly content: string }[]) => string;
  /** Reported usage (default prompt 21, completion 13). */
  readonly usage?: OpenAIUsageSpec;
  /** The completion's id (default `chatcmpl-strict<n>`). */
  readonly id?: string;
  /** Overrides finish_reason. */
  readonly finishReason?: string;
  /** Extra fields of the choice (vLLM's `stop_reason`, SGLang's `matched_stop`). */
  readonly choiceExtra?: Json;
  /** Streams only this many content/tool chunks, then destroys the socket (every request: a replay is cut too). */
  readonly cutAfter?: number;
}

/** Thrown by `assertChatRequest`, answered as `{error: {message, type, param, code}}`. */
export class OpenAIRequestError extends Error {
  constructor(
    message: string,
    readonly status = 400,
    readonly param: string | null = null,
    readonly code: string | null = null,
    readonly type = "invalid_request_error",
  ) {
    super(message);
    this.name = "OpenAIRequestError";
  }
}

const fail = (message: string, param: string | null = null, code: string | null = "invalid_value"): never => {
  throw new OpenAIRequestError(message, 400, param, code);
};

/** Top-level fields of a chat completion request (openai 6.x `ChatCompletionCreateParamsBase`). */
const CHAT_FIELDS = [
  "model",
  "messages",
  "audio",
  "frequency_penalty",
  "function_call",
  "functions",
  "logit_bias",
  "logprobs",
  "max_completion_tokens",
  "max_tokens",
  "metadata",
  "modalities",
  "n",
  "parallel_tool_calls",
  "prediction",
  "presence_penalty",
  "prompt_cache_key",
  "prompt_cache_retention",
  "reasoning_effort",
  "response_format",
  "safety_identifier",
  "seed",
  "service_tier",
  "stop",
  "store",
  "stream",
  "stream_options",
  "temperature",
  "tool_choice",
  "tools",
  "top_logprobs",
  "top_p",
  "user",
  "verbosity",
  "web_search_options",
];
const ROLES = ["system", "developer", "user", "assistant", "tool", "function"];
const MESSAGE_KEYS: Readonly<Record<string, readonly string[]>> = {
  system: ["role", "content", "name"],
  developer: ["role", "content", "name"],
  user: ["role", "content", "name"],
  assistant: ["role", "content", "name", "tool_calls", "function_call", "refusal", "audio"],
  tool: ["role", "content", "tool_call_id"],
  function: ["role", "content", "name"],
};
const PART_TYPES: Readonly<Record<string, readonly string[]>> = {
  system: ["text"],
  developer: ["text"],
  user: ["text", "image_url", "input_audio", "file"],
  assistant: ["text", "refusal"],
  tool: ["text"],
  function: ["text"],
};
const TOOL_NAME = /^[a-zA-Z0-9_-]{1,64}$/;
const quoteList = (items: readonly string[]) => items.map((item) => `'${item}'`).join(", ");

function checkKeys(value: Json, allowed: readonly string[], path: string): void {
  for (const key of Object.keys(value)) {
    if (!allowed.includes(key)) fail(`Additional properties are not allowed ('${key}' was unexpected) - '${path}'`, path, null);
  }
}

function checkContent(content: unknown, role: string, path: string): void {
  if (typeof content === "string") return;
  if (!Array.isArray(content)) return void fail(`Invalid type for '${path}': expected one of a string or array of objects.`, path, "invalid_type");
  const allowed = PART_TYPES[role] ?? ["text"];
  content.forEach((part, j) => {
    const partPath = `${path}[${j}]`;
    if (!isObject(part)) return fail(`Invalid type for '${partPath}': expected an object.`, partPath, "invalid_type");
    if (typeof part.type !== "string" || !allowed.includes(part.type)) {
      fail(`Invalid value: '${String(part.type)}'. Supported values are: ${quoteList(allowed)}.`, `${partPath}.type`);
    }
    switch (part.type) {
      case "text":
        checkKeys(part, ["type", "text"], partPath);
        if (typeof part.text !== "string") fail(`Missing required parameter: '${partPath}.text'.`, `${partPath}.text`, "missing_required_parameter");
        break;
      case "image_url": {
        checkKeys(part, ["type", "image_url"], partPath);
        const image = part.image_url;
        if (!isObject(image) || typeof image.url !== "string") fail(`Missing required parameter: '${partPath}.image_url.url'.`, `${partPath}.image_url.url`, "missing_required_parameter");
        checkKeys(image as Json, ["url", "detail"], `${partPath}.image_url`);
        break;
      }
      case "refusal":
        checkKeys(part, ["type", "refusal"], partPath);
        break;
    }
  });
}

function checkToolCalls(calls: unknown, path: string): string[] {
  if (!Array.isArray(calls)) return fail(`Invalid type for '${path}': expected an array.`, path, "invalid_type");
  if (calls.length === 0) fail(`Invalid '${path}': empty array. Expected an array with minimum length 1, but got an empty array instead.`, path, "empty_array");
  return calls.map((call, k) => {
    const callPath = `${path}[${k}]`;
    if (!isObject(call)) return fail(`Invalid type for '${callPath}': expected an object.`, callPath, "invalid_type");
    checkKeys(call, ["id", "type", "function"], callPath);
    if (typeof call.id !== "string" || call.id.length === 0) fail(`Missing required parameter: '${callPath}.id'.`, `${callPath}.id`, "missing_required_parameter");
    if (call.type !== "function") fail(`Invalid value: '${String(call.type)}'. Supported values are: 'function'.`, `${callPath}.type`);
    const fn = call.function;
    if (!isObject(fn)) return fail(`Missing required parameter: '${callPath}.function'.`, `${callPath}.function`, "missing_required_parameter");
    checkKeys(fn, ["name", "arguments"], `${callPath}.function`);
    if (typeof fn.name !== "string") fail(`Missing required parameter: '${callPath}.function.name'.`, `${callPath}.function.name`, "missing_required_parameter");
    if (typeof fn.arguments !== "string") fail(`Invalid type for '${callPath}.function.arguments': expected a string, but got ${typeof fn.arguments} instead.`, `${callPath}.function.arguments`, "invalid_type");
    return call.id as string;
  });
}

function checkTools(tools: unknown): string[] {
  if (!Array.isArray(tools)) return fail("Invalid type for 'tools': expected an array.", "tools", "invalid_type");
  return tools.map((tool, i) => {
    const path = `tools[${i}]`;
    if (!isObject(tool)) return fail(`Invalid type for '${path}': expected an object.`, path, "invalid_type");
    if (tool.type !== "function") fail(`Invalid value: '${String(tool.type)}'. Supported values are: 'function' and 'custom'.`, `${path}.type`);
    checkKeys(tool, ["type", "function"], path);
    const fn = tool.function;
    if (!isObject(fn)) return fail(`Missing required parameter: '${path}.function'.`, `${path}.function`, "missing_required_parameter");
    checkKeys(fn, ["name", "description", "parameters", "strict"], `${path}.function`);
    if (typeof fn.name !== "string" || !TOOL_NAME.test(fn.name)) fail(`Invalid '${path}.function.name': string does not match pattern. Expected a string that matches the pattern '^[a-zA-Z0-9_-]+$'.`, `${path}.function.name`, "invalid_value");
    if (fn.parameters !== undefined && (!isObject(fn.parameters) || fn.parameters.type !== "object")) {
      fail(`Invalid schema for function '${String(fn.name)}': schema must be a JSON Schema of 'type: "object"'.`, `${path}.function.parameters`, "invalid_function_parameters");
    }
    return fn.name as string;
  });
}

/**
 * Throws an `OpenAIRequestError` when an OpenAI upstream would reject this
 * request (400, or 401 for the wrong key), or when an Anthropic header leaked
 * into it.
 */
export function assertChatRequest(json: unknown, headers: IncomingHttpHeaders = {}, apiKey?: string): void {
  for (const header of ["x-api-key", "anthropic-version", "anthropic-beta"]) {
    if (headers[header] !== undefined) fail(`Unexpected header '${header}' on an OpenAI request: an Anthropic client's header leaked through the gateway.`, null, "anthropic_header_leaked");
  }
  const bearer = /^Bearer (.+)$/.exec(headers.authorization ?? "")?.[1];
  if (apiKey !== undefined && bearer !== apiKey) {
    throw new OpenAIRequestError(`Incorrect API key provided: ${bearer === undefined ? "(none)" : `${bearer.slice(0, 3)}…`}.`, 401, null, "invalid_api_key");
  }
  if (!isObject(json)) return void fail("We could not parse the JSON body of your request.", null, null);
  for (const key of Object.keys(json)) {
    if (!CHAT_FIELDS.includes(key)) fail(`Unrecognized request argument supplied: ${key}`, null, null);
  }
  if (typeof json.model !== "string" || json.model.length === 0) fail("you must provide a model parameter", "model", null);
  if (!Array.isArray(json.messages)) return void fail("Missing required parameter: 'messages'.", "messages", "missing_required_parameter");
  if (json.messages.length === 0) fail("Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead.", "messages", "empty_array");
  for (const field of ["max_tokens", "max_completion_tokens"]) {
    const value = json[field];
    if (value === undefined || value === null) continue;
    if (typeof value !== "number" || !Number.isInteger(value)) fail(`Invalid type for '${field}': expected an integer.`, field, "invalid_type");
    if ((value as number) < 1) fail(`Invalid '${field}': integer below minimum value. Expected a value >= 1, but got ${String(value)} instead.`, field, "integer_below_min_value");
  }
  if (json.stream !== undefined && json.stream !== null && typeof json.stream !== "boolean") fail("Invalid type for 'stream': expected a boolean.", "stream", "invalid_type");
  if (json.stream_options !== undefined && json.stream_options !== null && json.stream !== true) {
    fail("The 'stream_options' parameter is only allowed when 'stream' is enabled.", "stream_options", null);
  }
  if (json.stop !== undefined && json.stop !== null) {
    const stop = json.stop;
    const ok = typeof stop === "string" || (Array.isArray(stop) && stop.length <= 4 && stop.every((s) => typeof s === "string"));
    if (!ok) fail("Invalid 'stop': expected a string or an array of at most 4 strings.", "stop", "invalid_type");
  }
  for (const [field, max] of [["temperature", 2], ["top_p", 1]] as const) {
    const value = json[field];
    if (value === undefined || value === null) continue;
    if (typeof value !== "number" || value < 0 || value > max) fail(`Invalid '${field}': expected a number between 0 and ${max}.`, field, "invalid_value");
  }

  const toolNames = json.tools === undefined || json.tools === null ? [] : checkTools(json.tools);
  const choice = json.tool_choice;
  if (choice !== undefined && choice !== null) {
    if (toolNames.length === 0) fail("Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified.", "tool_choice", null);
    if (typeof choice === "string") {
      if (!["none", "auto", "required"].includes(choice)) fail(`Invalid value: '${choice}'. Supported values are: 'none', 'auto', and 'required'.`, "tool_choice");
    } else if (isObject(choice)) {
      if (choice.type !== "function") fail(`Invalid value: '${String(choice.type)}'. Supported values are: 'function', 'allowed_tools' and 'custom'.`, "tool_choice.type");
      checkKeys(choice, ["type", "function"], "tool_choice");
      const fn = choice.function;
      if (!isObject(fn) || typeof fn.name !== "string") fail("Missing required parameter: 'tool_choice.function.name'.", "tool_choice.function.name", "missing_required_parameter");
      checkKeys(fn as Json, ["name"], "tool_choice.function");
      if (!toolNames.includes((fn as Json).name as string)) fail(`Invalid value for 'tool_choice': function '${String((fn as Json).name)}' is not among the tools.`, "tool_choice.function.name");
    } else {
      fail("Invalid type for 'tool_choice': expected a string or an object.", "tool_choice", "invalid_type");
    }
  }
  if (json.parallel_tool_calls !== undefined && toolNames.length === 0) fail("Invalid value for 'parallel_tool_calls': only allowed when 'tools' are specified.", "parallel_tool_calls", null);

  // Tool messages answer the tool calls of the assistant message just before them, every one of them.
  let open: Set<string> | undefined;
  let openAt = -1;
  (json.messages as unknown[]).forEach((message, i) => {
    const path = `messages[${i}]`;
    if (!isObject(message)) return fail(`Invalid type for '${path}': expected an object.`, path, "invalid_type");
    const role = message.role;
    if (typeof role !== "string" || !ROLES.includes(role)) fail(`Invalid value: '${String(role)}'. Supported values are: ${quoteList(ROLES)}.`, `${path}.role`);
    checkKeys(message, MESSAGE_KEYS[role as string] ?? [], path);
    if (role !== "tool" && open && open.size > 0) {
      fail(`An assistant message with 'tool_calls' must be followed by tool messages responding to each 'tool_call_id'. The following tool_call_ids did not have response messages: ${[...open].join(", ")}`, `messages[${openAt}].role`, null);
    }
    if (role !== "tool") open = undefined;
    const content = message.content;
    if (role === "assistant") {
      const hasCalls = message.tool_calls !== undefined && message.tool_calls !== null;
      if (content === undefined || content === null) {
        if (!hasCalls && message.function_call === undefined) fail(`Invalid value for '${path}.content': expected a string, got null.`, `${path}.content`, null);
      } else checkContent(content, role, `${path}.content`);
      if (hasCalls) {
        open = new Set(checkToolCalls(message.tool_calls, `${path}.tool_calls`));
        openAt = i;
      }
      return;
    }
    if (content === undefined || content === null) fail(`Missing required parameter: '${path}.content'.`, `${path}.content`, "missing_required_parameter");
    checkContent(content, role as string, `${path}.content`);
    if (role === "tool") {
      if (typeof message.tool_call_id !== "string") fail(`Missing required parameter: '${path}.tool_call_id'.`, `${path}.tool_call_id`, "missing_required_parameter");
      if (!open || !open.has(message.tool_call_id as string)) {
        fail("Invalid parameter: messages with role 'tool' must be a response to a preceeding message with 'tool_calls'.", `${path}.role`, null);
      }
      open!.delete(message.tool_call_id as string);
    }
  });
}

/** The trailing `tool` messages of a request (the results the model is to answer from), or undefined. */
export function trailingToolResults(json: Json | undefined): { tool_call_id: string; content: string }[] | undefined {
  const messages = Array.isArray(json?.messages) ? (json.messages as unknown[]).filter(isObject) : [];
  const out: { tool_call_id: string; content: string }[] = [];
  for (let i = messages.length - 1; i >= 0 && messages[i]!.role === "tool"; i--) {
    const message = messages[i]!;
    const content = typeof message.content === "string" ? message.content : Array.isArray(message.content) ? message.content.filter(isObject).map((p) => String(p.text ?? "")).join("") : "";
    out.unshift({ tool_call_id: String(message.tool_call_id), content });
  }
  return out.length > 0 ? out : undefined;
}

function sendOpenAIError(res: ServerResponse, error: OpenAIRequestError): void {
  sendJson(res, error.status, { error: { message: error.message, type: error.type, param: error.param, code: error.code } });
}

/** Answers `status` with `{error: {message, type, param, code}}`, as OpenAI does. */
export function replyOpenAIError(status: number, message: string, type = "invalid_request_error", code: string | null = null, headers: Record<string, string> = {}): Handler {
  return (_req, res) => sendJson(res, status, { error: { message, type, param: null, code } }, headers);
}

const words = (text: string): string[] => text.split(/(?<= )/).filter((piece) => piece.length > 0);

function usageOf(spec: OpenAIUsageSpec): Json {
  const usage: Json = { prompt_tokens: spec.prompt_tokens, completion_tokens: spec.completion_tokens, total_tokens: spec.prompt_tokens + spec.completion_tokens };
  if (spec.cached_tokens !== undefined) usage.prompt_tokens_details = { cached_tokens: spec.cached_tokens, audio_tokens: 0 };
  return usage;
}

/** A strict Chat Completions upstream: validates like OpenAI, then answers (see the file's comment). */
export function strictChat(options: StrictChatOptions = {}): Handler {
  let count = 0;
  return async (req: Received, res: ServerResponse) => {
    const path = (req.url.split("?")[0] ?? "").replace(/\/+$/, "");
    if (req.method !== "POST" || !path.endsWith("/chat/completions")) {
      return sendJson(res, 404, { error: { message: `Invalid URL (${req.method} ${req.url})`, type: "invalid_request_error", param: null, code: null } });
    }
    try {
      assertChatRequest(req.json, req.headers, options.apiKey);
    } catch (error) {
      if (!(error instanceof OpenAIRequestError)) throw error;
      return sendOpenAIError(res, error);
    }
    const json = req.json as Json;
    const model = json.model as string;
    const id = options.id ?? `chatcmpl-strict${++count}`;
    const created = Math.floor(Date.now() / 1000);
    const results = trailingToolResults(json);
    const hasTools = Array.isArray(json.tools) && json.tools.length > 0;
    const calls = !results && hasTools && options.toolCalls?.length ? options.toolCalls : undefined;
    const text = results
      ? options.afterToolResults
        ? options.afterToolResults(results)
        : `Tools said: ${results.map((r) => r.content).join(" | ")}`
      : calls
        ? options.toolText
        : (options.text ?? "Hello from the strict mock.");
    const finish = options.finishReason ?? (calls ? "tool_calls" : "stop");
    const usage = usageOf(options.usage ?? { prompt_tokens: 21, completion_tokens: 13 });

    if (json.stream !== true) {
      const message: Json = { role: "assistant", content: text ?? null, refusal: null, annotations: [] };
      if (calls) message.tool_calls = calls.map((call) => ({ id: call.id, type: "function", function: { name: call.name, arguments: call.args.join("") } }));
      return sendJson(res, 200, {
        id,
        object: "chat.completion",
        created,
        model,
        choices: [{ index: 0, message, logprobs: null, finish_reason: finish, ...options.choiceExtra }],
        usage,
        service_tier: "default",
        system_fingerprint: "fp_strict",
      });
    }

    const includeUsage = (json.stream_options as { include_usage?: unknown } | undefined)?.include_usage === true;
    // With include_usage, OpenAI sends `usage: null` on every chunk but the last.
    const chunk = (choices: unknown[], extra: Json = {}) =>
      `data: ${JSON.stringify({ id, object: "chat.completion.chunk", created, model, service_tier: "default", system_fingerprint: "fp_strict", choices, ...(includeUsage ? { usage: null } : {}), ...extra })}\n\n`;
    const choice = (delta: Json, finishReason: string | null = null, extra: Json = {}) => ({ index: 0, delta, logprobs: null, finish_reason: finishReason, ...extra });
    const body: string[] = [];
    if (text !== undefined) for (const piece of options.pieces && !results && !calls ? options.pieces : words(text)) body.push(chunk([choice({ content: piece })]));
    if (calls) {
      const order = options.order ?? calls.flatMap((call, c) => call.args.map((_, p) => [c, p] as const));
      const started = new Set<number>();
      for (const [c, p] of order) {
        const call = calls[c]!;
        const delta: Json = started.has(c)
          ? { index: c, function: { arguments: call.args[p] } }
          : { index: c, id: call.id, type: "function", function: { name: call.name, arguments: call.args[p] } };
        started.add(c);
        body.push(chunk([choice({ tool_calls: [delta] })]));
      }
    }
    res.writeHead(200, { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache" });
    const write = (event: string) => new Promise<void>((resolve) => (res.destroyed ? resolve() : res.write(event, () => resolve())));
    await write(chunk([choice({ role: "assistant", content: calls && text === undefined ? null : "", refusal: null })]));
    for (const [i, event] of body.entries()) {
      if (options.cutAfter !== undefined && i >= options.cutAfter) {
        res.socket?.destroy();
        return;
      }
      await write(event);
    }
    await write(chunk([choice({}, finish, options.choiceExtra)]));
    if (includeUsage) await write(chunk([], { usage }));
    await write("data: [DONE]\n\n");
    res.end();
  };
}
