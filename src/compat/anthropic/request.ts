/**
 * Request bodies between the Anthropic Messages API and OpenAI Chat
 * Completions, both ways. Pure: the input is never mutated, nothing throws;
 * what cannot be said in the other API is an `ok: false` with a sentence
 * fragment and the path of the offending field (`messages[2].content[0]`),
 * which the gateway shows the client inside a 400.
 *
 * The rule for what has no equivalent: a field that only tunes the answer
 * (top_k, seed, penalties, reasoning effort…) is dropped; a field that changes
 * what the request does or what shape the answer has (server tools, n > 1,
 * JSON mode, documents…) fails, so the client learns now rather than
 * receiving a silently different answer.
 */

import { createHash } from "node:crypto";
import { providerToolIdOf, toolUseIdOf } from "./response.js";
import { withThoughtSignatures } from "../gemini.js";

export type Translated = { ok: true; body: Record<string, unknown> } | { ok: false; message: string; param?: string };

type Json = Record<string, unknown>;

/** Raised inside a translation and turned into `ok: false` at the exported boundary. */
class Untranslatable extends Error {
  constructor(
    message: string,
    readonly param?: string,
  ) {
    super(message);
  }
}

const fail = (message: string, param?: string): never => {
  throw new Untranslatable(message, param);
};

function isObject(value: unknown): value is Json {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

const isBlank = (text: string): boolean => text.trim().length === 0;

/** Runs a translation, so that neither a deliberate failure nor an unforeseen input shape escapes as an exception. */
function guarded(translate: () => Json): Translated {
  try {
    return { ok: true, body: translate() };
  } catch (error) {
    if (error instanceof Untranslatable) {
      return error.param === undefined ? { ok: false, message: error.message } : { ok: false, message: error.message, param: error.param };
    }
    return { ok: false, message: "the request body has a shape that could not be translated" };
  }
}

function requireObject(body: unknown): Json {
  if (!isObject(body)) return fail("the request body must be a JSON object");
  if (!Array.isArray(body.messages)) return fail("the request body must have a messages array", "messages");
  return body;
}

function optionalNumber(body: Json, field: string): number | undefined {
  const value = body[field];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "number" || !Number.isFinite(value)) return fail(`${field} must be a number`, field);
  return value;
}

function maxTokensValue(value: unknown, field: string): number | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "number" || !Number.isInteger(value) || value < 1) return fail(`${field} must be a positive integer`, field);
  return value;
}

// ===========================================================================
// Anthropic Messages request → OpenAI Chat Completions request

/**
 * An Anthropic Messages request as an OpenAI Chat Completions request for
 * `model` (the candidate's upstream model name).
 */
export function messagesToChatRequest(body: unknown, model: string, options: { maxTokensCap?: number | undefined; geminiSignatures?: boolean } = {}): Translated {
  return guarded(() => {
    const input = requireObject(body);
    for (const field of ["mcp_servers", "container"]) {
      // Both make the API run things on Anthropic's side; without them the request would do something else.
      if (input[field] !== undefined && input[field] !== null) fail(`${field} has no equivalent on OpenAI-compatible upstreams`, field);
    }

    const out: Json = { model };
    const messages: Json[] = [];
    const system = systemText(input.system);
    if (system) messages.push({ role: "system", content: system });
    (input.messages as unknown[]).forEach((message, i) => messages.push(...chatMessages(message, i)));
    // System messages inside the conversation (API version 2026-10-21) join the leading one: many
    // OpenAI-compatible servers' chat templates (Qwen, Llama, Mistral on vLLM) refuse a system message anywhere else.
    const systems = messages.filter((message) => message.role === "system").map((message) => message.content as string);
    const rest = messages.filter((message) => message.role !== "system");
    out.messages = systems.length > 0 ? [{ role: "system", content: systems.join("\n\n") }, ...rest] : rest;
    // Gemini 3 refuses function calls without their thought signature, which an Anthropic client cannot keep.
    if (options.geminiSignatures) out.messages = withThoughtSignatures(out.messages) ?? out.messages;

    // `max_tokens`, not `max_completion_tokens`: it is the field every OpenAI-compatible provider
    // (DeepSeek, Qwen, vLLM, Ollama, Mistral…) accepts, and OpenAI still takes it for non-reasoning models.
    // Anthropic clients ask for a lot (Claude Code: 32000 or 64000) where many OpenAI-compatible models
    // refuse more than their own limit (DeepSeek: 8192): the route's maxTokens, when set, caps it.
    const maxTokens = maxTokensValue(input.max_tokens, "max_tokens");
    if (maxTokens !== undefined) out.max_tokens = options.maxTokensCap !== undefined ? Math.min(maxTokens, options.maxTokensCap) : maxTokens;

    const stop = input.stop_sequences;
    if (stop !== undefined && stop !== null) {
      if (!Array.isArray(stop) || stop.some((s) => typeof s !== "string")) fail("stop_sequences must be a list of strings", "stop_sequences");
      if ((stop as string[]).length > 0) out.stop = [...(stop as string[])];
    }
    for (const field of ["temperature", "top_p"]) {
      const value = optionalNumber(input, field);
      if (value !== undefined) out[field] = value;
    }
    // top_k has no Chat Completions field (a few providers take it as an extension, most reject unknown fields): dropped.
    // thinking is dropped too: there is no portable field to ask an OpenAI-compatible model to reason.

    if (isObject(input.metadata) && typeof input.metadata.user_id === "string" && input.metadata.user_id) out.user = callerId(input.metadata.user_id, 64);

    if (input.stream === true) {
      out.stream = true;
      // The Anthropic stream reports usage in message_delta: ask the upstream for its usage chunk.
      out.stream_options = { include_usage: true };
    }

    const tools = chatTools(input.tools);
    if (tools.length > 0) {
      out.tools = tools;
      // OpenAI rejects tool_choice (and parallel_tool_calls) without tools, so both only go along with tools.
      const choice = chatToolChoice(input.tool_choice);
      if (choice !== undefined) out.tool_choice = choice;
      if (isObject(input.tool_choice) && input.tool_choice.disable_parallel_tool_use === true) out.parallel_tool_calls = false;
    }

    // output_config.format, or the structured-outputs beta's top-level output_format.
    const format = chatResponseFormat(input.output_config) ?? (input.output_format !== undefined && input.output_format !== null ? chatResponseFormat({ format: input.output_format }, "output_format") : undefined);
    if (format) out.response_format = format;
    // service_tier, context_management, output_config.effort and other fields only tune the answer: dropped.
    return out;
  });
}

