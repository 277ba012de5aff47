/**
 * Complete (non-streaming) answers and error bodies, Chat Completions ⇄
 * Anthropic Messages. Pure functions of the upstream's parsed JSON; they never
 * throw, whatever the upstream sent.
 */
import { randomBytes } from "node:crypto";

type Json = Record<string, unknown>;

const isObject = (value: unknown): value is Json => typeof value === "object" && value !== null && !Array.isArray(value);
const num = (value: unknown): number | undefined => (typeof value === "number" && Number.isFinite(value) ? value : undefined);

// ---------------------------------------------------------------------------
// the mappings the stream translator shares

/** OpenAI's finish_reason as Anthropic's stop_reason, with the stop sequence that ended the answer when the upstream names it. */
export function stopReasonOf(choice: Json, stopSequences: readonly string[] | undefined): { stop_reason: string; stop_sequence: string | null } {
  const finish = choice.finish_reason;
  if (finish === "stop") {
    // OpenAI strips the matched stop string; vLLM reports it as `stop_reason`, SGLang as `matched_stop`.
    const matched = typeof choice.stop_reason === "string" ? choice.stop_reason : typeof choice.matched_stop === "string" ? choice.matched_stop : undefined;
    if (matched !== undefined && stopSequences?.includes(matched)) return { stop_reason: "stop_sequence", stop_sequence: matched };
    return { stop_reason: "end_turn", stop_sequence: null };
  }
  return { stop_reason: lookup(FINISH_TO_STOP, finish) ?? "end_turn", stop_sequence: null };
}

const FINISH_TO_STOP: Readonly<Record<string, string>> = {
  length: "max_tokens",
  tool_calls: "tool_use",
  function_call: "tool_use",
  content_filter: "refusal",
};

const STOP_TO_FINISH: Readonly<Record<string, string>> = {
  end_turn: "stop",
  stop_sequence: "stop",
  max_tokens: "length",
  tool_use: "tool_calls",
  refusal: "content_filter",
  pause_turn: "stop",
  model_context_window_exceeded: "length",
};

/** A table's own entry only: an upstream's "constructor" or "toString" must not find Object.prototype's. */
function lookup(table: Readonly<Record<string, string>>, key: unknown): string | undefined {
  return typeof key === "string" && Object.hasOwn(table, key) ? table[key] : undefined;
}

/** Anthropic's stop_reason as OpenAI's finish_reason. */
export function finishReasonOf(stopReason: unknown): string {
  return lookup(STOP_TO_FINISH, stopReason) ?? "stop";
}

/** OpenAI usage as Anthropic's: cached prompt tokens are counted apart, as Anthropic does. */
export function anthropicUsageOf(usage: unknown): Json {
  if (!isObject(usage)) return { input_tokens: 0, output_tokens: 0 };
  const prompt = num(usage.prompt_tokens) ?? 0;
  const details = isObject(usage.prompt_tokens_details) ? usage.prompt_tokens_details : undefined;
  // DeepSeek reports its cache hits in a field of its own.
  const cached = num(details?.cached_tokens) ?? num(usage.prompt_cache_hit_tokens);
  const out: Json = { input_tokens: Math.max(0, prompt - (cached ?? 0)), output_tokens: num(usage.completion_tokens) ?? 0 };
  if (cached !== undefined) out.cache_read_input_tokens = cached;
  return out;
}

/** Anthropic usage as OpenAI's: the prompt includes cache reads and writes. */
export function openAiUsageOf(usage: unknown): Json {
  const u = isObject(usage) ? usage : {};
  const cacheRead = num(u.cache_read_input_tokens);
  const prompt = (num(u.input_tokens) ?? 0) + (cacheRead ?? 0) + (num(u.cache_creation_input_tokens) ?? 0);
  const completion = num(u.output_tokens) ?? 0;
  const out: Json = { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion };
  if (cacheRead !== undefined) out.prompt_tokens_details = { cached_tokens: cacheRead };
  return out;
}

/** An Anthropic message id for an OpenAI answer's id. */
export function messageIdOf(chatId: unknown): string {
  const bare = typeof chatId === "string" ? (chatId.startsWith("chatcmpl-") ? chatId.slice("chatcmpl-".length) : chatId) : "";
  if (bare.length > 0) return `msg_${bare}`;
  return `msg_gw${randomBytes(12).toString("hex")}`;
}

/** An OpenAI completion id for an Anthropic message's id. */
export function chatIdOf(messageId: unknown): string {
  return `chatcmpl-${typeof messageId === "string" && messageId.length > 0 ? messageId : `gw${randomBytes(12).toString("hex")}`}`;
}

const SAFE_TOOL_ID = /^[a-zA-Z0-9_-]+$/;
const ENCODED_TOOL_ID = /^gwid_((?:[0-9a-f]{2})+)$/;

