/**
 * What a Chat Completions stream has said so far, and the check that a second
 * generation (a replay) says the same before the gateway lets it continue the
 * first one. Pure: chunks in, state and verdicts out.
 */

interface ToolCallState {
  id: string | undefined;
  name: string;
  args: string;
}

interface ChoiceState {
  /** Text fields that accumulate across deltas (content, refusal, reasoning). */
  text: Map<string, string>;
  toolCalls: Map<number, ToolCallState>;
  role: boolean;
  finish: string | null;
}

/** Delta fields whose text accumulates and must be reproduced exactly by a replay. */
export const TEXT_FIELDS = ["content", "refusal", "reasoning_content", "reasoning"] as const;

type Json = Record<string, unknown>;

const isObject = (value: unknown): value is Json => typeof value === "object" && value !== null && !Array.isArray(value);

/** Whether a chunk carries real output (text, a refusal, reasoning or a tool call), not just a role or usage. */
export function isContentChunk(chunk: unknown): boolean {
  if (!isObject(chunk) || !Array.isArray(chunk.choices)) return false;
  for (const choice of chunk.choices) {
    const delta = isObject(choice) ? choice.delta : undefined;
    if (!isObject(delta)) continue;
    for (const field of TEXT_FIELDS) if (typeof delta[field] === "string" && delta[field] !== "") return true;
    if (Array.isArray(delta.tool_calls) && delta.tool_calls.length > 0) return true;
    if (isObject(delta.function_call)) return true;
    if (isObject(delta.audio)) return true;
  }
  return false;
}

function appendText(state: ChoiceState, field: string, piece: string): void {
  state.text.set(field, (state.text.get(field) ?? "") + piece);
}

/** The state of a choice's tool call `index`, begun on first sight. */
function toolCall(state: ChoiceState, index: number): ToolCallState {
  let tool = state.toolCalls.get(index);
  if (!tool) {
    tool = { id: undefined, name: "", args: "" };
    state.toolCalls.set(index, tool);
  }
  return tool;
}

export class ChatTranscript {
  readonly choices = new Map<number, ChoiceState>();
  id: string | undefined;

  private choice(index: number): ChoiceState {
    let state = this.choices.get(index);
    if (!state) {
      state = { text: new Map(), toolCalls: new Map(), role: false, finish: null };
      this.choices.set(index, state);
    }
    return state;
  }

  apply(chunk: Json): void {
    if (this.id === undefined && typeof chunk.id === "string") this.id = chunk.id;
    if (!Array.isArray(chunk.choices)) return;
    for (const raw of chunk.choices) {
      if (!isObject(raw)) continue;
      const state = this.choice(typeof raw.index === "number" ? raw.index : 0);
      const delta = isObject(raw.delta) ? raw.delta : {};
      if (typeof delta.role === "string") state.role = true;
      for (const field of TEXT_FIELDS) {
        const piece = delta[field];
        if (typeof piece === "string" && piece) appendText(state, field, piece);
      }
      if (Array.isArray(delta.tool_calls)) {
        for (const call of delta.tool_calls) {
          if (!isObject(call)) continue;
          const fn = isObject(call.function) ? call.function : {};
          const tool = toolCall(state, typeof call.index === "number" ? call.index : 0);
          if (typeof call.id === "string") tool.id = call.id;
          if (typeof fn.name === "string") tool.name += fn.name;
          if (typeof fn.arguments === "string") tool.args += fn.arguments;
        }
      }
      // Some servers send "" on every chunk where others send null.
      if (typeof raw.finish_reason === "string" && raw.finish_reason !== "") state.finish = raw.finish_reason;
    }
  }

  /**
   * `apply` of a chunk whose only news is `piece`, appended to a choice's text
   * field or (with `call`) to a tool call's arguments: the relay's fast path
   * for chunks of a known shape (ChunkShape), which were applied once in full.
   */
  append(choice: number, field: string, call: number | undefined, piece: string): void {
    if (piece === "") return;
    const state = this.choice(choice);
    if (call === undefined) appendText(state, field, piece);
    else toolCall(state, call).args += piece;
  }

