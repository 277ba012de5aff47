/**
 * Streaming answers, Chat Completions ⇄ Anthropic Messages, one upstream
 * event at a time. Both translators are small state machines that never
 * throw, whatever order or shape the upstream's events come in: what they
 * cannot place is dropped, and their output is always a stream the official
 * SDKs accept.
 */
import { randomBytes } from "node:crypto";
import { anthropicUsageOf, chatIdOf, finishReasonOf, messageIdOf, openAiUsageOf, stopReasonOf, textOf, toolInputOf, toolUseIdOf } from "./response.js";

type Json = Record<string, unknown>;

export interface AnthropicEvent {
  readonly event: string;
  readonly data: Record<string, unknown>;
}

const isObject = (value: unknown): value is Json => typeof value === "object" && value !== null && !Array.isArray(value);
const str = (value: unknown): string | undefined => (typeof value === "string" ? value : undefined);
const num = (value: unknown): number | undefined => (typeof value === "number" && Number.isFinite(value) ? value : undefined);

const event = (type: string, data: Json): AnthropicEvent => ({ event: type, data: { type, ...data } });

/** A content block whose content is held back until the live block closes. */
interface PendingBlock {
  readonly kind: "text" | "tool_use";
  id: string;
  name: string;
  buffer: string;
}

/** The tool call that streams live; its start waits for its name (the SDK keeps content_block_start's name only). */
interface LiveTool {
  id: string;
  name: string;
  /** Arguments that came before the name. */
  held: string;
  opened: boolean;
}

// ---------------------------------------------------------------------------
// Chat Completions chunks → Anthropic events

/**
 * An OpenAI Chat Completions stream as an Anthropic Messages stream.
 *
 * Anthropic content blocks are sequential (one open at a time, indices 0..n-1)
 * while OpenAI tool calls may interleave. Text and the first tool call stream
 * live; once a tool_use block is open, anything else (another tool call, late
 * text) is buffered per block and flushed, whole, when the choice finishes.
 * Every block thus ends complete and in order whatever the interleaving.
 */
export class ChatToMessagesStream {
  private readonly model: string;
  private readonly stopSequences: readonly string[] | undefined;
  private readonly inputTokens: number;

  private messageStarted = false;
  private over = false;
  private nextIndex = 0;
  /** The open block. */
  private live: { kind: "text" | "tool_use"; index: number } | undefined;
  private liveTool: LiveTool | undefined;
  /** Every tool call seen, by its OpenAI index: undefined for the live one, else its pending block. */
  private readonly tools = new Map<number, PendingBlock | undefined>();
  private readonly pending: PendingBlock[] = [];
  private lateText: PendingBlock | undefined;
  /** Choice 0 finished: its blocks are closed and later deltas have nowhere to go. */
  private choiceDone = false;
  private stop: { stop_reason: string; stop_sequence: string | null } | undefined;
  private usage: Json | undefined;
  /** Whitespace-only text before anything else: Anthropic refuses such a block back in history, so it waits. */
  private heldSpace = "";
  private sawRefusal = false;
  /** Upstream tool call index → the key its deltas go to: a new id and name at an index already used is another call (Ollama, Gemini). */
  private readonly keyOf = new Map<number, { key: number; id: string }>();
  private nextKey = 1 << 20;

  constructor(options: { model: string; stopSequences?: readonly string[]; inputTokens?: number }) {
    this.model = options.model;
    this.stopSequences = options.stopSequences;
    this.inputTokens = options.inputTokens ?? 0;
  }

  /** message_start was emitted. */
  get started(): boolean {
    return this.messageStarted;
  }

