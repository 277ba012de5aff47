/**
 * Handlers for `startMockUpstream` that behave like the Anthropic Messages API
 * (`POST /v1/messages`, `POST /v1/messages/count_tokens`), as close to the real
 * wire format as the documentation and the official SDK's types allow:
 *
 * - a non-streaming Message (`msg_01…` id, `type: "message"`, content blocks,
 *   `stop_reason`, `stop_sequence`, `stop_details`, usage with the cache fields);
 * - a stream of named SSE events (every event has an `event:` line):
 *   message_start (usage with input tokens) → per block content_block_start /
 *   content_block_delta… / content_block_stop (a `ping` after the first start)
 *   → message_delta (stop_reason + cumulative usage) → message_stop. Thinking
 *   blocks end with a signature_delta; tool_use input arrives as an empty
 *   `partial_json` and then several fragments;
 * - errors as `{"type":"error","error":{"type","message"},"request_id"}` with a
 *   `request-id` header, and in-stream as `event: error`;
 * - a request validator (`assertAnthropicRequest`) that rejects with 400
 *   invalid_request_error what the real API rejects (missing max_tokens, unknown
 *   fields, OpenAI-shaped tools or messages, tool_use/tool_result pairing,
 *   thinking rules, per-API-version rules), so a bad translation fails a test.
 *
 * Every handler here answers the request it is given whatever its path unless
 * stated; `anthropicUpstream()` routes by path like the real API.
 */
import { randomBytes } from "node:crypto";
import type { IncomingHttpHeaders, ServerResponse } from "node:http";
import type { Handler, Received } from "./mock-upstream.js";

type Json = Record<string, unknown>;

// ---------------------------------------------------------------------------
// ids, framing, small utilities

const BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

function base62(length: number): string {
  const bytes = randomBytes(length);
  let out = "";
  for (let i = 0; i < length; i++) out += BASE62[bytes[i]! % 62];
  return out;
}

/** `msg_01` + 22 base62 characters, like `msg_01UodR8c3ezAK8rAfi8HAs8g`. */
export const messageId = (): string => `msg_01${base62(22)}`;
/** `toolu_01` + 22 base62 characters. */
export const toolUseId = (): string => `toolu_01${base62(22)}`;
/** `req_01` + 22 base62 characters, the `request-id` header and the error body's `request_id`. */
export const requestId = (): string => `req_01${base62(22)}`;
/** An opaque base64 thinking signature. */
const signature = (): string => randomBytes(96).toString("base64");