/** The text of a system prompt (a string or text blocks; cache_control means nothing upstream). */
function systemText(system: unknown, param = "system"): string {
  if (system === undefined || system === null) return "";
  if (typeof system === "string") return system;
  if (!Array.isArray(system)) return fail("system must be a string or a list of text blocks", param);
  return system
    .map((block, j) => {
      if (!isObject(block) || block.type !== "text" || typeof block.text !== "string") return fail("system blocks must be text blocks", `${param}[${j}]`);
      return block.text;
    })
    .filter((text) => text.length > 0)
    .join("\n\n");
}

function chatMessages(message: unknown, i: number): Json[] {
  const param = `messages[${i}]`;
  if (!isObject(message)) return fail("each message must be an object", param);
  const content = message.content;
  if (typeof content !== "string" && !Array.isArray(content)) return fail("message content must be a string or a list of content blocks", `${param}.content`);
  switch (message.role) {
    case "user":
      return userChatMessages(content, param);
    case "assistant":
      return assistantChatMessages(content, param);
    case "system": {
      // API version 2026-10-21 allows system messages inside the conversation; Chat Completions has them too.
      const text = systemText(content, `${param}.content`);
      return text ? [{ role: "system", content: text }] : [];
    }
    default:
      return fail(`message role ${JSON.stringify(message.role)} is not user or assistant`, `${param}.role`);
  }
}

function userChatMessages(content: string | unknown[], param: string): Json[] {
  if (typeof content === "string") return [{ role: "user", content }];
  // Chat Completions wants the tool messages right after the assistant's tool_calls, so a turn's
  // tool_results go first, then images they returned, then whatever else the user said.
  const tools: Json[] = [];
  const toolImages: Json[] = [];
  const parts: Json[] = [];
  content.forEach((block, j) => {
    const path = `${param}.content[${j}]`;
    if (!isObject(block)) return fail("each content block must be an object", path);
    switch (block.type) {
      case "text":
        if (typeof block.text !== "string") return fail("a text block needs a text string", `${path}.text`);
        return void parts.push({ type: "text", text: block.text });
      case "image":
        return void parts.push(chatImagePart(block, path));
      case "tool_result": {
        const result = toolMessage(block, path);
        tools.push(result.message);
        if (result.images.length > 0) toolImages.push({ type: "text", text: `(images returned by tool ${String(block.tool_use_id)})` }, ...result.images);
        return;
      }
      case "thinking":
      case "redacted_thinking":
        return; // thinking belongs to assistant turns; nothing to say upstream
      default:
        return fail(`${blockName(block.type)} content blocks have no equivalent on OpenAI-compatible upstreams`, path);
    }
  });
  // One user message after the tool messages, images the tools returned first: chat templates that drop tool
  // messages and then require user and assistant to alternate (Mistral's on vLLM) refuse two in a row.
  const out = [...tools];
  const userParts = [...toolImages, ...parts];
  if (userParts.length > 0) out.push({ role: "user", content: partsContent(userParts) });
  else if (tools.length === 0) out.push({ role: "user", content: "" });
  return out;
}