  /** One parsed chat.completion.chunk. */
  push(chunk: Record<string, unknown>): AnthropicEvent[] {
    if (this.over) return [];
    const out: AnthropicEvent[] = [];
    this.start(out, chunk.id);
    if (isObject(chunk.usage)) this.usage = chunk.usage;
    const choices = Array.isArray(chunk.choices) ? chunk.choices : [];
    // Anthropic has one answer: only choice 0 is translated.
    const choice = choices.find((c): c is Json => isObject(c) && (c.index === 0 || c.index === undefined));
    if (!choice || this.choiceDone) return out;
    const delta = isObject(choice.delta) ? choice.delta : {};
    // reasoning_content / reasoning are dropped: a thinking block needs a signature only Anthropic can make.
    // Content may come as an array of parts (Mistral's reasoning models): its text parts are the text.
    const refusal = str(delta.refusal) ?? "";
    if (refusal.length > 0) this.sawRefusal = true;
    const text = textOf(delta.content) + refusal;
    if (text.length > 0) this.text(out, text);
    if (Array.isArray(delta.tool_calls)) {
      for (const call of delta.tool_calls) if (isObject(call)) this.toolDelta(out, this.keyFor(num(call.index) ?? 0, str(call.id) ?? "", isObject(call.function) && !!str(call.function.name)), call);
    } else if (isObject(delta.function_call)) {
      // The legacy single function call: a key of its own, apart from tool_calls indices.
      this.toolDelta(out, -1, { function: delta.function_call });
    }
    // Some servers send finish_reason "" on every chunk where others send null.
    if (choice.finish_reason !== null && choice.finish_reason !== undefined && choice.finish_reason !== "") {
      this.stop = stopReasonOf(choice, this.stopSequences);
      // OpenAI ends a refusal with "stop", as the complete answer's mapping knows.
      if (this.sawRefusal && this.stop.stop_reason === "end_turn") this.stop = { stop_reason: "refusal", stop_sequence: null };
      // The usage chunk comes after the finish chunk: message_delta waits for end().
      this.closeAll(out);
      this.choiceDone = true;
    }
    return out;
  }

  /** The upstream finished ([DONE], or its body ended): closes everything. */
  end(): AnthropicEvent[] {
    if (this.over) return [];
    const out: AnthropicEvent[] = [];
    this.start(out, undefined);
    this.closeAll(out);
    this.over = true;
    const sawTools = this.tools.size > 0;
    let stop = this.stop ?? { stop_reason: sawTools ? "tool_use" : "end_turn", stop_sequence: null };
    // Some providers end tool calls with finish_reason "stop": the blocks say what the client must do next.
    if (sawTools && stop.stop_reason === "end_turn") stop = { stop_reason: "tool_use", stop_sequence: null };
    // And a tool_calls finish with no call (a server's tool parser that failed) would leave an agent waiting for one.
    if (!sawTools && stop.stop_reason === "tool_use") stop = { stop_reason: "end_turn", stop_sequence: null };
    // The SDK throws on a message_delta without usage, and takes input_tokens from it when present.
    const usage: Json = { output_tokens: 0 };
    if (this.usage) {
      const known = anthropicUsageOf(this.usage);
      usage.output_tokens = known.output_tokens;
      // Left out when the upstream did not say: the SDK would copy a 0 over message_start's figure.
      if (num(this.usage.prompt_tokens) !== undefined) usage.input_tokens = known.input_tokens;
      if (known.cache_read_input_tokens !== undefined) usage.cache_read_input_tokens = known.cache_read_input_tokens;
    }
    out.push(event("message_delta", { delta: { stop_reason: stop.stop_reason, stop_sequence: stop.stop_sequence }, usage }));
    out.push(event("message_stop", {}));
    return out;
  }

  /** The stream failed and cannot be completed. Open blocks stay open: the SDK throws on the error event. */
  fail(message: string, type = "api_error"): AnthropicEvent[] {
    if (this.over) return [];
    this.over = true;
    // Anthropic sends error events before message_start too: nothing else is needed.
    return [{ event: "error", data: { type: "error", error: { type, message } } }];
  }

  private start(out: AnthropicEvent[], id: unknown): void {
    if (this.messageStarted) return;
    this.messageStarted = true;
    out.push(
      event("message_start", {
        message: {
          id: messageIdOf(id),
          type: "message",
          role: "assistant",
          model: this.model,
          content: [],
          stop_reason: null,
          stop_sequence: null,
          usage: { input_tokens: this.inputTokens, output_tokens: 0 },
        },
      }),
    );
  }