function isObject(value: unknown): value is Json {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Writes and resolves once the bytes are handed to the socket (so a later `destroy()` cannot discard them). */
function write(res: ServerResponse, chunk: string): Promise<void> {
  return new Promise((resolve) => {
    if (res.destroyed || res.writableEnded) return resolve();
    res.write(chunk, () => resolve());
  });
}

/** One SSE event as Anthropic frames it: an `event:` line, one `data:` line, a blank line. */
export function sseEvent(event: string, data: unknown): string {
  return `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
}

/** A rough token count (about four characters a token), never below 1. */
export function estimateTokens(value: unknown): number {
  if (value === undefined) return 0;
  const text = typeof value === "string" ? value : JSON.stringify(value);
  return Math.max(1, Math.ceil(text.length / 4));
}

function splitText(text: string): string[] {
  const pieces = text.split(/(?<= )/).filter((piece) => piece.length > 0);
  return pieces.length ? pieces : [text];
}

/** Splits serialized tool input into several fragments, the way the API streams `partial_json` (never one whole object). */
export function jsonFragments(json: string): string[] {
  const size = Math.max(1, Math.min(12, Math.ceil(json.length / 3)));
  const out: string[] = [];
  for (let i = 0; i < json.length; i += size) out.push(json.slice(i, i + size));
  return out;
}

function streamHeaders(extra: Record<string, string> = {}): Record<string, string> {
  return {
    "content-type": "text/event-stream; charset=utf-8",
    "cache-control": "no-cache",
    connection: "keep-alive",
    "request-id": requestId(),
    ...extra,
  };
}

function sendJson(res: ServerResponse, status: number, payload: unknown, headers: Record<string, string> = {}): void {
  const body = JSON.stringify(payload);
  res.writeHead(status, {
    "content-type": "application/json",
    "content-length": String(Buffer.byteLength(body)),
    ...headers,
  });
  res.end(body);
}

// ---------------------------------------------------------------------------
// errors

/** The status the API uses for each error type (docs: "HTTP errors"). */
export const ANTHROPIC_ERROR_STATUS: Readonly<Record<string, number>> = {
  invalid_request_error: 400,
  authentication_error: 401,
  billing_error: 402,
  permission_error: 403,
  not_found_error: 404,
  conflict_error: 409,
  request_too_large: 413,
  rate_limit_error: 429,
  api_error: 500,
  timeout_error: 504,
  overloaded_error: 529,
};

const DEFAULT_MESSAGES: Readonly<Record<string, string>> = {
  overloaded_error: "Overloaded",
  api_error: "Internal server error",
  rate_limit_error: "Number of request tokens has exceeded your per-minute rate limit (https://docs.claude.com/en/api/rate-limits); see the response headers for current usage. Please reduce the prompt length or the maximum tokens requested, or try again later. You may also contact sales at https://www.anthropic.com/contact-sales to discuss your options for a rate limit increase.",
  authentication_error: "invalid x-api-key",
  permission_error: "Your API key does not have permission to use the specified resource.",
  not_found_error: "Not Found",
  billing_error: "Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing to upgrade or purchase credits.",
  request_too_large: "Request exceeds the maximum allowed number of bytes.",
  timeout_error: "Request timed out",
  conflict_error: "Conflict",
  invalid_request_error: "Invalid request",
};

/** The body of an Anthropic error response. */
export function anthropicErrorBody(type: string, message = DEFAULT_MESSAGES[type] ?? type, id = requestId()) {
  return { type: "error", error: { type, message }, request_id: id };
}

/** Thrown by `assertAnthropicRequest`; `replyMessages` turns it into the API's error answer. */
export class AnthropicRequestError extends Error {
  constructor(
    message: string,
    readonly errorType = "invalid_request_error",
    readonly status = ANTHROPIC_ERROR_STATUS[errorType] ?? 400,
  ) {
    super(message);
    this.name = "AnthropicRequestError";
  }
}

function sendAnthropicError(res: ServerResponse, status: number, type: string, message?: string, headers: Record<string, string> = {}): void {
  const id = requestId();
  const extra: Record<string, string> = { "request-id": id, ...headers };
  if (status === 529 || status === 500) extra["x-should-retry"] ??= "true";
  sendJson(res, status, anthropicErrorBody(type, message, id), extra);
}

/**
 * Answers `status` with an Anthropic-shaped error, e.g. `replyAnthropicError(529, "overloaded_error")`
 * or `replyAnthropicError(429, "rate_limit_error", undefined, { "retry-after": "12" })`.
 */
export function replyAnthropicError(status: number, type: string, message?: string, headers: Record<string, string> = {}): Handler {
  return (_req, res) => sendAnthropicError(res, status, type, message, headers);
}

// ---------------------------------------------------------------------------
// request validation

/** API versions the mock accepts in `anthropic-version`. */
export const ANTHROPIC_VERSIONS = ["2023-01-01", "2023-06-01", "2026-10-21"] as const;

/** Top-level fields of a Messages request in every version (SDK 1.14 `MessageCreateParamsBase`). */
const MESSAGE_FIELDS = [
  "model",
  "messages",
  "max_tokens",
  "system",
  "metadata",
  "stop_sequences",
  "stream",
  "tools",
  "tool_choice",
  "thinking",
  "service_tier",
  "container",
  "output_config",
  "inference_geo",
  "speed",
  "cache_control",
  "diagnostics",
  "user_profile_id",
  "workspace_id",
];
/** Sampling parameters: accepted by 2023-06-01, removed by 2026-10-21 (a 400 even at their default values). */
const SAMPLING_FIELDS = ["temperature", "top_p", "top_k"];
/** Only with an `anthropic-beta` header. */
const BETA_FIELDS = ["mcp_servers", "context_management"];
/** Top-level fields of a count_tokens request (no max_tokens, no stream, no sampling). */
const COUNT_TOKENS_FIELDS = ["model", "messages", "system", "tools", "tool_choice", "thinking", "cache_control", "output_config", "speed", "user_profile_id"];

const USER_BLOCKS = ["text", "image", "document", "search_result", "tool_result", "container_upload"];
const SERVER_RESULT_BLOCKS = [
  "server_tool_use",
  "web_search_tool_result",
  "web_fetch_tool_result",
  "code_execution_tool_result",
  "bash_code_execution_tool_result",
  "text_editor_code_execution_tool_result",
  "tool_search_tool_result",
];
const ASSISTANT_BLOCKS = ["text", "thinking", "redacted_thinking", "tool_use", "document", "container_upload", ...SERVER_RESULT_BLOCKS];
const ALL_BLOCKS = [...new Set([...USER_BLOCKS, ...ASSISTANT_BLOCKS])];

const BLOCK_KEYS: Readonly<Record<string, readonly string[]>> = {
  text: ["type", "text", "cache_control", "citations"],
  image: ["type", "source", "cache_control"],
  document: ["type", "source", "cache_control", "citations", "context", "title"],
  tool_use: ["type", "id", "name", "input", "cache_control", "caller", "toolset_name"],
  tool_result: ["type", "tool_use_id", "content", "is_error", "cache_control", "toolset_name"],
  thinking: ["type", "thinking", "signature"],
  redacted_thinking: ["type", "data"],
};
const TOOL_RESULT_CONTENT_BLOCKS = ["text", "image", "search_result", "document", "tool_reference", "browser_state"];
const CUSTOM_TOOL_KEYS = ["type", "name", "description", "input_schema", "cache_control", "strict", "defer_loading", "input_examples", "allowed_callers", "eager_input_streaming"];
const TOOL_USE_ID = /^[a-zA-Z0-9_-]+$/;
const TOOL_NAME = /^[a-zA-Z0-9_-]{1,128}$/;

export interface AnthropicRequestContext {
  /** The `anthropic-version` the request was sent with (default 2023-06-01). */
  readonly version?: string;
  /** Whether an `anthropic-beta` header was sent (allows the beta-only fields). */
  readonly beta?: boolean;
  /** Which endpoint the body was sent to (default messages). */
  readonly endpoint?: "messages" | "count_tokens";
}

const quoteList = (items: readonly string[]) => items.map((item) => `'${item}'`).join(", ");
const fail = (message: string): never => {
  throw new AnthropicRequestError(message);
};

function checkKeys(value: Json, allowed: readonly string[], path: string): void {
  for (const key of Object.keys(value)) {
    if (!allowed.includes(key)) fail(`${path ? `${path}.` : ""}${key}: Extra inputs are not permitted`);
  }
}

function checkTextBlock(block: Json, path: string): void {
  if (typeof block.text !== "string") fail(`${path}.text: Field required`);
  const text = block.text as string;
  if (text.length === 0) fail("messages: text content blocks must be non-empty");
  if (text.trim().length === 0) fail("messages: text content blocks must contain non-whitespace text");
}

function checkSource(block: Json, path: string, kinds: readonly string[]): void {
  const source = block.source;
  if (!isObject(source)) return void fail(`${path}.source: Field required`);
  if (typeof source.type !== "string" || !kinds.includes(source.type)) {
    fail(`${path}.source: Input tag '${String(source.type)}' found using 'type' does not match any of the expected tags: ${quoteList(kinds)}`);
  }
}

/** Validates one content block of a user/assistant/system message. */
function checkBlock(block: unknown, role: string, path: string, version: string): void {
  if (!isObject(block)) return void fail(`${path}: Input should be a valid dictionary or object to extract fields from`);
  const type = block.type;
  if (typeof type !== "string") return void fail(`${path}.type: Field required`);
  if (!ALL_BLOCKS.includes(type)) {
    fail(`${path}: Input tag '${type}' found using 'type' does not match any of the expected tags: ${quoteList(ALL_BLOCKS)}`);
  }
  const allowed = role === "system" ? ["text"] : role === "user" ? USER_BLOCKS : ASSISTANT_BLOCKS;
  if (!allowed.includes(type)) {
    fail(`${path}: \`${type}\` blocks are not allowed in \`${role}\` messages`);
  }
  const keys = BLOCK_KEYS[type];
  if (keys) checkKeys(block, keys, path);
  switch (type) {
    case "text":
      checkTextBlock(block, path);
      if (version >= "2026-10-21" && role === "user" && Array.isArray(block.citations) && block.citations.length > 0) {
        fail(`${path}.citations: citations are not allowed on text blocks in \`user\` messages`);
      }
      break;
    case "image":
      checkSource(block, path, ["base64", "url", "file"]);
      break;
    case "document":
      if (version >= "2026-10-21" && role === "assistant") fail(`${path}: \`document\` blocks are not allowed in \`assistant\` messages`);
      checkSource(block, path, ["base64", "text", "content", "url", "file"]);
      break;
    case "tool_use":
      if (typeof block.id !== "string") fail(`${path}.id: Field required`);
      if (!TOOL_USE_ID.test(block.id as string)) fail(`${path}.id: String should match pattern '^[a-zA-Z0-9_-]+$'`);
      if (typeof block.name !== "string") fail(`${path}.name: Field required`);
      if (!("input" in block)) fail(`${path}.input: Field required`);
      if (!isObject(block.input)) fail(`${path}.input: Input should be a valid dictionary`);
      break;
    case "tool_result": {
      if (typeof block.tool_use_id !== "string") fail(`${path}.tool_use_id: Field required`);
      if (!TOOL_USE_ID.test(block.tool_use_id as string)) fail(`${path}.tool_use_id: String should match pattern '^[a-zA-Z0-9_-]+$'`);
      if (block.is_error !== undefined && typeof block.is_error !== "boolean") fail(`${path}.is_error: Input should be a valid boolean`);
      const content = block.content;
      if (content === undefined || typeof content === "string") break;
      if (!Array.isArray(content)) return void fail(`${path}.content: Input should be a valid list`);
      content.forEach((inner, k) => {
        const innerPath = `${path}.content.${k}`;
        if (!isObject(inner)) return fail(`${innerPath}: Input should be a valid dictionary or object to extract fields from`);
        if (typeof inner.type !== "string" || !TOOL_RESULT_CONTENT_BLOCKS.includes(inner.type)) {
          fail(`${innerPath}: Input tag '${String(inner.type)}' found using 'type' does not match any of the expected tags: ${quoteList(TOOL_RESULT_CONTENT_BLOCKS)}`);
        }
        if (inner.type === "text") {
          checkKeys(inner, BLOCK_KEYS.text!, innerPath);
          checkTextBlock(inner, innerPath);
        }
      });
      break;
    }
    case "thinking":
      if (typeof block.thinking !== "string") fail(`${path}.thinking: Field required`);
      if (typeof block.signature !== "string") fail(`${path}.signature: Field required`);
      break;
    case "redacted_thinking":
      if (typeof block.data !== "string") fail(`${path}.data: Field required`);
      break;
  }
}