/** Text-only content as one string (every provider takes it); with images, the parts array. */
function partsContent(parts: Json[]): string | Json[] {
  if (parts.every((part) => part.type === "text")) return parts.map((part) => part.text as string).join("\n");
  return parts;
}

function blockName(type: unknown): string {
  return typeof type === "string" ? type : "untyped";
}

function chatImagePart(block: Json, path: string): Json {
  const source = block.source;
  if (isObject(source) && source.type === "base64" && typeof source.media_type === "string" && typeof source.data === "string") {
    return { type: "image_url", image_url: { url: `data:${source.media_type};base64,${source.data}` } };
  }
  if (isObject(source) && source.type === "url" && typeof source.url === "string") return { type: "image_url", image_url: { url: source.url } };
  const kind = isObject(source) ? blockName(source.type) : "missing";
  return fail(`an image with a ${kind} source has no equivalent on OpenAI-compatible upstreams (only base64 and url images do)`, `${path}.source`);
}

function toolMessage(block: Json, path: string): { message: Json; images: Json[] } {
  if (typeof block.tool_use_id !== "string") return fail("a tool_result block needs a tool_use_id", `${path}.tool_use_id`);
  const texts: string[] = [];
  const images: Json[] = [];
  const content = block.content;
  if (typeof content === "string") texts.push(content);
  else if (Array.isArray(content)) {
    content.forEach((inner, k) => {
      const innerPath = `${path}.content[${k}]`;
      if (!isObject(inner)) return fail("each tool_result content block must be an object", innerPath);
      if (inner.type === "text" && typeof inner.text === "string") return void texts.push(inner.text);
      // A tool message carries text only: its images travel in a user message after the tool messages.
      if (inner.type === "image") return void images.push(chatImagePart(inner, innerPath));
      return fail(`${blockName(inner.type)} blocks inside a tool_result have no equivalent on OpenAI-compatible upstreams`, innerPath);
    });
  } else if (content !== undefined && content !== null) {
    return fail("tool_result content must be a string or a list of blocks", `${path}.content`);
  }
  let text = texts.join("\n");
  // A tool message has no error flag: the prefix is how the model still learns that the call failed.
  if (block.is_error === true) text = `Error: ${text}`;
  return { message: { role: "tool", tool_call_id: providerToolIdOf(block.tool_use_id), content: text }, images };
}

function assistantChatMessages(content: string | unknown[], param: string): Json[] {
  if (typeof content === "string") return content.length > 0 ? [{ role: "assistant", content }] : [];
  const texts: string[] = [];
  const calls: Json[] = [];
  content.forEach((block, j) => {
    const path = `${param}.content[${j}]`;
    if (!isObject(block)) return fail("each content block must be an object", path);
    switch (block.type) {
      case "text":
        if (typeof block.text !== "string") return fail("a text block needs a text string", `${path}.text`);
        return void texts.push(block.text);
      case "tool_use":
        if (typeof block.id !== "string") return fail("a tool_use block needs an id", `${path}.id`);
        if (typeof block.name !== "string") return fail("a tool_use block needs a name", `${path}.name`);
        return void calls.push({ id: providerToolIdOf(block.id), type: "function", function: { name: block.name, arguments: JSON.stringify(block.input ?? {}) } });
      case "thinking":
      case "redacted_thinking":
        return; // OpenAI-compatible upstreams take no reasoning back in the history
      default:
        return fail(`${blockName(block.type)} content blocks have no equivalent on OpenAI-compatible upstreams`, path);
    }
  });
  // Several text blocks are one answer split by citations or tool calls: joined as they were generated.
  const text = texts.join("");
  if (calls.length === 0) return text.length > 0 ? [{ role: "assistant", content: text }] : [];
  return [{ role: "assistant", content: text.length > 0 ? text : null, tool_calls: calls }];
}

function chatTools(tools: unknown): Json[] {
  if (tools === undefined || tools === null) return [];
  if (!Array.isArray(tools)) return fail("tools must be a list", "tools");
  return tools.map((tool, i) => {
    const param = `tools[${i}]`;
    if (!isObject(tool)) return fail("each tool must be an object", param);
    if (tool.type !== undefined && tool.type !== null && tool.type !== "custom") {
      return fail(`the server tool ${blockName(tool.type)} has no equivalent on OpenAI-compatible upstreams`, param);
    }
    if (typeof tool.name !== "string") return fail("a tool needs a name", `${param}.name`);
    const fn: Json = { name: tool.name };
    if (typeof tool.description === "string") fn.description = tool.description;
    fn.parameters = isObject(tool.input_schema) ? tool.input_schema : { type: "object", properties: {} };
    // Strict tool use is OpenAI's strict function calling: the same promise that the input fits the schema.
    if (tool.strict === true) fn.strict = true;
    return { type: "function", function: fn };
  });
}