  /** A deep copy: a replay is checked against what was sent when the failure happened. */
  clone(): ChatTranscript {
    const copy = new ChatTranscript();
    copy.id = this.id;
    for (const [index, state] of this.choices) {
      const toolCalls = new Map<number, ToolCallState>();
      for (const [callIndex, call] of state.toolCalls) toolCalls.set(callIndex, { ...call });
      copy.choices.set(index, { text: new Map(state.text), toolCalls, role: state.role, finish: state.finish });
    }
    return copy;
  }

  /** Some choice has a finish_reason. */
  finishedAny(): boolean {
    for (const state of this.choices.values()) if (state.finish !== null) return true;
    return false;
  }

  /** Every choice that started has a finish_reason: the answer is complete. */
  finished(): boolean {
    if (this.choices.size === 0) return false;
    for (const state of this.choices.values()) if (state.finish === null) return false;
    return true;
  }

  /** The text of choice 0 so far (for continuation by prefill), and whether anything else was said. */
  plainText(): { text: string; onlyText: boolean } {
    const first = this.choices.get(0);
    const text = first?.text.get("content") ?? "";
    const onlyText =
      this.choices.size <= 1 && (first === undefined || (first.toolCalls.size === 0 && [...first.text.keys()].every((field) => field === "content")));
    return { text, onlyText };
  }
}

export type ReplayVerdict =
  /** Still reproducing what the client already has: drop it. */
  | { readonly kind: "hold" }
  /** New output past the committed prefix: send this (possibly trimmed) chunk. */
  | { readonly kind: "emit"; readonly chunk: Json }
  | { readonly kind: "diverged"; readonly why: string };

/**
 * Checks a replayed generation against what the client already received:
 * while the replay is behind, its output must be a prefix of the committed
 * output and is dropped; the part that goes past it is emitted; any
 * difference is a divergence.
 */
export class ReplayVerifier {
  private readonly replay = new ChatTranscript();
  private readonly committed: ChatTranscript;

  constructor(committed: ChatTranscript) {
    this.committed = committed.clone();
  }

  feed(chunk: Json): ReplayVerdict {
    const out: Json = { ...chunk };
    if (this.committed.id !== undefined && "id" in chunk) out.id = this.committed.id;
    if (!Array.isArray(chunk.choices)) return { kind: "emit", chunk: out };
    const choices: Json[] = [];
    for (const raw of chunk.choices) {
      if (!isObject(raw)) continue;
      const index = typeof raw.index === "number" ? raw.index : 0;
      const verdict = this.choice(index, raw);
      if (verdict.kind === "diverged") return verdict;
      if (verdict.choice) choices.push(verdict.choice);
    }
    this.replay.apply(chunk);
    if (choices.length === 0 && !chunk.usage) return { kind: "hold" };
    out.choices = choices;
    return { kind: "emit", chunk: out };
  }