function blocksOf(message: Json): Json[] {
  return Array.isArray(message.content) ? message.content.filter(isObject) : [];
}

function checkTools(tools: unknown): string[] {
  if (!Array.isArray(tools)) return fail("tools: Input should be a valid list");
  const names: string[] = [];
  tools.forEach((tool, i) => {
    const path = `tools.${i}`;
    if (!isObject(tool)) return fail(`${path}: Input should be a valid dictionary or object to extract fields from`);
    const type = tool.type;
    if (type === undefined || type === "custom") {
      checkKeys(tool, CUSTOM_TOOL_KEYS, `${path}.custom`);
      if (typeof tool.name !== "string") fail(`${path}.custom.name: Field required`);
      if (!TOOL_NAME.test(tool.name as string)) fail(`${path}.custom.name: String should match pattern '^[a-zA-Z0-9_-]{1,128}$'`);
      if (!isObject(tool.input_schema)) fail(`${path}.custom.input_schema: Field required`);
      if ((tool.input_schema as Json).type !== "object") fail(`${path}.custom.input_schema.type: Input should be 'object'`);
    } else if (typeof type !== "string" || !/_(?:\d{8}|bm25|regex)$/.test(type)) {
      // OpenAI's {"type":"function","function":{...}} lands here.
      fail(`${path}: Input tag '${String(type)}' found using 'type' does not match any of the expected tags: 'custom', 'bash_20250124', 'code_execution_20250825', 'memory_20250818', 'text_editor_20250728', 'web_search_20250305', 'web_fetch_20250910', 'tool_search_tool_bm25_20251119', 'tool_search_tool_regex_20251119'`);
    }
    if (typeof tool.name === "string") names.push(tool.name);
  });
  if (new Set(names).size !== names.length) fail("tools: Tool names must be unique.");
  return names;
}

