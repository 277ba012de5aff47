/**
 * Handlers for `startMockUpstream` that behave like OpenAI's Responses API
 * (`POST /v1/responses`), following the wire format of the API reference and
 * the openai SDK's types (6.x `resources/responses/responses.d.ts`):
 *
 * - a non-streaming response object (`resp_…`, `object: "response"`,
 *   `status: "completed"`, `output` items, `usage` with token details). There is
 *   no `output_text` on the wire: the SDK computes it;
 * - a stream of named SSE events (`event: <type>` + `data: {…}`), each data
 *   object with a string `type` and a `sequence_number` counting from 0:
 *   response.created → response.in_progress → per output item
 *   response.output_item.added → (message) response.content_part.added →
 *   response.output_text.delta… → response.output_text.done →
 *   response.content_part.done / (function call)
 *   response.function_call_arguments.delta… → response.function_call_arguments.done
 *   → response.output_item.done → response.completed. No `data: [DONE]`.
 *   Delta events carry an `obfuscation` string unless the request sets
 *   `stream_options.include_obfuscation: false`;
 * - failures: HTTP errors `{"error":{"message","type","param","code"}}`, an
 *   in-stream `error` event, `response.failed`, a cut connection;
 * - a request validator (`assertResponsesRequest`) that answers 400 where the
 *   real API does, e.g. for Chat Completions fields or shapes leaking into a
 *   Responses request.
 */
import { randomBytes } from "node:crypto";
import type { IncomingHttpHeaders, ServerResponse } from "node:http";
import type { Handler, Received } from "./mock-upstream.js";

type Json = Record<string, unknown>;

// ---------------------------------------------------------------------------
// ids, framing, utilities

const hex = (bytes: number): string => randomBytes(bytes).toString("hex");
const ALNUM = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
function alnum(length: number): string {
  const bytes = randomBytes(length);
  let out = "";
  for (let i = 0; i < length; i++) out += ALNUM[bytes[i]! % 62];
  return out;
}

export const responseId = (): string => `resp_${hex(25)}`;
export const messageItemId = (): string => `msg_${hex(25)}`;
export const functionItemId = (): string => `fc_${hex(25)}`;
export const reasoningItemId = (): string => `rs_${hex(25)}`;
export const callId = (): string => `call_${alnum(24)}`;
const requestId = (): string => `req_${hex(16)}`;