/**
 * A tool call id as Anthropic accepts it (^[a-zA-Z0-9_-]+$). Ids from other providers (Kimi's
 * `functions.get:0`) come back in the next turn's history, which an Anthropic route must accept too,
 * and which the provider itself needs back as it wrote it (Kimi reads its own ids in the history):
 * so an id that does not fit is encoded reversibly (`gwid_` + its bytes in hex), not mangled.
 */
export function toolUseIdOf(id: string): string {
  return SAFE_TOOL_ID.test(id) ? id : `gwid_${Buffer.from(id, "utf8").toString("hex")}`;
}

/** The provider's own id for one `toolUseIdOf` encoded; any other id as it is. */
export function providerToolIdOf(id: string): string {
  const encoded = ENCODED_TOOL_ID.exec(id);
  if (!encoded) return id;
  const decoded = Buffer.from(encoded[1] as string, "hex").toString("utf8");
  // Only what toolUseIdOf made: a client's own id that merely looks like one (or not valid UTF-8) stays as it is.
  return toolUseIdOf(decoded) === id ? decoded : id;
}

/** A tool call's JSON arguments as Anthropic's `input` object; what does not parse to an object becomes `{}`. */
export function toolInputOf(args: unknown): Json {
  if (isObject(args)) return args;
  if (typeof args !== "string" || args.trim() === "") return {};
  try {
    const value: unknown = JSON.parse(args);
    return isObject(value) ? value : {};
  } catch {
    return {};
  }
}

// ---------------------------------------------------------------------------
// answers

/** A chat.completion as an Anthropic Message (choice 0: Messages has one answer). */
export function chatToMessagesResponse(chat: unknown, model: string, stopSequences?: readonly string[]): Json {
  const record = isObject(chat) ? chat : {};
  const choice = Array.isArray(record.choices) && isObject(record.choices[0]) ? record.choices[0] : {};
  const message = isObject(choice.message) ? choice.message : {};
  const content: Json[] = [];
  const refusal = typeof message.refusal === "string" && message.refusal.length > 0 ? message.refusal : "";
  const text = [textOf(message.content), refusal].filter((part) => part.length > 0).join("\n\n");
  const calls = Array.isArray(message.tool_calls) ? message.tool_calls.filter(isObject) : [];
  if (calls.length === 0 && isObject(message.function_call)) calls.push({ id: undefined, function: message.function_call });
  // Anthropic never sends an empty text block, and refuses a blank one beside tool calls when the history comes back
  // (providers often say "\n\n" before their calls): an answer with nothing in it has no blocks.
  if (text.length > 0 && !(calls.length > 0 && text.trim() === "")) content.push({ type: "text", text });
  calls.forEach((call, index) => {
    const fn = isObject(call.function) ? call.function : {};
    content.push({
      type: "tool_use",
      id: typeof call.id === "string" && call.id ? toolUseIdOf(call.id) : `toolu_gw${index}${randomBytes(8).toString("hex")}`,
      name: typeof fn.name === "string" ? fn.name : "",
      input: toolInputOf(fn.arguments),
    });
  });
  const { stop_reason, stop_sequence } = refusal && choice.finish_reason === "stop" ? { stop_reason: "refusal", stop_sequence: null } : stopReasonOf(choice, stopSequences);
  return {
    id: messageIdOf(record.id),
    type: "message",
    role: "assistant",
    model,
    content,
    // Some providers answer tool calls with finish_reason "stop": the blocks say what the client must do next.
    // And a tool_calls finish with no call (a server's tool parser that failed) would leave an agent waiting for one.
    stop_reason: calls.length > 0 && stop_reason === "end_turn" ? "tool_use" : calls.length === 0 && stop_reason === "tool_use" ? "end_turn" : stop_reason,
    stop_sequence,
    usage: anthropicUsageOf(record.usage),
  };
}

/** An Anthropic Message as a chat.completion. */
export function messagesToChatResponse(message: unknown, model: string): Json {
  const record = isObject(message) ? message : {};
  const blocks = Array.isArray(record.content) ? record.content.filter(isObject) : [];
  let text = "";
  let reasoning = "";
  const toolCalls: Json[] = [];
  for (const block of blocks) {
    if (block.type === "text" && typeof block.text === "string") text += block.text;
    else if (block.type === "thinking" && typeof block.thinking === "string") reasoning += block.thinking;
    else if (block.type === "tool_use") {
      toolCalls.push({
        id: typeof block.id === "string" ? block.id : "",
        type: "function",
        function: { name: typeof block.name === "string" ? block.name : "", arguments: JSON.stringify(isObject(block.input) ? block.input : {}) },
      });
    }
  }
  const out: Json = { role: "assistant", content: text.length > 0 || toolCalls.length === 0 ? text : null };
  // The field DeepSeek and others use for reasoning; clients that do not know it ignore it.
  if (reasoning.length > 0) out.reasoning_content = reasoning;
  if (toolCalls.length > 0) out.tool_calls = toolCalls;
  out.refusal = null;
  return {
    id: chatIdOf(record.id),
    object: "chat.completion",
    created: Math.floor(Date.now() / 1000),
    model,
    choices: [{ index: 0, message: out, logprobs: null, finish_reason: finishReasonOf(record.stop_reason) }],
    usage: openAiUsageOf(record.usage),
  };
}