/**
 * Throws an `AnthropicRequestError` (→ 400 invalid_request_error) when the real
 * API would reject this body. Checks: required fields (model, messages,
 * max_tokens), top-level fields of the API version (unknown ones are "Extra
 * inputs are not permitted"; temperature/top_p/top_k are gone in 2026-10-21),
 * message roles and keys, content block types per role and their fields,
 * tool_use ids and object inputs, tool_result placement (first in the user
 * message right after the matching tool_use, every tool_use answered there),
 * thinking rules, tools and tool_choice shapes, trailing whitespace in a
 * final assistant prefill.
 */
export function assertAnthropicRequest(json: unknown, context: AnthropicRequestContext = {}): void {
  const version = context.version ?? "2023-06-01";
  const endpoint = context.endpoint ?? "messages";
  if (!isObject(json)) return void fail("Input should be a valid dictionary or object to extract fields from");

  let allowed = endpoint === "count_tokens" ? [...COUNT_TOKENS_FIELDS] : [...MESSAGE_FIELDS];
  if (endpoint === "messages" && version < "2026-10-21") allowed.push(...SAMPLING_FIELDS);
  if (context.beta) allowed.push(...BETA_FIELDS);
  allowed = [...new Set(allowed)];
  checkKeys(json, allowed, "");

  if (typeof json.model !== "string") fail("model: Field required");
  if (endpoint === "messages") {
    if (json.max_tokens === undefined) fail("max_tokens: Field required");
    if (typeof json.max_tokens !== "number" || !Number.isInteger(json.max_tokens)) fail("max_tokens: Input should be a valid integer");
    if ((json.max_tokens as number) < 1) fail("max_tokens: Input should be greater than or equal to 1");
    if (json.stream !== undefined && typeof json.stream !== "boolean") fail("stream: Input should be a valid boolean");
  }
  if (json.stop_sequences !== undefined && (!Array.isArray(json.stop_sequences) || json.stop_sequences.some((s) => typeof s !== "string"))) {
    fail("stop_sequences: Input should be a valid list of strings");
  }
  if (json.metadata !== undefined) {
    if (!isObject(json.metadata)) fail("metadata: Input should be a valid dictionary");
    checkKeys(json.metadata as Json, ["user_id"], "metadata");
  }
  for (const field of ["temperature", "top_p"]) {
    const value = json[field];
    if (value === undefined) continue;
    if (typeof value !== "number") fail(`${field}: Input should be a valid number`);
    if ((value as number) < 0) fail(`${field}: Input should be greater than or equal to 0`);
    if ((value as number) > 1) fail(`${field}: Input should be less than or equal to 1`);
  }

  // system
  if (json.system !== undefined && typeof json.system !== "string") {
    if (!Array.isArray(json.system)) fail("system: Input should be a valid string or list of text blocks");
    (json.system as unknown[]).forEach((block, i) => {
      if (!isObject(block) || block.type !== "text") fail(`system.${i}: Input tag '${isObject(block) ? String(block.type) : "?"}' found using 'type' does not match any of the expected tags: 'text'`);
      checkKeys(block as Json, BLOCK_KEYS.text!, `system.${i}`);
      checkTextBlock(block as Json, `system.${i}`);
    });
  }

  // tools and tool_choice
  const toolNames = json.tools === undefined ? [] : checkTools(json.tools);
  const toolChoice = json.tool_choice;
  if (toolChoice !== undefined) {
    if (!isObject(toolChoice)) fail("tool_choice: Input should be a valid dictionary or object to extract fields from");
    const choice = toolChoice as Json;
    const kinds = ["auto", "any", "tool", "none"];
    if (typeof choice.type !== "string" || !kinds.includes(choice.type)) {
      fail(`tool_choice: Input tag '${String(choice.type)}' found using 'type' does not match any of the expected tags: ${quoteList(kinds)}`);
    }
    checkKeys(choice, choice.type === "tool" ? ["type", "name", "disable_parallel_tool_use"] : choice.type === "none" ? ["type"] : ["type", "disable_parallel_tool_use"], "tool_choice");
    if (choice.type === "tool" && typeof choice.name !== "string") fail("tool_choice.tool.name: Field required");
    if (choice.type !== "none" && toolNames.length === 0) fail("tool_choice may only be specified while providing tools");
    if (choice.type === "tool" && !toolNames.includes(choice.name as string)) fail(`tool_choice.name: tool '${String(choice.name)}' was not found in tools`);
  }

  // thinking
  const thinking = json.thinking;
  let thinkingEnabled = false;
  if (thinking !== undefined) {
    if (!isObject(thinking)) fail("thinking: Input should be a valid dictionary or object to extract fields from");
    const config = thinking as Json;
    const kinds = ["enabled", "disabled", "adaptive", "between_tools"];
    if (typeof config.type !== "string" || !kinds.includes(config.type)) {
      fail(`thinking: Input tag '${String(config.type)}' found using 'type' does not match any of the expected tags: ${quoteList(kinds)}`);
    }
    if (config.type === "enabled") {
      thinkingEnabled = true;
      checkKeys(config, ["type", "budget_tokens", "display"], "thinking.enabled");
      if (typeof config.budget_tokens !== "number") fail("thinking.enabled.budget_tokens: Field required");
      if ((config.budget_tokens as number) < 1024) fail("thinking.enabled.budget_tokens: Input should be greater than or equal to 1024");
      if (endpoint === "messages" && (config.budget_tokens as number) >= (json.max_tokens as number)) {
        fail("`max_tokens` must be greater than `thinking.budget_tokens`. Please consult our documentation at https://docs.claude.com/en/docs/build-with-claude/extended-thinking#max-tokens-and-context-window-size");
      }
    }
    if (config.type === "enabled" || config.type === "adaptive") {
      if (json.temperature !== undefined && json.temperature !== 1) fail("`temperature` may only be set to 1 when thinking is enabled. Please consult our documentation at https://docs.claude.com/en/docs/build-with-claude/extended-thinking#feature-compatibility");
      if (json.top_k !== undefined) fail("`top_k` must be unset when thinking is enabled. Please consult our documentation at https://docs.claude.com/en/docs/build-with-claude/extended-thinking#feature-compatibility");
      if (isObject(toolChoice) && (toolChoice.type === "any" || toolChoice.type === "tool")) fail("Thinking may not be enabled when tool_choice forces tool use.");
    }
  }

  // messages
  if (!Array.isArray(json.messages)) return void fail("messages: Field required");
  const messages = json.messages as unknown[];
  if (messages.length === 0) fail("messages: at least one message is required");
  // CLIENTS.md: version 2026-10-21 allows role "system" inside messages (mid-conversation system messages).
  const roles = version >= "2026-10-21" ? ["user", "assistant", "system"] : ["user", "assistant"];
  const seenToolUseIds = new Set<string>();
  messages.forEach((message, i) => {
    const path = `messages.${i}`;
    if (!isObject(message)) return fail(`${path}: Input should be a valid dictionary or object to extract fields from`);
    checkKeys(message, ["role", "content"], path);
    if (typeof message.role !== "string" || !roles.includes(message.role)) {
      fail(`${path}.role: Input should be ${roles.length === 2 ? "'user' or 'assistant'" : "'user', 'assistant' or 'system'"}`);
    }
    const role = message.role as string;
    if (role === "system" && i === 0) fail(`${path}: a \`system\` message cannot be the first message; use the top-level \`system\` parameter`);
    const isFinalAssistant = role === "assistant" && i === messages.length - 1;
    if (!("content" in message)) fail(`${path}.content: Field required`);
    const content = message.content;
    if (typeof content === "string") {
      if (content.length === 0 && !isFinalAssistant) fail(`${path}: all messages must have non-empty content except for the optional final assistant message`);
    } else if (Array.isArray(content)) {
      if (content.length === 0 && !isFinalAssistant) fail(`${path}: all messages must have non-empty content except for the optional final assistant message`);
      content.forEach((block, j) => checkBlock(block, role, `${path}.content.${j}`, version));
    } else {
      fail(`${path}.content: Input should be a valid string or list of content blocks`);
    }
    for (const [j, block] of blocksOf(message).entries()) {
      if (block.type !== "tool_use") continue;
      if (seenToolUseIds.has(block.id as string)) fail(`${path}.content.${j}: \`tool_use\` ids must be unique`);
      seenToolUseIds.add(block.id as string);
    }
  });

  // tool_use ↔ tool_result pairing: each assistant tool_use is answered in the very next message, a user one,
  // whose tool_result blocks come first; each tool_result answers a tool_use of the message just before.
  const list = messages as Json[];
  list.forEach((message, i) => {
    const blocks = blocksOf(message);
    if (message.role === "assistant") {
      const ids = blocks.filter((b) => b.type === "tool_use").map((b) => b.id as string);
      if (ids.length === 0 || i === list.length - 1) return;
      const next = list[i + 1]!;
      const answered = new Set(next.role === "user" ? blocksOf(next).filter((b) => b.type === "tool_result").map((b) => b.tool_use_id as string) : []);
      const missing = ids.filter((id) => !answered.has(id));
      if (missing.length) {
        fail(`messages.${i + 1}: \`tool_use\` ids were found without \`tool_result\` blocks immediately after: ${missing.join(", ")}. Each \`tool_use\` block must have a corresponding \`tool_result\` block in the next message.`);
      }
    }
    if (message.role === "user") {
      const previous = i > 0 ? list[i - 1]! : undefined;
      const offered = new Set(previous?.role === "assistant" ? blocksOf(previous).filter((b) => b.type === "tool_use").map((b) => b.id as string) : []);
      let sawOther = false;
      blocks.forEach((block, j) => {
        if (block.type !== "tool_result") {
          sawOther = true;
          return;
        }
        if (!offered.has(block.tool_use_id as string)) {
          fail(`messages.${i}.content.${j}: unexpected \`tool_use_id\` found in \`tool_result\` blocks: ${String(block.tool_use_id)}. Each \`tool_result\` block must have a corresponding \`tool_use\` block in the previous message.`);
        }
        if (sawOther) fail(`messages.${i}.content.${j}: \`tool_result\` blocks must come first in the \`user\` message content, before any other content`);
      });
    }
  });

  // With extended thinking, the assistant turn that made the last tool calls must start with its thinking block.
  const last = list[list.length - 1]!;
  if (thinkingEnabled && last.role === "user" && blocksOf(last).some((b) => b.type === "tool_result") && list.length >= 2) {
    const k = list.length - 2;
    const first = blocksOf(list[k]!)[0];
    if (list[k]!.role === "assistant" && first && first.type !== "thinking" && first.type !== "redacted_thinking") {
      fail(`messages.${k}.content.0.type: Expected \`thinking\` or \`redacted_thinking\`, but found \`${String(first.type)}\`. When \`thinking\` is enabled, a final \`assistant\` message must start with a thinking block (preceeding the lastmost set of \`tool_use\` and \`tool_result\` blocks). We recommend you include thinking blocks from previous turns. To avoid this requirement, disable \`thinking\`. Please consult our documentation at https://docs.claude.com/en/docs/build-with-claude/extended-thinking`);
    }
  }

  // A final assistant message is a prefill: it cannot end with whitespace.
  if (last.role === "assistant") {
    const tail = typeof last.content === "string" ? last.content : [...blocksOf(last)].reverse().find((b) => b.type === "text")?.text;
    if (typeof tail === "string" && tail.length > 0 && /\s$/.test(tail)) fail("messages: final assistant content cannot end with trailing whitespace");
  }
}