function chatToolChoice(choice: unknown): unknown {
  if (choice === undefined || choice === null) return undefined;
  if (!isObject(choice)) return fail("tool_choice must be an object", "tool_choice");
  switch (choice.type) {
    case "auto":
      return "auto";
    case "any":
      return "required";
    case "none":
      return "none";
    case "tool":
      if (typeof choice.name !== "string") return fail("tool_choice of type tool needs a name", "tool_choice.name");
      return { type: "function", function: { name: choice.name } };
    default:
      return fail(`tool_choice type ${JSON.stringify(choice.type)} has no equivalent on OpenAI-compatible upstreams`, "tool_choice.type");
  }
}

/** Anthropic structured outputs (`output_config.format`) as OpenAI's json_schema response format. */
function chatResponseFormat(config: unknown, param = "output_config.format"): Json | undefined {
  if (!isObject(config) || config.format === undefined || config.format === null) return undefined;
  const format = config.format;
  if (!isObject(format) || format.type !== "json_schema" || !isObject(format.schema)) {
    return fail(`${param} must be a json_schema format with a schema`, param);
  }
  return { type: "json_schema", json_schema: { name: "output", schema: format.schema } };
}

// ===========================================================================
// OpenAI Chat Completions request → Anthropic Messages request

/**
 * An OpenAI Chat Completions request as an Anthropic Messages request for
 * `model`. Anthropic requires max_tokens: `defaultMaxTokens` fills it in when
 * the client sent none. Only fields the Messages API (2023-06-01) knows are emitted.
 */
export function chatToMessagesRequest(body: unknown, model: string, options: { defaultMaxTokens: number }): Translated {
  return guarded(() => {
    const input = requireObject(body);
    rejectUnsupported(input);

    const systems: SystemText[] = [];
    const turns: Turn[] = [];
    const ids = new ToolIds();
    (input.messages as unknown[]).forEach((message, i) => {
      const turn = anthropicTurn(message, i, systems, ids);
      if (turn) turns.push(turn);
    });

    const out: Json = { model };
    // Anthropic has one system prompt (2023-06-01 has no system role in messages): every system and
    // developer message joins it, in order, wherever it stood in the conversation.
    const kept = systems.filter((entry) => !isBlank(entry.text));
    const system = kept.map((entry) => entry.text).join("\n\n");
    // Cache breakpoints the client marked (OpenRouter's convention, which clients of Claude send) keep the blocks.
    if (kept.some((entry) => entry.cache)) out.system = kept.map((entry) => ({ type: "text", text: entry.text, ...(entry.cache ? { cache_control: entry.cache } : {}) }));
    else if (system) out.system = system;
    out.messages = mergeTurns(turns);
    const lastTurn = (out.messages as Json[]).at(-1);
    if (lastTurn?.role === "assistant" && turns.at(-1)?.role === "user") {
      // The user's last message was empty: without it the assistant's would be a prefill to continue, not answer.
      return fail("the last user message is empty, which Anthropic rejects", `messages[${(input.messages as unknown[]).length - 1}].content`);
    }
    if ((out.messages as Json[]).length === 0) {
      // A prompt that is only system text (OpenAI answers it; Anthropic needs a message): it becomes the user's.
      if (!system) return fail("the conversation has no user or assistant content", "messages");
      out.messages = [{ role: "user", content: system }];
      delete out.system;
    }
    out.max_tokens = maxTokensValue(input.max_completion_tokens, "max_completion_tokens") ?? maxTokensValue(input.max_tokens, "max_tokens") ?? options.defaultMaxTokens;

    const stop = input.stop;
    if (stop !== undefined && stop !== null) {
      const list = typeof stop === "string" ? [stop] : stop;
      if (!Array.isArray(list) || list.some((s) => typeof s !== "string")) return fail("stop must be a string or a list of strings", "stop");
      // Anthropic rejects a stop sequence with no visible character ("\n" is common from OpenAI clients): those cannot be kept.
      const kept = (list as string[]).filter((entry) => !isBlank(entry));
      if (kept.length > 0) out.stop_sequences = kept;
    }
    const format = input.response_format;
    if (isObject(format) && format.type === "json_schema") {
      const spec = format.json_schema;
      if (!isObject(spec) || !isObject(spec.schema)) return fail("response_format json_schema needs a schema object", "response_format.json_schema.schema");
      out.output_config = { format: { type: "json_schema", schema: spec.schema } };
    }
    const temperature = optionalNumber(input, "temperature");
    // OpenAI's range is 0–2, Anthropic's 0–1 (it rejects more): above 1 is clamped to the most random Anthropic allows.
    if (temperature !== undefined) out.temperature = Math.min(temperature, 1);
    const topP = optionalNumber(input, "top_p");
    // Recent Claude models refuse temperature and top_p together; temperature is the one clients mean to set.
    if (topP !== undefined && temperature === undefined) out.top_p = topP;

    const user = typeof input.user === "string" ? input.user : typeof input.safety_identifier === "string" ? input.safety_identifier : undefined;
    if (user) out.metadata = { user_id: callerId(user, 256) };

    // stream_options is not forwarded: Anthropic streams always report usage.
    if (input.stream === true) out.stream = true;

    const tools = anthropicTools(input);
    if (tools.length > 0) {
      out.tools = tools;
      // Anthropic rejects a tool_choice without tools, so both go along only with tools.
      const choice = anthropicToolChoice(input.tool_choice ?? legacyFunctionChoice(input.function_call));
      if (input.parallel_tool_calls === false && choice?.type !== "none") {
        out.tool_choice = { ...(choice ?? { type: "auto" }), disable_parallel_tool_use: true };
      } else if (choice) out.tool_choice = choice;
    }
    // Dropped, they only tune the answer and Anthropic has no field for them: frequency_penalty,
    // presence_penalty, seed, logit_bias, store, service_tier, reasoning_effort, verbosity, modalities,
    // prediction, prompt_cache_key, and OpenAI's own metadata.
    return out;
  });
}