  private text(out: AnthropicEvent[], text: string): void {
    if (this.live === undefined && this.tools.size === 0 && this.nextIndex === 0) {
      // Nothing opened yet: whitespace waits, to be dropped if a tool call comes first.
      text = this.heldSpace + text;
      this.heldSpace = "";
      if (text.trim() === "") {
        this.heldSpace = text;
        return;
      }
    }
    if (this.live?.kind === "text") {
      out.push(event("content_block_delta", { index: this.live.index, delta: { type: "text_delta", text } }));
      return;
    }
    if (this.live === undefined && this.tools.size === 0) {
      const index = this.open(out, { type: "text", text: "" }, "text");
      out.push(event("content_block_delta", { index, delta: { type: "text_delta", text } }));
      return;
    }
    // Text after tool calls began: a block of its own, after the tool blocks seen so far.
    if (!this.lateText) {
      this.lateText = { kind: "text", id: "", name: "", buffer: "" };
      this.pending.push(this.lateText);
    }
    this.lateText.buffer += text;
  }

  private toolDelta(out: AnthropicEvent[], key: number, call: Json): void {
    const fn = isObject(call.function) ? call.function : {};
    const id = str(call.id) ?? "";
    const name = str(fn.name) ?? "";
    const args = str(fn.arguments) ?? "";
    if (!this.tools.has(key)) {
      if (this.liveTool === undefined) {
        // The first tool call streams live: it closes the text before it (whitespace alone is dropped).
        this.heldSpace = "";
        this.closeLive(out);
        this.tools.set(key, undefined);
        this.liveTool = { id: "", name: "", held: "", opened: false };
        this.liveToolDelta(out, id, name, args);
      } else {
        const block: PendingBlock = { kind: "tool_use", id, name, buffer: args };
        this.pending.push(block);
        this.tools.set(key, block);
        // Text after this call belongs after it, not in a block before it.
        this.lateText = undefined;
      }
      return;
    }
    const block = this.tools.get(key);
    if (block === undefined) {
      this.liveToolDelta(out, id, name, args);
      return;
    }
    // Only the first delta names the call; some providers repeat id and name in later ones.
    if (!block.id) block.id = id;
    if (!block.name) block.name = name;
    block.buffer += args;
  }

  /** A new id with a name is a new call; a new id alone is the same call (some servers change the id in every chunk). */
  private keyFor(index: number, id: string, named: boolean): number {
    const current = this.keyOf.get(index);
    if (current === undefined) {
      this.keyOf.set(index, { key: index, id });
      return index;
    }
    if (named && id && current.id && id !== current.id) {
      const next = { key: this.nextKey++, id };
      this.keyOf.set(index, next);
      return next.key;
    }
    if (id && !current.id) current.id = id;
    return current.key;
  }

  private liveToolDelta(out: AnthropicEvent[], id: string, name: string, args: string): void {
    const tool = this.liveTool;
    if (!tool) return;
    if (!tool.id) tool.id = id;
    if (!tool.name) tool.name = name;
    if (!tool.opened) {
      tool.held += args;
      if (tool.name) this.openTool(out, tool);
      return;
    }
    if (args.length > 0 && this.live) out.push(event("content_block_delta", { index: this.live.index, delta: { type: "input_json_delta", partial_json: args } }));
  }

  private openTool(out: AnthropicEvent[], tool: LiveTool): void {
    tool.opened = true;
    const index = this.open(out, { type: "tool_use", id: toolIdOf(tool.id), name: tool.name, input: {} }, "tool_use");
    if (tool.held.length > 0) out.push(event("content_block_delta", { index, delta: { type: "input_json_delta", partial_json: tool.held } }));
    tool.held = "";
  }

  private open(out: AnthropicEvent[], block: Json, kind: "text" | "tool_use"): number {
    const index = this.nextIndex++;
    this.live = { kind, index };
    out.push(event("content_block_start", { index, content_block: block }));
    return index;
  }

  private closeLive(out: AnthropicEvent[]): void {
    if (!this.live) return;
    out.push(event("content_block_stop", { index: this.live.index }));
    this.live = undefined;
  }