export interface AnthropicHeaderOptions {
  /** When set, the credential (`x-api-key`, else `Authorization: Bearer`) must be exactly this; otherwise any non-empty one passes. */
  readonly apiKey?: string;
}

/**
 * Checks the headers as the API does: a credential (`x-api-key` wins over
 * `Authorization: Bearer` when both are sent) → 401 authentication_error, and a
 * known `anthropic-version` → 400. Returns the version and whether betas were asked for.
 */
export function checkAnthropicHeaders(headers: IncomingHttpHeaders, options: AnthropicHeaderOptions = {}): { version: string; beta: boolean } {
  const xApiKey = typeof headers["x-api-key"] === "string" ? headers["x-api-key"] : undefined;
  const bearer = /^Bearer (.+)$/i.exec(headers.authorization ?? "")?.[1];
  const key = xApiKey ?? bearer;
  if (!key) throw new AnthropicRequestError("x-api-key header is required", "authentication_error");
  if (options.apiKey !== undefined && key !== options.apiKey) throw new AnthropicRequestError("invalid x-api-key", "authentication_error");
  const version = headers["anthropic-version"];
  if (typeof version !== "string" || version.length === 0) throw new AnthropicRequestError("anthropic-version: header is required");
  if (!(ANTHROPIC_VERSIONS as readonly string[]).includes(version)) {
    throw new AnthropicRequestError(`anthropic-version: invalid version '${version}'. Valid versions are: ${ANTHROPIC_VERSIONS.join(", ")}`);
  }
  return { version, beta: typeof headers["anthropic-beta"] === "string" && headers["anthropic-beta"].length > 0 };
}