/** Fields that change the shape of the answer, which an Anthropic upstream cannot give. */
function rejectUnsupported(input: Json): void {
  if (input.n !== undefined && input.n !== null && input.n !== 1) fail("n other than 1 (several choices) is not supported by Anthropic routes", "n");
  const format = input.response_format;
  // A JSON schema becomes Anthropic's structured output (output_config.format); plain JSON mode has no equivalent.
  if (isObject(format) && format.type !== "text" && format.type !== "json_schema") {
    fail(`response_format ${blockName(format.type)} is not supported by Anthropic routes (json_schema is)`, "response_format");
  }
  if (input.logprobs === true) fail("logprobs are not supported by Anthropic routes", "logprobs");
  if (typeof input.top_logprobs === "number" && input.top_logprobs > 0) fail("top_logprobs are not supported by Anthropic routes", "top_logprobs");
  if (input.audio !== undefined && input.audio !== null) fail("audio output is not supported by Anthropic routes", "audio");
  // It makes the request search the web: dropped, the answer would silently be one without a search.
  if (input.web_search_options !== undefined && input.web_search_options !== null) fail("web_search_options (web search) is not supported by Anthropic routes", "web_search_options");
}

/** One translated message before merging: `content` is a block list, or a string for a lone user text. */
interface Turn {
  role: "user" | "assistant";
  content: string | Json[];
}

/**
 * Tool-call ids as Anthropic takes them: unique in the whole request. OpenAI-compatible servers only keep them
 * unique within one answer (Kimi numbers calls `name:0` again every turn; mapping foreign characters to `_` can
 * merge two), and Anthropic refuses a history that repeats one. A tool message answers the earliest call of the
 * latest assistant turn that has its id and is not answered yet.
 */
class ToolIds {
  private readonly used = new Set<string>();
  private open = new Map<string, string[]>();
  /** A user or tool message came since the last assistant message: the next one begins a new turn. */
  private fresh = true;

  /** An assistant message with tool calls: the first after a user or tool message begins a turn (consecutive ones merge into one). */
  turn(): void {
    if (this.fresh) this.open = new Map();
    this.fresh = false;
  }

  /** A user or tool message: the assistant message after it is a new turn. */
  other(): void {
    this.fresh = true;
  }

  call(clientId: string): string {
    const base = toolUseIdOf(clientId);
    let id = base;
    for (let n = 2; this.used.has(id); n++) id = `${base}_${n}`;
    this.used.add(id);
    const list = this.open.get(clientId);
    if (list) list.push(id);
    else this.open.set(clientId, [id]);
    return id;
  }

  result(clientId: string): string {
    this.fresh = true;
    return this.open.get(clientId)?.shift() ?? toolUseIdOf(clientId);
  }
}

/** A system or developer message's text, and the cache breakpoint the client put on it. */
interface SystemText {
  readonly text: string;
  readonly cache: Json | undefined;
}

/** The cache_control of the last part that has one (a breakpoint caches everything before it). */
function cacheOf(content: unknown): Json | undefined {
  if (!Array.isArray(content)) return undefined;
  let cache: Json | undefined;
  for (const part of content) if (isObject(part) && isObject(part.cache_control)) cache = part.cache_control;
  return cache;
}