  /** Closes the live block and flushes the pending ones, each whole. */
  private closeAll(out: AnthropicEvent[]): void {
    if (this.heldSpace) {
      // An answer that is only whitespace is still the answer.
      const text = this.heldSpace;
      this.heldSpace = "";
      const index = this.open(out, { type: "text", text: "" }, "text");
      out.push(event("content_block_delta", { index, delta: { type: "text_delta", text } }));
    }
    // A live tool call that never got a name still becomes a block: the client must answer its id.
    if (this.liveTool && !this.liveTool.opened) this.openTool(out, this.liveTool);
    this.closeLive(out);
    for (const block of this.pending.splice(0)) {
      if (block.kind === "text") {
        const index = this.open(out, { type: "text", text: "" }, "text");
        out.push(event("content_block_delta", { index, delta: { type: "text_delta", text: block.buffer } }));
      } else {
        const index = this.open(out, { type: "tool_use", id: toolIdOf(block.id), name: block.name, input: {} }, "tool_use");
        // Buffered whole, so it can be checked: arguments that are not a JSON object would make the SDK throw.
        const json = block.buffer.length > 0 && !isJsonObject(block.buffer) ? JSON.stringify(toolInputOf(block.buffer)) : block.buffer;
        if (json.length > 0) out.push(event("content_block_delta", { index, delta: { type: "input_json_delta", partial_json: json } }));
      }
      this.closeLive(out);
    }
    this.lateText = undefined;
  }
}

function isJsonObject(text: string): boolean {
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === "object" && value !== null && !Array.isArray(value);
  } catch {
    return false;
  }
}

/**
 * The upstream's tool call id as an Anthropic one (as the complete answer maps it: the client sends it back in
 * history an Anthropic route must accept), or a new one when the upstream left it out (the client must answer it).
 */
function toolIdOf(id: string): string {
  return id ? toolUseIdOf(id) : `toolu_gw${randomBytes(12).toString("hex")}`;
}

// ---------------------------------------------------------------------------
// Anthropic events → Chat Completions chunks

/** An Anthropic Messages stream as an OpenAI Chat Completions stream. */
export class MessagesToChatStream {
  private readonly model: string;
  private readonly includeUsage: boolean;

  private id: string | undefined;
  private created = 0;
  private roleSent = false;
  private finished = false;
  private isDone = false;
  /** Anthropic block index → OpenAI tool call index (tool calls count from 0, whatever blocks come between). */
  private readonly toolOf = new Map<number, { index: number; prefilled: boolean; args: boolean }>();
  private readonly usage: Json = {};

  constructor(options: { model: string; includeUsage: boolean }) {
    this.model = options.model;
    this.includeUsage = options.includeUsage;
  }

  /** true after message_stop: the answer is complete. */
  get done(): boolean {
    return this.isDone;
  }

  push(name: string | undefined, data: Record<string, unknown>): Record<string, unknown>[] {
    if (this.isDone) return [];
    switch (name ?? str(data.type)) {
      case "message_start": {
        const message = isObject(data.message) ? data.message : {};
        this.begin(message.id);
        this.mergeUsage(message.usage);
        return this.roleChunk();
      }
      case "content_block_start":
        return this.blockStart(num(data.index) ?? -1, isObject(data.content_block) ? data.content_block : {});
      case "content_block_delta":
        return this.blockDelta(num(data.index) ?? -1, isObject(data.delta) ? data.delta : {});
      case "content_block_stop":
        return this.blockStop(num(data.index) ?? -1);
      case "message_delta": {
        const delta = isObject(data.delta) ? data.delta : {};
        this.mergeUsage(data.usage);
        this.finished = true;
        return [...this.roleChunk(), this.chunk({}, finishReasonOf(delta.stop_reason))];
      }
      case "message_stop": {
        const out = this.roleChunk();
        if (!this.finished) out.push(this.chunk({}, this.toolOf.size > 0 ? "tool_calls" : "stop"));
        this.finished = true;
        if (this.includeUsage) out.push({ ...this.base(), choices: [], usage: openAiUsageOf(this.usage) });
        this.isDone = true;
        return out;
      }
      case "error": {
        const error = isObject(data.error) ? data.error : {};
        // A chunk with `error` is how the relay and the OpenAI SDK know a stream failed midway.
        return [{ error: { message: str(error.message) ?? "The upstream stream failed.", type: str(error.type) ?? "api_error", code: null } }];
      }
      default:
        // content_block_stop, ping and types this gateway does not know carry nothing a Chat client reads.
        return [];
    }
  }