/** The URL path without its query string (`/v1/messages?beta=true` → `/v1/messages`). */
function pathOf(req: Received): string {
  return (req.url.split("?")[0] ?? "").replace(/\/+$/, "");
}

/** `/v1/messages` (or `<prefix>/v1/messages`, but never `/v1/v1/messages`). */
function isPath(req: Received, tail: string): boolean {
  const path = pathOf(req);
  return path.endsWith(tail) && !path.endsWith(`/v1${tail}`);
}

// ---------------------------------------------------------------------------
// messages

export interface AnthropicUsage {
  input_tokens: number;
  output_tokens: number;
  cache_creation_input_tokens: number;
  cache_read_input_tokens: number;
}

/** A content block of an answer. */
export type AnswerBlock =
  | { readonly type: "text"; readonly text: string }
  | { readonly type: "thinking"; readonly thinking: string; readonly signature: string }
  | { readonly type: "tool_use"; readonly id: string; readonly name: string; readonly input: Record<string, unknown> };

/** A complete non-streaming Message, shaped like the API's. */
export function anthropicMessage(model: string, content: readonly AnswerBlock[], stopReason: string, usage: AnthropicUsage, id = messageId()) {
  return {
    model,
    id,
    type: "message",
    role: "assistant",
    content: content.map((block) => ({ ...block })),
    stop_reason: stopReason,
    stop_sequence: null,
    stop_details: null,
    usage: {
      input_tokens: usage.input_tokens,
      cache_creation_input_tokens: usage.cache_creation_input_tokens,
      cache_read_input_tokens: usage.cache_read_input_tokens,
      cache_creation: { ephemeral_5m_input_tokens: usage.cache_creation_input_tokens, ephemeral_1h_input_tokens: 0 },
      output_tokens: usage.output_tokens,
      service_tier: "standard",
      inference_geo: "not_available",
    },
  };
}

function messageStart(model: string, id: string, usage: AnthropicUsage) {
  const message = anthropicMessage(model, [], "end_turn", { ...usage, output_tokens: 1 }, id);
  return { type: "message_start", message: { ...message, stop_reason: null } };
}

/**
 * The SSE events of a streamed message, in the API's order: message_start,
 * each block (start, ping after the first start, deltas, stop), message_delta,
 * message_stop.
 */