function isObject(value: unknown): value is Json {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function write(res: ServerResponse, chunk: string): Promise<void> {
  return new Promise((resolve) => {
    if (res.destroyed || res.writableEnded) return resolve();
    res.write(chunk, () => resolve());
  });
}

/** One SSE event as OpenAI frames Responses events: `event: <type>`, one `data:` line, a blank line. */
export function sseEvent(data: { type: string } & Json): string {
  return `event: ${data.type}\ndata: ${JSON.stringify(data)}\n\n`;
}

function estimateTokens(value: unknown): number {
  if (value === undefined) return 0;
  const text = typeof value === "string" ? value : JSON.stringify(value);
  return Math.max(1, Math.ceil(text.length / 4));
}

function splitText(text: string): string[] {
  const pieces = text.split(/(?<= )/).filter((piece) => piece.length > 0);
  return pieces.length ? pieces : [text];
}

function fragments(json: string): string[] {
  const size = Math.max(1, Math.min(12, Math.ceil(json.length / 3)));
  const out: string[] = [];
  for (let i = 0; i < json.length; i += size) out.push(json.slice(i, i + size));
  return out.length ? out : [""];
}

function sendJson(res: ServerResponse, status: number, payload: unknown, headers: Record<string, string> = {}): void {
  const body = JSON.stringify(payload);
  res.writeHead(status, { "content-type": "application/json", "content-length": String(Buffer.byteLength(body)), "x-request-id": requestId(), ...headers });
  res.end(body);
}

function streamHeaders(extra: Record<string, string> = {}): Record<string, string> {
  return { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache", connection: "keep-alive", "x-request-id": requestId(), ...extra };
}

// ---------------------------------------------------------------------------
// errors

/** The body of an OpenAI HTTP error. */
export function openaiErrorBody(message: string, type: string, param: string | null = null, code: string | null = null) {
  return { error: { message, type, param, code } };
}

/** Thrown by `assertResponsesRequest`; the handlers answer it as a 400 (401 for keys). */
export class ResponsesRequestError extends Error {
  constructor(
    message: string,
    readonly param: string | null = null,
    readonly code: string | null = null,
    readonly status = 400,
    readonly errorType = "invalid_request_error",
  ) {
    super(message);
    this.name = "ResponsesRequestError";
  }
}

const DEFAULT_ERROR: Readonly<Record<number, { type: string; code: string | null; message: (model: string) => string }>> = {
  400: { type: "invalid_request_error", code: null, message: () => "Invalid request." },
  401: { type: "invalid_request_error", code: "invalid_api_key", message: () => "Incorrect API key provided: sk-mock****. You can find your API key at https://platform.openai.com/account/api-keys." },
  403: { type: "invalid_request_error", code: "unsupported_country_region_territory", message: () => "Country, region, or territory not supported" },
  404: { type: "invalid_request_error", code: "model_not_found", message: (model) => `The model \`${model}\` does not exist or you do not have access to it.` },
  429: { type: "tokens", code: "rate_limit_exceeded", message: (model) => `Rate limit reached for ${model} in organization org-mock on tokens per min (TPM): Limit 30000, Used 25265, Requested 8020. Please try again in 6.57s. Visit https://platform.openai.com/account/rate-limits to learn more.` },
  500: { type: "server_error", code: null, message: () => "The server had an error while processing your request. Sorry about that!" },
  503: { type: "server_error", code: null, message: () => "The engine is currently overloaded, please try again later" },
};

/**
 * Answers `status` with an OpenAI-shaped error, e.g. `replyResponsesError(429)`
 * (type "tokens", code "rate_limit_exceeded") or `replyResponsesError(404, "model_not_found")`.
 */
export function replyResponsesError(status: number, code?: string | null, message?: string, headers: Record<string, string> = {}, type?: string): Handler {
  return (req, res) => {
    const model = typeof req.json?.model === "string" ? req.json.model : "unknown";
    const known = DEFAULT_ERROR[status] ?? { type: status >= 500 ? "server_error" : "invalid_request_error", code: null, message: () => `Error ${status}` };
    sendJson(res, status, openaiErrorBody(message ?? known.message(model), type ?? known.type, null, code === undefined ? known.code : code), headers);
  };
}

// ---------------------------------------------------------------------------
// request validation

/** Top-level fields of a create-response request (openai 6.x `ResponseCreateParamsBase`, plus max_tool_calls). */
const RESPONSE_FIELDS = [
  "background",
  "context_management",
  "conversation",
  "include",
  "input",
  "instructions",
  "max_output_tokens",
  "max_tool_calls",
  "metadata",
  "model",
  "moderation",
  "parallel_tool_calls",
  "previous_response_id",
  "prompt",
  "prompt_cache_key",
  "prompt_cache_options",
  "prompt_cache_retention",
  "reasoning",
  "safety_identifier",
  "service_tier",
  "store",
  "stream",
  "stream_options",
  "temperature",
  "text",
  "tool_choice",
  "tools",
  "top_logprobs",
  "top_p",
  "truncation",
  "user",
];
/** Chat Completions fields the Responses API names differently. */
const MOVED: Readonly<Record<string, string>> = {
  max_tokens: "max_output_tokens",
  max_completion_tokens: "max_output_tokens",
  response_format: "text.format",
};
const MESSAGE_ROLES = ["user", "assistant", "system", "developer"];
const INPUT_PARTS = ["input_text", "input_image", "input_file"];
const OUTPUT_PARTS = ["output_text", "refusal"];
const ITEM_TYPES = [
  "message",
  "function_call",
  "function_call_output",
  "reasoning",
  "item_reference",
  "file_search_call",
  "computer_call",
  "computer_call_output",
  "web_search_call",
  "image_generation_call",
  "code_interpreter_call",
  "local_shell_call",
  "local_shell_call_output",
  "shell_call",
  "shell_call_output",
  "apply_patch_call",
  "apply_patch_call_output",
  "mcp_list_tools",
  "mcp_approval_request",
  "mcp_approval_response",
  "mcp_call",
  "custom_tool_call",
  "custom_tool_call_output",
  "compaction",
  "tool_search_call",
  "tool_search_output",
];

const supported = (values: readonly string[]) =>
  values.length === 2 ? `'${values[0]}' and '${values[1]}'` : `${values.slice(0, -1).map((v) => `'${v}'`).join(", ")}, and '${values[values.length - 1]}'`;
const fail = (message: string, param: string | null = null, code: string | null = null): never => {
  throw new ResponsesRequestError(message, param, code);
};
const unknownParameter = (param: string): never => fail(`Unknown parameter: '${param}'.`, param, "unknown_parameter");
const missing = (param: string): never => fail(`Missing required parameter: '${param}'.`, param, "missing_required_parameter");
const invalidValue = (param: string, value: unknown, values: readonly string[]): never =>
  fail(`Invalid value: '${String(value)}'. Supported values are: ${supported(values)}.`, param, "invalid_value");
function typeName(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  return typeof value === "object" ? "an object" : `a ${typeof value}`;
}
const invalidType = (param: string, expected: string, value: unknown): never =>
  fail(`Invalid type for '${param}': expected ${expected}, but got ${typeName(value)} instead.`, param, "invalid_type");

function checkKeys(value: Json, allowed: readonly string[], path: string): void {
  for (const key of Object.keys(value)) if (!allowed.includes(key)) unknownParameter(`${path}.${key}`);
}

function checkMessage(item: Json, path: string): void {
  const role = item.role;
  if (typeof role !== "string" || !MESSAGE_ROLES.includes(role)) invalidValue(`${path}.role`, role, ["assistant", "system", "developer", "user"]);
  checkKeys(item, role === "assistant" ? ["type", "role", "content", "id", "status", "phase"] : ["type", "role", "content", "status", "id"], path);
  const content = item.content;
  if (content === undefined) missing(`${path}.content`);
  if (typeof content === "string") return;
  if (!Array.isArray(content)) return void invalidType(`${path}.content`, "one of a string or array of input items", content);
  const parts = role === "assistant" ? OUTPUT_PARTS : INPUT_PARTS;
  content.forEach((part, j) => {
    const partPath = `${path}.content[${j}]`;
    if (!isObject(part)) return invalidType(partPath, "an object", part);
    if (typeof part.type !== "string" || !parts.includes(part.type)) {
      if (role === "assistant") invalidValue(partPath, part.type, OUTPUT_PARTS);
      invalidValue(partPath, part.type, ["input_text", "input_image", "output_text", "refusal", "input_file", "computer_screenshot", "summary_text"]);
    }
    if ((part.type === "input_text" || part.type === "output_text") && typeof part.text !== "string") missing(`${partPath}.text`);
    if (part.type === "refusal" && typeof part.refusal !== "string") missing(`${partPath}.refusal`);
  });
}

function checkTools(tools: unknown): void {
  if (!Array.isArray(tools)) return void invalidType("tools", "an array", tools);
  tools.forEach((tool, i) => {
    const path = `tools[${i}]`;
    if (!isObject(tool)) return invalidType(path, "an object", tool);
    if (typeof tool.type !== "string") missing(`${path}.type`);
    if (tool.type === "function") {
      // The Chat Completions shape {"type":"function","function":{…}} fails here first.
      if (typeof tool.name !== "string") missing(`${path}.name`);
      checkKeys(tool, ["type", "name", "description", "parameters", "strict", "defer_loading"], path);
      if (tool.parameters !== undefined && tool.parameters !== null && !isObject(tool.parameters)) invalidType(`${path}.parameters`, "an object", tool.parameters);
    }
  });
}

/**
 * Throws a `ResponsesRequestError` (→ 400) when the real Responses API would
 * reject this body: unknown top-level parameters (and Chat Completions names
 * such as max_tokens, messages, response_format, stream_options.include_usage),
 * a missing model, input items with roles/content part types the API does not
 * take (`role: "tool"`, `type: "text"` parts, `input_text` in an assistant
 * message), function_call items with non-string arguments, function_call_output
 * items whose call_id matches no earlier function_call (when there is no
 * previous_response_id/conversation), Chat-shaped tools and tool_choice,
 * max_output_tokens below 16.
 */
export function assertResponsesRequest(json: unknown): void {
  if (!isObject(json)) return void fail("We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON.)");
  for (const key of Object.keys(json)) {
    if (RESPONSE_FIELDS.includes(key)) continue;
    const moved = MOVED[key];
    if (moved) fail(`Unsupported parameter: '${key}'. In the Responses API, this parameter has moved to '${moved}'.`, key, "unsupported_parameter");
    unknownParameter(key);
  }
  if (typeof json.model !== "string" && json.prompt === undefined) missing("model");
  if (json.stream !== undefined && json.stream !== null && typeof json.stream !== "boolean") invalidType("stream", "a boolean", json.stream);
  if (json.stream_options !== undefined && json.stream_options !== null) {
    if (!isObject(json.stream_options)) invalidType("stream_options", "an object", json.stream_options);
    checkKeys(json.stream_options as Json, ["include_obfuscation"], "stream_options");
    if (json.stream !== true) fail("Invalid value for 'stream_options': stream_options is only allowed when 'stream' is true.", "stream_options", "invalid_value");
  }
  const maxOutput = json.max_output_tokens;
  if (maxOutput !== undefined && maxOutput !== null) {
    if (typeof maxOutput !== "number" || !Number.isInteger(maxOutput)) invalidType("max_output_tokens", "an integer", maxOutput);
    if ((maxOutput as number) < 16) {
      fail(`Invalid 'max_output_tokens': integer below minimum value. Expected a value >= 16, but got ${String(maxOutput)} instead.`, "max_output_tokens", "integer_below_min_value");
    }
  }
  if (json.text !== undefined && json.text !== null) {
    if (!isObject(json.text)) invalidType("text", "an object", json.text);
    checkKeys(json.text as Json, ["format", "verbosity"], "text");
  }
  if (json.tools !== undefined && json.tools !== null) checkTools(json.tools);
  const choice = json.tool_choice;
  if (choice !== undefined && choice !== null) {
    if (typeof choice === "string") {
      if (!["auto", "none", "required"].includes(choice)) invalidValue("tool_choice", choice, ["none", "auto", "required"]);
    } else if (isObject(choice)) {
      if (choice.type === "function" && typeof choice.name !== "string") missing("tool_choice.name");
    } else {
      invalidType("tool_choice", "an object or string", choice);
    }
  }

  const input = json.input;
  if (input === undefined || input === null || typeof input === "string") return;
  if (!Array.isArray(input)) return void invalidType("input", "one of a string or array of input items", input);
  const calls = new Set<string>();
  const continues = typeof json.previous_response_id === "string" || json.conversation !== undefined;
  input.forEach((item, i) => {
    const path = `input[${i}]`;
    if (!isObject(item)) return invalidType(path, "an object", item);
    const type = item.type ?? (item.role !== undefined ? "message" : undefined);
    if (typeof type !== "string" || !ITEM_TYPES.includes(type)) return invalidValue(`${path}.type`, type, ITEM_TYPES);
    switch (type) {
      case "message":
        checkMessage(item, path);
        break;
      case "function_call":
        checkKeys(item, ["type", "id", "call_id", "name", "arguments", "status", "namespace", "caller"], path);
        if (typeof item.call_id !== "string") missing(`${path}.call_id`);
        if (typeof item.name !== "string") missing(`${path}.name`);
        if (item.arguments === undefined) missing(`${path}.arguments`);
        if (typeof item.arguments !== "string") invalidType(`${path}.arguments`, "a string", item.arguments);
        calls.add(item.call_id as string);
        break;
      case "function_call_output":
        checkKeys(item, ["type", "id", "call_id", "output", "status"], path);
        if (typeof item.call_id !== "string") missing(`${path}.call_id`);
        if (item.output === undefined) missing(`${path}.output`);
        if (typeof item.output !== "string" && !Array.isArray(item.output)) invalidType(`${path}.output`, "one of a string or array", item.output);
        if (!continues && !calls.has(item.call_id as string)) fail(`No tool call found for function call output with call_id ${String(item.call_id)}.`, "input");
        break;
    }
  });
}

export interface ResponsesHeaderOptions {
  /** When set, `Authorization: Bearer` must carry exactly this key. */
  readonly apiKey?: string;
}

/** Checks the credential as the API does (401 without `Authorization: Bearer`, or with another key than `apiKey`). */
export function checkResponsesHeaders(headers: IncomingHttpHeaders, options: ResponsesHeaderOptions = {}): void {
  const key = /^Bearer (.+)$/i.exec(headers.authorization ?? "")?.[1];
  if (!key) {
    throw new ResponsesRequestError(
      "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field (with blank username) if you're accessing the API from your browser and are prompted for a username and password. You can obtain an API key from https://platform.openai.com/account/API-keys.",
      null,
      null,
      401,
    );
  }
  if (options.apiKey !== undefined && key !== options.apiKey) {
    const shown = key.length > 8 ? `${key.slice(0, 3)}${"*".repeat(8)}${key.slice(-4)}` : key;
    throw new ResponsesRequestError(`Incorrect API key provided: ${shown}. You can find your API key at https://platform.openai.com/account/api-keys.`, null, "invalid_api_key", 401);
  }
}

function pathOf(req: Received): string {
  return (req.url.split("?")[0] ?? "").replace(/\/+$/, "");
}

/** `/v1/responses` or `<prefix>/v1/responses`, never `/v1/v1/responses`. */
function isResponsesPath(req: Received): boolean {
  const path = pathOf(req);
  return path.endsWith("/v1/responses") && !path.endsWith("/v1/v1/responses");
}

function admit(req: Received, res: ServerResponse, options: { apiKey?: string; validate?: boolean }): boolean {
  if (req.method !== "POST" || !isResponsesPath(req)) {
    sendJson(res, 404, openaiErrorBody(`Invalid URL (${req.method} ${pathOf(req) || "/"})`, "invalid_request_error"));
    return false;
  }
  if (options.validate === false) return true;
  try {
    checkResponsesHeaders(req.headers, options.apiKey === undefined ? {} : { apiKey: options.apiKey });
    assertResponsesRequest(req.json);
    return true;
  } catch (error) {
    if (!(error instanceof ResponsesRequestError)) throw error;
    sendJson(res, error.status, openaiErrorBody(error.message, error.errorType, error.param, error.code));
    return false;
  }
}

// ---------------------------------------------------------------------------
// response objects and events

export interface ResponsesUsage {
  input_tokens: number;
  output_tokens: number;
  cached_tokens: number;
  reasoning_tokens: number;
}

/** An output item of an answer. */
export type OutputItem =
  | { readonly type: "reasoning"; readonly id: string }
  | { readonly type: "message"; readonly id: string; readonly text: string; readonly pieces?: readonly string[] }
  | { readonly type: "function_call"; readonly id: string; readonly callId: string; readonly name: string; readonly arguments: string };

function itemJson(item: OutputItem, status: "in_progress" | "completed" | "incomplete"): Json {
  switch (item.type) {
    case "reasoning":
      return { id: item.id, type: "reasoning", summary: [] };
    case "message":
      return {
        id: item.id,
        type: "message",
        status,
        content: status === "in_progress" ? [] : [{ type: "output_text", annotations: [], logprobs: [], text: item.text }],
        role: "assistant",
      };
    case "function_call":
      return { id: item.id, type: "function_call", status, arguments: status === "in_progress" ? "" : item.arguments, call_id: item.callId, name: item.name };
  }
}

function usageJson(usage: ResponsesUsage) {
  return {
    input_tokens: usage.input_tokens,
    input_tokens_details: { cached_tokens: usage.cached_tokens },
    output_tokens: usage.output_tokens,
    output_tokens_details: { reasoning_tokens: usage.reasoning_tokens },
    total_tokens: usage.input_tokens + usage.output_tokens,
  };
}

function echoTools(tools: unknown): unknown[] {
  if (!Array.isArray(tools)) return [];
  return tools.map((tool) => (isObject(tool) && tool.type === "function" ? { description: null, strict: true, ...tool } : tool));
}

/**
 * A response object echoing the request's settings, like the API's. `status`
 * in_progress for response.created / response.in_progress, completed (with
 * usage and completed_at) at the end.
 */
export function responseObject(
  request: Json,
  fields: { id: string; createdAt: number; status: "in_progress" | "completed" | "failed" | "incomplete"; output: readonly OutputItem[]; usage: ResponsesUsage | null; error?: { code: string; message: string } | null },
) {
  const done = fields.status !== "in_progress";
  const reasoning = isObject(request.reasoning) ? request.reasoning : {};
  return {
    id: fields.id,
    object: "response",
    created_at: fields.createdAt,
    status: fields.status,
    background: request.background === true,
    completed_at: fields.status === "completed" ? Math.floor(Date.now() / 1000) : null,
    error: fields.error ?? null,
    incomplete_details: null,
    instructions: request.instructions ?? null,
    max_output_tokens: request.max_output_tokens ?? null,
    max_tool_calls: request.max_tool_calls ?? null,
    model: typeof request.model === "string" ? request.model : "unknown",
    output: fields.output.map((item) => itemJson(item, "completed")),
    parallel_tool_calls: request.parallel_tool_calls ?? true,
    previous_response_id: request.previous_response_id ?? null,
    prompt_cache_key: request.prompt_cache_key ?? null,
    prompt_cache_retention: request.prompt_cache_retention ?? null,
    reasoning: { effort: reasoning.effort ?? null, summary: reasoning.summary ?? null },
    safety_identifier: request.safety_identifier ?? null,
    service_tier: done ? "default" : (request.service_tier ?? "auto"),
    store: request.store ?? true,
    temperature: request.temperature ?? 1.0,
    text: { format: { type: "text" }, verbosity: "medium", ...(isObject(request.text) ? request.text : {}) },
    tool_choice: request.tool_choice ?? "auto",
    tools: echoTools(request.tools),
    top_logprobs: request.top_logprobs ?? 0,
    top_p: request.top_p ?? 1.0,
    truncation: request.truncation ?? "disabled",
    usage: fields.usage ? usageJson(fields.usage) : null,
    user: request.user ?? null,
    metadata: request.metadata ?? {},
  };
}

/** Numbers stream events and renders them as SSE. */
class EventWriter {
  private sequence = 0;
  readonly events: string[] = [];
  constructor(private readonly obfuscate: boolean) {}
  push(type: string, fields: Json = {}): void {
    this.events.push(sseEvent({ type, sequence_number: this.sequence++, ...fields }));
  }
  /** Delta events carry a random `obfuscation` string (padding against length side channels). */
  delta(type: string, fields: Json): void {
    this.push(type, this.obfuscate ? { ...fields, obfuscation: alnum(2 + (randomBytes(1)[0]! % 14)) } : fields);
  }
}

/** Events of one output item, from output_item.added to output_item.done; `upTo` stops after that many deltas (for failures). */
function itemEvents(w: EventWriter, item: OutputItem, index: number, upTo = Infinity): boolean {
  w.push("response.output_item.added", { output_index: index, item: itemJson(item, "in_progress") });
  if (item.type === "message") {
    const part = { type: "output_text", annotations: [], logprobs: [], text: "" };
    w.push("response.content_part.added", { item_id: item.id, output_index: index, content_index: 0, part });
    const pieces = item.pieces ?? splitText(item.text);
    for (const [n, delta] of pieces.entries()) {
      if (n >= upTo) return false;
      w.delta("response.output_text.delta", { item_id: item.id, output_index: index, content_index: 0, delta, logprobs: [] });
    }
    w.push("response.output_text.done", { item_id: item.id, output_index: index, content_index: 0, text: item.text, logprobs: [] });
    w.push("response.content_part.done", { item_id: item.id, output_index: index, content_index: 0, part: { ...part, text: item.text } });
  } else if (item.type === "function_call") {
    for (const [n, delta] of fragments(item.arguments).entries()) {
      if (n >= upTo) return false;
      w.delta("response.function_call_arguments.delta", { item_id: item.id, output_index: index, delta });
    }
    w.push("response.function_call_arguments.done", { item_id: item.id, output_index: index, name: item.name, arguments: item.arguments });
  }
  w.push("response.output_item.done", { output_index: index, item: itemJson(item, "completed") });
  return true;
}

/** The full event sequence of a completed streamed response. */
export function responseEvents(request: Json, output: readonly OutputItem[], usage: ResponsesUsage, id = responseId()): string[] {
  const w = new EventWriter(obfuscationOn(request));
  const createdAt = Math.floor(Date.now() / 1000);
  const base = { id, createdAt };
  w.push("response.created", { response: responseObject(request, { ...base, status: "in_progress", output: [], usage: null }) });
  w.push("response.in_progress", { response: responseObject(request, { ...base, status: "in_progress", output: [], usage: null }) });
  output.forEach((item, index) => itemEvents(w, item, index));
  w.push("response.completed", { response: responseObject(request, { ...base, status: "completed", output, usage }) });
  return w.events;
}

function obfuscationOn(request: Json): boolean {
  return !(isObject(request.stream_options) && request.stream_options.include_obfuscation === false);
}

/** The outputs of trailing function_call_output items of the input, or undefined when the input does not end with any. */
export function lastFunctionOutputs(request: Json | undefined): string[] | undefined {
  const input = Array.isArray(request?.input) ? (request.input as unknown[]).filter(isObject) : [];
  const outputs: string[] = [];
  for (let i = input.length - 1; i >= 0; i--) {
    const item = input[i]!;
    if (item.type !== "function_call_output") break;
    const output = item.output;
    outputs.unshift(typeof output === "string" ? output : Array.isArray(output) ? output.filter(isObject).map((p) => (typeof p.text === "string" ? p.text : "")).join("") : "");
  }
  return outputs.length ? outputs : undefined;
}

export interface ReplyResponsesOptions {
  /** The answer's text (default "Hello from the mock."). */
  readonly text?: string;
  /** Function calls to answer with when the request has function tools (arguments: an object, or the raw JSON string). */
  readonly functionCalls?: readonly { readonly name: string; readonly arguments: Record<string, unknown> | string; readonly callId?: string }[];
  /** A reasoning item (empty summary) before the answer, as reasoning models send. */
  readonly reasoning?: boolean;
  /** The answer after a tool round trip, from the function_call_output texts (default `The tool returned: …`). */
  readonly afterToolOutput?: (outputs: readonly string[]) => string;
  readonly usage?: Partial<ResponsesUsage>;
  readonly delayMs?: number;
  /** Require `Authorization: Bearer <apiKey>`. */
  readonly apiKey?: string;
  /** Skip header and body validation (default: validate like the real API). */
  readonly validate?: boolean;
  readonly headers?: Record<string, string>;
}

function plan(request: Json, options: ReplyResponsesOptions): { output: OutputItem[]; usage: ResponsesUsage } {
  const output: OutputItem[] = [];
  if (options.reasoning) output.push({ type: "reasoning", id: reasoningItemId() });
  const outputs = lastFunctionOutputs(request);
  const hasFunctions = Array.isArray(request.tools) && request.tools.some((tool) => isObject(tool) && tool.type === "function");
  if (outputs) {
    output.push({ type: "message", id: messageItemId(), text: options.afterToolOutput ? options.afterToolOutput(outputs) : `The tool returned: ${outputs.join(" | ")}` });
  } else if (hasFunctions && options.functionCalls?.length) {
    for (const call of options.functionCalls) {
      const args = typeof call.arguments === "string" ? call.arguments : JSON.stringify(call.arguments);
      output.push({ type: "function_call", id: functionItemId(), callId: call.callId ?? callId(), name: call.name, arguments: args });
    }
  } else {
    output.push({ type: "message", id: messageItemId(), text: options.text ?? "Hello from the mock." });
  }
  const reasoningTokens = options.usage?.reasoning_tokens ?? (options.reasoning ? 64 : 0);
  const usage: ResponsesUsage = {
    input_tokens: estimateTokens({ instructions: request.instructions, input: request.input, tools: request.tools }),
    // output_tokens includes the reasoning tokens, as the API counts them.
    output_tokens: reasoningTokens + output.reduce((sum, item) => sum + (item.type === "message" ? estimateTokens(item.text) : item.type === "function_call" ? estimateTokens(item.arguments) : 0), 0),
    cached_tokens: 0,
    reasoning_tokens: reasoningTokens,
    ...options.usage,
  };
  return { output, usage };
}

/**
 * Answers `POST /v1/responses` like the API: validates (400/401 as the API
 * would), then a completed response naming the request's model, streamed as
 * SSE events when the body has `stream: true`. With function tools in the
 * request and `functionCalls` given, answers function_call items; when the
 * input ends with function_call_output items, answers a text quoting them.
 */
export function replyResponses(options: ReplyResponsesOptions = {}): Handler {
  return async (req, res) => {
    if (!admit(req, res, options)) return;
    const request = req.json ?? {};
    const { output, usage } = plan(request, options);
    if (request.stream === true) {
      res.writeHead(200, streamHeaders(options.headers));
      for (const event of responseEvents(request, output, usage)) {
        await write(res, event);
        if (options.delayMs) await sleep(options.delayMs);
      }
      res.end();
      return;
    }
    sendJson(res, 200, responseObject(request, { id: responseId(), createdAt: Math.floor(Date.now() / 1000), status: "completed", output, usage }), options.headers);
  };
}

// ---------------------------------------------------------------------------
// failing streams

interface FailingStreamOptions {
  /** Text pieces streamed (a message item, its content part, deltas) before the failure. Default: none, the failure comes before any output. */
  readonly afterText?: readonly string[];
  readonly delayMs?: number;
}

async function writeAll(res: ServerResponse, events: readonly string[], delayMs?: number): Promise<void> {
  for (const event of events) {
    await write(res, event);
    if (delayMs) await sleep(delayMs);
  }
}

/** created + in_progress (+ a partial message when `afterText`), returning the writer to continue. */
function preamble(request: Json, id: string, createdAt: number, afterText: readonly string[] | undefined): EventWriter {
  const w = new EventWriter(obfuscationOn(request));
  w.push("response.created", { response: responseObject(request, { id, createdAt, status: "in_progress", output: [], usage: null }) });
  w.push("response.in_progress", { response: responseObject(request, { id, createdAt, status: "in_progress", output: [], usage: null }) });
  if (afterText?.length) itemEvents(w, { type: "message", id: messageItemId(), text: afterText.join(""), pieces: afterText }, 0, afterText.length);
  return w;
}

export interface StreamResponsesErrorOptions extends FailingStreamOptions {
  /** Error code (default rate_limit_exceeded), message and type (default "tokens", as OpenAI's rate limits have). */
  readonly code?: string;
  readonly message?: string;
  readonly type?: string;
  /**
   * nested (default, what the API sends in production):
   * `{"type":"error","sequence_number":2,"error":{"type","code","message","param"}}` — the openai SDK
   * throws an APIError on it. flat (the documented `ResponseErrorEvent`):
   * `{"type":"error","code","message","param","sequence_number"}` — the SDK yields it as an event.
   */
  readonly shape?: "nested" | "flat";
  /** Send response.created and response.in_progress first (default true, as the API does); false makes `error` the very first event. */
  readonly lifecycle?: boolean;
}

/**
 * A 200 stream that fails in-band with an `event: error` (default: code
 * rate_limit_exceeded, before any output item), then ends cleanly: no
 * response.completed, no [DONE].
 */
export function streamResponsesError(options: StreamResponsesErrorOptions = {}): Handler {
  return async (req, res) => {
    const request = req.json ?? {};
    const model = typeof request.model === "string" ? request.model : "unknown";
    const code = options.code ?? "rate_limit_exceeded";
    const message = options.message ?? (code === "rate_limit_exceeded" ? DEFAULT_ERROR[429]!.message(model) : "An error occurred while processing your request.");
    const type = options.type ?? (code === "rate_limit_exceeded" ? "tokens" : "server_error");
    const w = options.lifecycle === false ? new EventWriter(obfuscationOn(request)) : preamble(request, responseId(), Math.floor(Date.now() / 1000), options.afterText);
    if (options.shape === "flat") w.push("error", { code, message, param: null });
    else w.push("error", { error: { type, code, message, param: null } });
    res.writeHead(200, streamHeaders());
    await writeAll(res, w.events, options.delayMs);
    res.end();
  };
}

export interface StreamResponsesFailedOptions extends FailingStreamOptions {
  /** The response's error (default server_error). */
  readonly code?: string;
  readonly message?: string;
}

/**
 * A 200 stream whose response fails: created, in_progress (and optional
 * partial text), then `response.failed` with `response.status: "failed"` and
 * `response.error: {code, message}`. Note: the openai SDK does not throw on
 * it; `responses.stream().finalResponse()` resolves with the failed response.
 */
export function streamResponsesFailed(options: StreamResponsesFailedOptions = {}): Handler {
  return async (req, res) => {
    const request = req.json ?? {};
    const id = responseId();
    const createdAt = Math.floor(Date.now() / 1000);
    const w = preamble(request, id, createdAt, options.afterText);
    const error = { code: options.code ?? "server_error", message: options.message ?? "An error occurred while processing your request. You can retry your request, or contact us through our help center at help.openai.com if the error persists." };
    const partial: OutputItem[] = options.afterText?.length ? [{ type: "message", id: messageItemId(), text: options.afterText.join("") }] : [];
    const failed = responseObject(request, { id, createdAt, status: "failed", output: [], usage: null, error });
    w.push("response.failed", { response: { ...failed, output: partial.map((item) => itemJson(item, "incomplete")) } });
    res.writeHead(200, streamHeaders());
    await writeAll(res, w.events, options.delayMs);
    res.end();
  };
}

export interface StreamResponsesCutOptions {
  /** Text pieces streamed before the connection is cut (default three). */
  readonly pieces?: readonly string[];
  readonly delayMs?: number;
}

/**
 * A 200 stream that dies mid-answer: created, in_progress, a message item and
 * its content part, some output_text deltas, then the socket is destroyed.
 */
export function streamResponsesCut(options: StreamResponsesCutOptions = {}): Handler {
  return async (req, res) => {
    const request = req.json ?? {};
    const w = preamble(request, responseId(), Math.floor(Date.now() / 1000), options.pieces ?? ["Hello ", "from ", "the "]);
    res.writeHead(200, streamHeaders());
    await writeAll(res, w.events, options.delayMs);
    await sleep(20);
    res.destroy();
  };
}