  private blockStart(index: number, block: Json): Json[] {
    if (block.type === "text") return this.content("content", str(block.text));
    if (block.type === "thinking") return this.content("reasoning_content", str(block.thinking));
    if (block.type !== "tool_use") return []; // redacted_thinking, server tools: nothing a Chat client can use
    const input = isObject(block.input) ? block.input : {};
    // Anthropic starts a tool_use with input {} and streams it; a server that sends the whole input up front sends no deltas.
    const prefilled = Object.keys(input).length > 0;
    const tool = { index: this.toolOf.size, prefilled, args: prefilled };
    this.toolOf.set(index, tool);
    const call = { index: tool.index, id: str(block.id) ?? "", type: "function", function: { name: str(block.name) ?? "", arguments: prefilled ? JSON.stringify(input) : "" } };
    return [...this.roleChunk(), this.chunk({ tool_calls: [call] })];
  }

  private blockDelta(index: number, delta: Json): Json[] {
    switch (delta.type) {
      case "text_delta":
        return this.content("content", str(delta.text));
      case "thinking_delta":
        // DeepSeek's field for reasoning: clients that do not know it ignore it.
        return this.content("reasoning_content", str(delta.thinking));
      case "input_json_delta": {
        const tool = this.toolOf.get(index);
        const json = str(delta.partial_json) ?? "";
        if (!tool || tool.prefilled || json.length === 0) return [];
        tool.args = true;
        return [...this.roleChunk(), this.chunk({ tool_calls: [{ index: tool.index, function: { arguments: json } }] })];
      }
      default:
        return []; // signature_delta, citations_delta
    }
  }

  /** A tool with no input streams no argument at all: Chat clients JSON.parse the arguments, so they get "{}". */
  private blockStop(index: number): Json[] {
    const tool = this.toolOf.get(index);
    if (!tool || tool.args) return [];
    tool.args = true;
    return [this.chunk({ tool_calls: [{ index: tool.index, function: { arguments: "{}" } }] })];
  }

  private content(field: "content" | "reasoning_content", text: string | undefined): Json[] {
    if (text === undefined || text.length === 0) return [];
    return [...this.roleChunk(), this.chunk({ [field]: text })];
  }

  private begin(id: unknown): void {
    if (this.id !== undefined) return;
    this.id = chatIdOf(id);
    this.created = Math.floor(Date.now() / 1000);
  }

  /** The first chunk carries the role (the OpenAI SDK's accumulator needs it), even when message_start was missing. */
  private roleChunk(): Json[] {
    if (this.roleSent) return [];
    this.roleSent = true;
    return [this.chunk({ role: "assistant", content: "" })];
  }

  private base(): Json {
    this.begin(undefined);
    return { id: this.id, object: "chat.completion.chunk", created: this.created, model: this.model };
  }

  private chunk(delta: Json, finish: string | null = null): Json {
    return { ...this.base(), choices: [{ index: 0, delta, finish_reason: finish }] };
  }

  /** message_start's usage, then message_delta's: cumulative totals, so they replace, never add. */
  private mergeUsage(usage: unknown): void {
    if (!isObject(usage)) return;
    for (const [key, value] of Object.entries(usage)) if (num(value) !== undefined) this.usage[key] = value;
  }
}

/** One Anthropic event as SSE bytes (the SDK drops events without an `event:` line). */
export function encodeAnthropicEvent(e: AnthropicEvent): string {
  return `event: ${e.event}\ndata: ${JSON.stringify(e.data)}\n\n`;
}