export function messageEvents(model: string, content: readonly AnswerBlock[], stopReason: string, usage: AnthropicUsage, id = messageId()): string[] {
  const events = [sseEvent("message_start", messageStart(model, id, usage))];
  content.forEach((block, index) => {
    const delta = (payload: Json) => sseEvent("content_block_delta", { type: "content_block_delta", index, delta: payload });
    if (block.type === "text") {
      events.push(sseEvent("content_block_start", { type: "content_block_start", index, content_block: { type: "text", text: "" } }));
      if (index === 0) events.push(sseEvent("ping", { type: "ping" }));
      for (const piece of splitText(block.text)) events.push(delta({ type: "text_delta", text: piece }));
    } else if (block.type === "thinking") {
      events.push(sseEvent("content_block_start", { type: "content_block_start", index, content_block: { type: "thinking", thinking: "", signature: "" } }));
      if (index === 0) events.push(sseEvent("ping", { type: "ping" }));
      for (const piece of splitText(block.thinking)) events.push(delta({ type: "thinking_delta", thinking: piece }));
      events.push(delta({ type: "signature_delta", signature: block.signature }));
    } else {
      events.push(sseEvent("content_block_start", { type: "content_block_start", index, content_block: { type: "tool_use", id: block.id, name: block.name, input: {} } }));
      if (index === 0) events.push(sseEvent("ping", { type: "ping" }));
      events.push(delta({ type: "input_json_delta", partial_json: "" }));
      for (const piece of jsonFragments(JSON.stringify(block.input))) events.push(delta({ type: "input_json_delta", partial_json: piece }));
    }
    events.push(sseEvent("content_block_stop", { type: "content_block_stop", index }));
  });
  events.push(
    sseEvent("message_delta", {
      type: "message_delta",
      delta: { stop_reason: stopReason, stop_sequence: null, stop_details: null },
      usage: {
        input_tokens: usage.input_tokens,
        cache_creation_input_tokens: usage.cache_creation_input_tokens,
        cache_read_input_tokens: usage.cache_read_input_tokens,
        output_tokens: usage.output_tokens,
      },
    }),
  );
  events.push(sseEvent("message_stop", { type: "message_stop" }));
  return events;
}

/** The text of tool_result blocks in the last user message, or undefined when it has none. */
export function lastToolResults(json: Json | undefined): string[] | undefined {
  const messages = Array.isArray(json?.messages) ? (json.messages as unknown[]).filter(isObject) : [];
  const last = [...messages].reverse().find((m) => m.role !== "system");
  if (!last || last.role !== "user") return undefined;
  const results = blocksOf(last).filter((b) => b.type === "tool_result");
  if (results.length === 0) return undefined;
  return results.map((result) => {
    const content = result.content;
    if (typeof content === "string") return content;
    if (Array.isArray(content)) return content.filter(isObject).map((b) => (typeof b.text === "string" ? b.text : `[${String(b.type)}]`)).join("");
    return "";
  });
}

export interface ReplyMessagesOptions {
  /** The answer's text (default "Hello from the mock."). With `toolUse`, a text block said before the calls. */
  readonly text?: string;
  /** Tool calls to answer with when the request has tools (stop_reason tool_use). */
  readonly toolUse?: readonly { readonly name: string; readonly input: Record<string, unknown>; readonly id?: string }[];
  /** A thinking block (with a signature) before the answer. */
  readonly thinking?: string;
  /** Overrides the stop_reason (default end_turn, or tool_use for tool calls). */
  readonly stopReason?: string;
  /** The answer after a tool round trip, from the tool_result texts (default `The tool returned: …`). */
  readonly afterToolResult?: (results: readonly string[]) => string;
  /** Extra usage numbers (default: estimated from the request and answer). */
  readonly usage?: Partial<AnthropicUsage>;
  /** Pause between streamed events. */
  readonly delayMs?: number;
  /** Require this exact credential (see `checkAnthropicHeaders`). */
  readonly apiKey?: string;
  /** Skip header and body validation (default: validate like the real API). */
  readonly validate?: boolean;
  /** Extra response headers. */
  readonly headers?: Record<string, string>;
}

/** Validates headers and body; on failure answers like the API and returns false. */
function admit(req: Received, res: ServerResponse, endpoint: "messages" | "count_tokens", options: { apiKey?: string; validate?: boolean }): boolean {
  if (options.validate === false) return true;
  try {
    const { version, beta } = checkAnthropicHeaders(req.headers, options.apiKey === undefined ? {} : { apiKey: options.apiKey });
    if (req.json === undefined) throw new AnthropicRequestError("There was an issue with the format of your request: the body is not valid JSON");
    assertAnthropicRequest(req.json, { version, beta, endpoint });
    return true;
  } catch (error) {
    if (!(error instanceof AnthropicRequestError)) throw error;
    sendAnthropicError(res, error.status, error.errorType, error.message);
    return false;
  }
}

/** What `replyMessages` answers for this request: blocks, stop reason and usage. */
function plan(json: Json, options: ReplyMessagesOptions): { content: AnswerBlock[]; stopReason: string; usage: AnthropicUsage } {
  const content: AnswerBlock[] = [];
  if (options.thinking !== undefined) content.push({ type: "thinking", thinking: options.thinking, signature: signature() });
  const results = lastToolResults(json);
  const hasTools = Array.isArray(json.tools) && json.tools.length > 0;
  let stopReason = "end_turn";
  if (results) {
    content.push({ type: "text", text: options.afterToolResult ? options.afterToolResult(results) : `The tool returned: ${results.join(" | ")}` });
  } else if (hasTools && options.toolUse?.length) {
    if (options.text !== undefined) content.push({ type: "text", text: options.text });
    for (const call of options.toolUse) content.push({ type: "tool_use", id: call.id ?? toolUseId(), name: call.name, input: call.input });
    stopReason = "tool_use";
  } else {
    content.push({ type: "text", text: options.text ?? "Hello from the mock." });
  }
  const usage: AnthropicUsage = {
    input_tokens: estimateTokens({ system: json.system, messages: json.messages, tools: json.tools }),
    output_tokens: content.reduce((sum, block) => sum + estimateTokens(block.type === "text" ? block.text : block.type === "thinking" ? block.thinking : block.input), 0),
    cache_creation_input_tokens: 0,
    cache_read_input_tokens: 0,
    ...options.usage,
  };
  return { content, stopReason: options.stopReason ?? stopReason, usage };
}