  private choice(index: number, raw: Json): { kind: "ok"; choice: Json | undefined } | { kind: "diverged"; why: string } {
    const committed = this.committed.choices.get(index);
    const replayed = this.replay.choices.get(index);
    const delta = isObject(raw.delta) ? raw.delta : {};
    const outDelta: Json = {};
    for (const [key, value] of Object.entries(delta)) {
      if (key === "role") {
        if (!committed?.role) outDelta.role = value;
        continue;
      }
      if ((TEXT_FIELDS as readonly string[]).includes(key) && typeof value === "string") {
        const sent = committed?.text.get(key) ?? "";
        const before = replayed?.text.get(key) ?? "";
        const after = before + value;
        if (after.length <= sent.length) {
          if (!sent.startsWith(after)) return { kind: "diverged", why: `${key} differs from what was sent` };
          continue;
        }
        if (!after.startsWith(sent)) return { kind: "diverged", why: `${key} differs from what was sent` };
        outDelta[key] = before.length >= sent.length ? value : after.slice(sent.length);
        continue;
      }
      if (key === "tool_calls" && Array.isArray(value)) {
        const calls: Json[] = [];
        for (const call of value) {
          if (!isObject(call)) continue;
          const verdict = this.toolCall(committed, replayed, call);
          if (verdict.kind === "diverged") return verdict;
          if (verdict.call) calls.push(verdict.call);
        }
        if (calls.length > 0) outDelta.tool_calls = calls;
        continue;
      }
      outDelta[key] = value;
    }
    let finish = typeof raw.finish_reason === "string" && raw.finish_reason !== "" ? raw.finish_reason : null;
    const emitsNew = Object.keys(outDelta).some((key) => key !== "role" && outDelta[key] !== undefined && outDelta[key] !== null && outDelta[key] !== "");
    // Nothing new may go out for a choice until everything already sent for it is reproduced, in every field.
    if ((emitsNew || finish !== null) && committed && !this.caughtUp(index, delta)) {
      return { kind: "diverged", why: finish !== null ? "the replay finished before reproducing what was sent" : "the replay moved on before reproducing what was sent" };
    }
    if (committed && committed.finish !== null) {
      // The client already saw this choice end: only an identical end is acceptable, and it is not sent twice.
      if (emitsNew) return { kind: "diverged", why: "the replay went on past an answer that had ended" };
      finish = null;
    }
    const hasDelta = Object.keys(outDelta).some((key) => outDelta[key] !== undefined && outDelta[key] !== null && outDelta[key] !== "");
    if (!hasDelta && finish === null) return { kind: "ok", choice: undefined };
    return { kind: "ok", choice: { ...raw, delta: outDelta, finish_reason: finish } };
  }

  private toolCall(committed: ChoiceState | undefined, replayed: ChoiceState | undefined, call: Json): { kind: "ok"; call: Json | undefined } | { kind: "diverged"; why: string } {
    const index = typeof call.index === "number" ? call.index : 0;
    const sent = committed?.toolCalls.get(index);
    if (!sent) return { kind: "ok", call };
    const seen = replayed?.toolCalls.get(index);
    const fn = isObject(call.function) ? call.function : {};
    if (typeof fn.name === "string") {
      const name = (seen?.name ?? "") + fn.name;
      if (!sent.name.startsWith(name)) return { kind: "diverged", why: `tool call ${index} names another function` };
    }
    const out: Json = { index };
    if (typeof fn.arguments === "string") {
      const before = seen?.args ?? "";
      const after = before + fn.arguments;
      if (after.length <= sent.args.length) {
        if (!sent.args.startsWith(after)) return { kind: "diverged", why: `tool call ${index} arguments differ` };
      } else {
        if (!after.startsWith(sent.args)) return { kind: "diverged", why: `tool call ${index} arguments differ` };
        out.function = { arguments: before.length >= sent.args.length ? fn.arguments : after.slice(sent.args.length) };
      }
    }
    return { kind: "ok", call: out.function ? out : undefined };
  }

  /** Whether the replay (with `delta` applied) has reproduced everything committed for choice `index`. */
  private caughtUp(index: number, delta: Json): boolean {
    const committed = this.committed.choices.get(index);
    if (!committed) return true;
    const replayed = this.replay.choices.get(index);
    for (const [field, sent] of committed.text) {
      const piece = typeof delta[field] === "string" ? (delta[field] as string) : "";
      if ((replayed?.text.get(field) ?? "") .length + piece.length < sent.length) return false;
    }
    for (const [callIndex, sent] of committed.toolCalls) {
      let args = replayed?.toolCalls.get(callIndex)?.args ?? "";
      if (Array.isArray(delta.tool_calls)) {
        for (const call of delta.tool_calls) {
          if (isObject(call) && call.index === callIndex && isObject(call.function) && typeof call.function.arguments === "string") args += call.function.arguments;
        }
      }
      if (args.length < sent.args.length) return false;
    }
    return true;
  }
}