export function textOf(content: unknown): string {
  if (typeof content === "string") return content;
  if (!Array.isArray(content)) return "";
  return content
    .filter(isObject)
    .map((part) => (typeof part.text === "string" ? part.text : typeof part.refusal === "string" ? part.refusal : ""))
    .join("");
}

// ---------------------------------------------------------------------------
// errors

const ANTHROPIC_TYPES: ReadonlySet<string> = new Set([
  "invalid_request_error",
  "authentication_error",
  "permission_error",
  "not_found_error",
  "request_too_large",
  "rate_limit_error",
  "api_error",
  "overloaded_error",
  "timeout_error",
  "billing_error",
]);

const STATUS_TYPE: Readonly<Record<number, string>> = {
  400: "invalid_request_error",
  401: "authentication_error",
  402: "billing_error",
  403: "permission_error",
  404: "not_found_error",
  413: "request_too_large",
  429: "rate_limit_error",
  504: "timeout_error",
  529: "overloaded_error",
};

/** Error types of both APIs (Anthropic's, and OpenAI's `server_error`, `rate_limit_exceeded`) as the status they stand for. */
const TYPE_STATUS: Readonly<Record<string, number>> = {
  rate_limit_error: 429,
  rate_limit_exceeded: 429,
  overloaded_error: 529,
  api_error: 500,
  server_error: 500,
  invalid_request_error: 400,
  authentication_error: 401,
  billing_error: 402,
  permission_error: 403,
  not_found_error: 404,
  request_too_large: 413,
  timeout_error: 504,
};

/** The status an error type stands for (an error event in a stream carries a type, not a status). */
export function statusOfErrorType(type: string): number | undefined {
  return Object.hasOwn(TYPE_STATUS, type) ? TYPE_STATUS[type] : undefined;
}

/** The Anthropic error type for a status. */
export function anthropicErrorType(status: number): string {
  return (Object.hasOwn(STATUS_TYPE, status) ? STATUS_TYPE[status] : undefined) ?? (status >= 500 ? "api_error" : "invalid_request_error");
}

/** The sentence an error body carries, whichever shape it has. */
function errorMessageOf(body: unknown, status: number): string {
  if (typeof body === "string" && body.trim()) return body.trim().slice(0, 2000);
  if (isObject(body)) {
    const inner = body.error;
    if (isObject(inner) && typeof inner.message === "string" && inner.message) return inner.message;
    if (typeof inner === "string" && inner) return inner;
    if (typeof body.message === "string" && body.message) return body.message;
    if (typeof body.detail === "string" && body.detail) return body.detail;
  }
  return `The upstream answered HTTP ${status} without an error message.`;
}

/**
 * Any error body (OpenAI's, Anthropic's, a provider's own, a gateway error)
 * as Anthropic's `{"type":"error","error":{"type","message"}}`: the SDK maps
 * the status to its error class and shows the message.
 */
export function toAnthropicError(status: number, body: unknown): Json {
  const inner = isObject(body) && isObject(body.error) ? body.error : undefined;
  const declared = typeof inner?.type === "string" ? inner.type : undefined;
  // A type Anthropic defines is kept (an Anthropic upstream's own, or one both APIs share); any other follows the status.
  // The status decides where Anthropic gives it a type (OpenAI calls a 401 invalid_request_error; the SDK goes by the
  // status, a client reading the type should see the same); elsewhere a type Anthropic defines is kept.
  const type = !Object.hasOwn(STATUS_TYPE, status) && declared !== undefined && ANTHROPIC_TYPES.has(declared) && !(declared === "invalid_request_error" && status >= 500) ? declared : anthropicErrorType(status);
  const out: Json = { type: "error", error: { type, message: errorMessageOf(body, status) } };
  if (isObject(body) && typeof body.request_id === "string") out.request_id = body.request_id;
  return out;
}

/** Any error body as OpenAI's `{"error":{"message","type","code"}}`. */
export function toOpenAIError(status: number, body: unknown): Json {
  const inner = isObject(body) && isObject(body.error) ? body.error : undefined;
  const type = typeof inner?.type === "string" && inner.type !== "error" ? inner.type : anthropicErrorType(status);
  const code = inner?.code;
  return { error: { message: errorMessageOf(body, status), type, param: null, code: typeof code === "string" || typeof code === "number" ? code : null } };
}