/**
 * Answers `POST /v1/messages` like the API: validates headers and body (400/401
 * as the API would), then a Message naming the request's model, streamed as
 * SSE when the body has `stream: true`. With tools in the request and
 * `toolUse` given, answers tool_use blocks (stop_reason tool_use); when the last
 * user message carries tool_result blocks, answers a text quoting them.
 * Other paths get 404 not_found_error.
 */
export function replyMessages(options: ReplyMessagesOptions = {}): Handler {
  return async (req, res) => {
    if (req.method !== "POST" || !isPath(req, "/v1/messages")) return sendAnthropicError(res, 404, "not_found_error", "Not Found");
    if (!admit(req, res, "messages", options)) return;
    const json = req.json ?? {};
    const model = typeof json.model === "string" ? json.model : "unknown";
    const { content, stopReason, usage } = plan(json, options);
    if (json.stream === true) {
      res.writeHead(200, streamHeaders(options.headers));
      for (const event of messageEvents(model, content, stopReason, usage)) {
        await write(res, event);
        if (options.delayMs) await sleep(options.delayMs);
      }
      res.end();
      return;
    }
    sendJson(res, 200, anthropicMessage(model, content, stopReason, usage), { "request-id": requestId(), ...options.headers });
  };
}

/** Answers `POST /v1/messages/count_tokens` with `{"input_tokens": n}` (default: an estimate), after validating like the API. */
export function replyCountTokens(n?: number, options: { apiKey?: string; validate?: boolean } = {}): Handler {
  return (req, res) => {
    if (req.method !== "POST" || !isPath(req, "/v1/messages/count_tokens")) return sendAnthropicError(res, 404, "not_found_error", "Not Found");
    if (!admit(req, res, "count_tokens", options)) return;
    const json = req.json ?? {};
    sendJson(res, 200, { input_tokens: n ?? estimateTokens({ system: json.system, messages: json.messages, tools: json.tools }) }, { "request-id": requestId() });
  };
}

/** Routes like the API: `/v1/messages` → `replyMessages`, `/v1/messages/count_tokens` → `replyCountTokens`, anything else 404. */
export function anthropicUpstream(options: ReplyMessagesOptions & { countTokens?: number } = {}): Handler {
  const messages = replyMessages(options);
  const count = replyCountTokens(options.countTokens, options);
  return (req, res) => (isPath(req, "/v1/messages/count_tokens") ? count(req, res) : messages(req, res));
}

// ---------------------------------------------------------------------------
// failing streams

export interface StreamErrorOptions {
  /** The error type (default overloaded_error) and message (default the API's, "Overloaded"). */
  readonly type?: string;
  readonly message?: string;
  /**
   * Text pieces streamed (in a text block, after its ping) before the error.
   * Default none: message_start then the error, before any content: a failure
   * the gateway can still fail over.
   */
  readonly afterText?: readonly string[];
  readonly delayMs?: number;
}

/**
 * A 200 stream that fails in-band: message_start (and, with `afterText`, a
 * text block's first deltas) then
 * `event: error` / `{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`,
 * then the stream ends cleanly (no message_delta, no message_stop), as the API does.
 */
export function streamAnthropicThenError(options: StreamErrorOptions = {}): Handler {
  return async (req, res) => {
    const model = typeof req.json?.model === "string" ? req.json.model : "unknown";
    const usage: AnthropicUsage = { input_tokens: estimateTokens(req.json?.messages), output_tokens: 1, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 };
    res.writeHead(200, streamHeaders());
    const events = [sseEvent("message_start", messageStart(model, messageId(), usage))];
    if (options.afterText?.length) {
      events.push(sseEvent("content_block_start", { type: "content_block_start", index: 0, content_block: { type: "text", text: "" } }));
      events.push(sseEvent("ping", { type: "ping" }));
      for (const text of options.afterText) events.push(sseEvent("content_block_delta", { type: "content_block_delta", index: 0, delta: { type: "text_delta", text } }));
    }
    const type = options.type ?? "overloaded_error";
    events.push(sseEvent("error", { type: "error", error: { type, message: options.message ?? DEFAULT_MESSAGES[type] ?? type } }));
    for (const event of events) {
      await write(res, event);
      if (options.delayMs) await sleep(options.delayMs);
    }
    res.end();
  };
}

export interface StreamCutOptions {
  /** Text pieces streamed before the connection is cut (default three). */
  readonly pieces?: readonly string[];
  readonly delayMs?: number;
}

/**
 * A 200 stream that dies mid-answer: message_start, a text block's start, ping
 * and some text deltas, then the socket is destroyed (no content_block_stop,
 * no message_delta, no message_stop, a truncated chunked body).
 */
export function streamAnthropicCut(options: StreamCutOptions = {}): Handler {
  return async (req, res) => {
    const model = typeof req.json?.model === "string" ? req.json.model : "unknown";
    const usage: AnthropicUsage = { input_tokens: estimateTokens(req.json?.messages), output_tokens: 1, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 };
    res.writeHead(200, streamHeaders());
    const events = [
      sseEvent("message_start", messageStart(model, messageId(), usage)),
      sseEvent("content_block_start", { type: "content_block_start", index: 0, content_block: { type: "text", text: "" } }),
      sseEvent("ping", { type: "ping" }),
      ...(options.pieces ?? ["Hello", " from", " the"]).map((text) => sseEvent("content_block_delta", { type: "content_block_delta", index: 0, delta: { type: "text_delta", text } })),
    ];
    for (const event of events) {
      await write(res, event);
      if (options.delayMs) await sleep(options.delayMs);
    }
    await sleep(20);
    res.destroy();
  };
}