function anthropicTurn(message: unknown, i: number, systems: SystemText[], ids: ToolIds): Turn | undefined {
  const param = `messages[${i}]`;
  if (!isObject(message)) return fail("each message must be an object", param);
  switch (message.role) {
    case "system":
    case "developer":
      systems.push({ text: textOf(message.content, `${param}.content`, false), cache: cacheOf(message.content) });
      return undefined;
    case "user":
      ids.other();
      return userTurn(message.content, param, i);
    case "assistant":
      return assistantTurn(message, param, i, ids);
    case "tool":
      return toolTurn(message, param, ids);
    case "function":
      return fail("legacy function messages are not supported by Anthropic routes; send tool messages instead", `${param}.role`);
    default:
      return fail(`message role ${JSON.stringify(message.role)} is not system, developer, user, assistant or tool`, `${param}.role`);
  }
}

/** The text of a string or a list of text parts (refusal parts count as text where `refusals` is set). */
function textOf(content: unknown, param: string, refusals: boolean, separator = "\n\n"): string {
  if (content === undefined || content === null) return "";
  if (typeof content === "string") return content;
  if (!Array.isArray(content)) return fail("message content must be a string or a list of text parts", param);
  return content
    .map((part, k) => {
      if (isObject(part) && part.type === "text" && typeof part.text === "string") return part.text;
      if (refusals && isObject(part) && part.type === "refusal" && typeof part.refusal === "string") return part.refusal;
      return fail(`${isObject(part) ? blockName(part.type) : "untyped"} parts are not supported in this message`, `${param}[${k}]`);
    })
    .filter((text) => text.length > 0)
    .join(separator);
}

function userTurn(content: unknown, param: string, i: number): Turn {
  if (typeof content === "string") {
    // An empty one is left out once turns are merged (Anthropic refuses it; next to tool results it says nothing).
    return { role: "user", content };
  }
  if (!Array.isArray(content)) return fail("message content must be a string or a list of content parts", `${param}.content`);
  const blocks: Json[] = [];
  content.forEach((part, k) => {
    const path = `${param}.content[${k}]`;
    if (!isObject(part)) return fail("each content part must be an object", path);
    switch (part.type) {
      case "text":
        if (typeof part.text !== "string") return fail("a text part needs a text string", `${path}.text`);
        // Anthropic rejects empty and whitespace-only text blocks.
        if (!isBlank(part.text)) blocks.push({ type: "text", text: part.text, ...(isObject(part.cache_control) ? { cache_control: part.cache_control } : {}) });
        return;
      case "image_url":
        return void blocks.push(anthropicImage(part, path));
      default:
        return fail(`${blockName(part.type)} content parts are not supported by Anthropic routes`, path);
    }
  });
  return { role: "user", content: blocks };
}

const IMAGE_TYPES = ["image/jpeg", "image/png", "image/gif", "image/webp"];
const IMAGE_ALIASES: Record<string, string> = { "image/jpg": "image/jpeg", "image/pjpeg": "image/jpeg" };
const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/** The image type its first bytes show, for the four types Anthropic takes. */
function sniffImage(base64: string): string | undefined {
  const head = Buffer.from(base64.slice(0, 24), "base64");
  if (head[0] === 0xff && head[1] === 0xd8 && head[2] === 0xff) return "image/jpeg";
  if (head.subarray(0, 8).equals(PNG_SIGNATURE)) return "image/png";
  if (head.subarray(0, 4).toString("latin1") === "GIF8") return "image/gif";
  if (head.subarray(0, 4).toString("latin1") === "RIFF" && head.subarray(8, 12).toString("latin1") === "WEBP") return "image/webp";
  return undefined;
}

const SAFE_CALLER_ID = /^[a-zA-Z0-9_-]+$/;

/**
 * A caller id the other API accepts: as sent when it fits, else a stable hash (the same user keeps the same id).
 * Claude Code's metadata.user_id is a JSON string of about 180 characters where OpenAI caps `user` at 64, and an
 * e-mail address in `user` is refused by Anthropic.
 */
function callerId(id: string, max: number): string {
  return SAFE_CALLER_ID.test(id) && id.length <= max ? id : createHash("sha256").update(id).digest("hex").slice(0, Math.min(64, max));
}

function anthropicImage(part: Json, path: string): Json {
  const url = isObject(part.image_url) ? part.image_url.url : part.image_url;
  if (typeof url !== "string") return fail("an image_url part needs a url", `${path}.image_url.url`);
  if (/^https?:\/\//i.test(url)) return { type: "image", source: { type: "url", url } };
  const data = /^data:([^;,]+);base64,(.*)$/s.exec(url);
  if (!data) return fail("an image url must be http(s) or a base64 data: URL", `${path}.image_url.url`);
  // The bytes say what the image is: clients label JPEGs image/jpg, or screenshots image/png whatever they are, and
  // Anthropic refuses an image whose label does not match its content.
  const declared = data[1]!.toLowerCase();
  const mediaType = sniffImage(data[2]!) ?? IMAGE_ALIASES[declared] ?? declared;
  if (!IMAGE_TYPES.includes(mediaType)) return fail(`images of type ${mediaType} are not supported by Anthropic routes (jpeg, png, gif, webp are)`, `${path}.image_url.url`);
  return { type: "image", source: { type: "base64", media_type: mediaType, data: data[2]! } };
}


function assistantTurn(message: Json, param: string, i: number, ids: ToolIds): Turn | undefined {
  const blocks: Json[] = [];
  let text = textOf(message.content, `${param}.content`, true, "");
  if (!text && typeof message.refusal === "string") text = message.refusal;
  if (!isBlank(text)) blocks.push({ type: "text", text });
  // reasoning_content (DeepSeek) / reasoning is dropped: a thinking block needs a signature only Anthropic can make.

  const calls = message.tool_calls;
  if (calls !== undefined && calls !== null) {
    if (!Array.isArray(calls)) return fail("tool_calls must be a list", `${param}.tool_calls`);
    if (calls.length > 0) ids.turn();
    calls.forEach((call, j) => {
      const path = `${param}.tool_calls[${j}]`;
      if (!isObject(call)) return fail("each tool call must be an object", path);
      if (call.type !== undefined && call.type !== "function") return fail(`${blockName(call.type)} tool calls are not supported by Anthropic routes`, `${path}.type`);
      if (typeof call.id !== "string" || call.id.length === 0) return fail("a tool call needs an id", `${path}.id`);
      const fn = call.function;
      if (!isObject(fn) || typeof fn.name !== "string") return fail("a tool call needs a function name", `${path}.function.name`);
      blocks.push({ type: "tool_use", id: ids.call(call.id), name: fn.name, input: toolInput(fn.arguments, `${path}.function.arguments`) });
    });
  } else if (isObject(message.function_call)) {
    const fn = message.function_call;
    if (typeof fn.name !== "string") return fail("a function call needs a name", `${param}.function_call.name`);
    // Legacy function calls have no id; a stable one keeps the translation pure.
    blocks.push({ type: "tool_use", id: `toolu_gw_${i}`, name: fn.name, input: toolInput(fn.arguments, `${param}.function_call.arguments`) });
  }
  // Anthropic rejects an assistant turn with no content: one with neither text nor calls says nothing anyway.
  return blocks.length > 0 ? { role: "assistant", content: blocks } : undefined;
}

function toolInput(args: unknown, param: string): Json {
  if (args === undefined || args === null) return {};
  if (isObject(args)) return { ...args }; // some clients send the object itself
  if (typeof args !== "string") return fail("tool call arguments must be a JSON string", param);
  if (isBlank(args)) return {};
  // These are the model's own past words (a call cut short by max_tokens leaves half an object): OpenAI
  // keeps any string, so refusing it here would make the conversation unusable on Anthropic routes for good.
  let parsed: unknown;
  try {
    parsed = JSON.parse(args);
  } catch {
    return {};
  }
  return isObject(parsed) ? parsed : {};
}

function toolTurn(message: Json, param: string, ids: ToolIds): Turn {
  if (typeof message.tool_call_id !== "string" || message.tool_call_id.length === 0) return fail("a tool message needs a tool_call_id", `${param}.tool_call_id`);
  const content = textOf(message.content, `${param}.content`, false, "\n");
  return { role: "user", content: [{ type: "tool_result", tool_use_id: ids.result(message.tool_call_id), content }] };
}

/**
 * Consecutive turns of one role become one message, so a run of tool messages is one user
 * message answering the assistant turn before it, and roles alternate as Anthropic requires.
 * In a merged user message the tool_result blocks go first (Anthropic rejects them after other content).
 */
function mergeTurns(turns: Turn[]): Json[] {
  const merged: Turn[] = [];
  for (const turn of turns) {
    const last = merged[merged.length - 1];
    if (last && last.role === turn.role) last.content = [...blocksOf(last.content), ...blocksOf(turn.content)];
    else merged.push({ role: turn.role, content: turn.content });
  }
  for (const turn of merged) {
    if (turn.role === "user" && Array.isArray(turn.content)) {
      turn.content = [...turn.content.filter((b) => b.type === "tool_result"), ...turn.content.filter((b) => b.type !== "tool_result")];
    }
  }
  trimPrefill(merged);
  // Emptiness is judged after merging (" " then "\n" merge into nothing): Anthropic refuses an empty turn.
  return merged.filter((turn) => (typeof turn.content === "string" ? !isBlank(turn.content) : turn.content.length > 0)).map((turn) => ({ role: turn.role, content: turn.content }));
}

function blocksOf(content: string | Json[]): Json[] {
  if (typeof content !== "string") return content;
  return isBlank(content) ? [] : [{ type: "text", text: content }];
}

/**
 * A final assistant message is a prefill, and Anthropic rejects one ending in whitespace:
 * the trailing whitespace is trimmed (the model writes its own).
 */
function trimPrefill(turns: Turn[]): void {
  const last = turns[turns.length - 1];
  if (!last || last.role !== "assistant" || typeof last.content === "string") return;
  const blocks = last.content;
  const tail = blocks[blocks.length - 1];
  if (!tail || tail.type !== "text" || typeof tail.text !== "string") return;
  const text = tail.text.trimEnd();
  if (text === tail.text) return;
  last.content = text ? [...blocks.slice(0, -1), { ...tail, text }] : blocks.slice(0, -1);
  if (last.content.length === 0) turns.pop();
}

function anthropicTools(input: Json): Json[] {
  const out: Json[] = [];
  const tools = input.tools;
  if (tools !== undefined && tools !== null) {
    if (!Array.isArray(tools)) return fail("tools must be a list", "tools");
    tools.forEach((tool, i) => {
      const param = `tools[${i}]`;
      if (!isObject(tool)) return fail("each tool must be an object", param);
      if (tool.type !== "function") return fail(`${blockName(tool.type)} tools are not supported by Anthropic routes (function tools are)`, `${param}.type`);
      out.push(anthropicTool(tool.function, `${param}.function`));
    });
  }
  const functions = input.functions;
  if (functions !== undefined && functions !== null) {
    if (!Array.isArray(functions)) return fail("functions must be a list", "functions");
    functions.forEach((fn, i) => out.push(anthropicTool(fn, `functions[${i}]`)));
  }
  return out;
}

function anthropicTool(fn: unknown, param: string): Json {
  if (!isObject(fn) || typeof fn.name !== "string") return fail("a function tool needs a name", `${param}.name`);
  const tool: Json = { name: fn.name };
  if (typeof fn.description === "string" && fn.description.length > 0) tool.description = fn.description;
  const parameters = fn.parameters;
  if (parameters === undefined || parameters === null) tool.input_schema = { type: "object", properties: {} };
  else if (!isObject(parameters)) return fail("function parameters must be a JSON schema object", `${param}.parameters`);
  // Anthropic needs an object schema; a schema that leaves out `type` (as some clients do) means one.
  else if (parameters.type === undefined) tool.input_schema = { type: "object", ...parameters };
  else if (parameters.type !== "object") return fail("function parameters must be an object schema for Anthropic routes", `${param}.parameters.type`);
  else tool.input_schema = parameters;
  // `strict` is dropped: Anthropic's strict tool use is not available on every model or API version.
  return tool;
}

function anthropicToolChoice(choice: unknown): Json | undefined {
  if (choice === undefined || choice === null) return undefined;
  if (choice === "auto") return { type: "auto" };
  if (choice === "required") return { type: "any" };
  if (choice === "none") return { type: "none" };
  if (isObject(choice) && choice.type === "function" && isObject(choice.function) && typeof choice.function.name === "string") {
    return { type: "tool", name: choice.function.name };
  }
  return fail("tool_choice must be auto, required, none or a function", "tool_choice");
}

/** Legacy `function_call` ("auto" | "none" | {name}) in tool_choice's terms. */
function legacyFunctionChoice(choice: unknown): unknown {
  if (isObject(choice) && typeof choice.name === "string") return { type: "function", function: { name: choice.name } };
  return choice;
}

// ---------------------------------------------------------------------------
// Messages → Messages, for an upstream on an older API version

/** The API version that allows `role: "system"` messages inside `messages`. */
const SYSTEM_MESSAGES_VERSION = "2026-10-21";

/**
 * A Messages body written for API 2026-10-21 (system messages inside the
 * conversation), as an upstream on an older version accepts it: each such
 * message's text joins the top-level `system`, in order. Undefined when there
 * is nothing to change or the upstream's version allows them, so a body is only
 * rewritten when it would otherwise be refused.
 */
export function withSystemMessagesHoisted(body: unknown, upstreamVersion: string | undefined): Json | undefined {
  if (upstreamVersion !== undefined && upstreamVersion >= SYSTEM_MESSAGES_VERSION) return undefined;
  if (!isObject(body) || !Array.isArray(body.messages)) return undefined;
  const messages = body.messages as unknown[];
  if (!messages.some((message) => isObject(message) && message.role === "system")) return undefined;
  const blocks: Json[] = typeof body.system === "string" ? (body.system.trim() ? [{ type: "text", text: body.system }] : []) : Array.isArray(body.system) ? [...(body.system as Json[])] : [];
  const rest: unknown[] = [];
  for (const message of messages) {
    if (!isObject(message) || message.role !== "system") {
      rest.push(message);
      continue;
    }
    if (typeof message.content === "string") {
      if (message.content.trim()) blocks.push({ type: "text", text: message.content });
    } else if (Array.isArray(message.content)) {
      for (const block of message.content) if (isObject(block) && block.type === "text" && typeof block.text === "string" && block.text.trim()) blocks.push(block);
    }
  }
  return { ...body, system: blocks, messages: rest };
}
