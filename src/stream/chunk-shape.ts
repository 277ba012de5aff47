/**
 * The shape of a stream's chunks, learned from one of them, so that the
 * relay can read the next ones without a JSON.parse each.
 *
 * A provider's chunks differ only in one string: the text (or a tool call's
 * arguments) of the delta, and on OpenAI also the top-level `obfuscation`
 * padding. Everything else (id, created, model, the choice's index, a null
 * finish_reason) is the same bytes every time. The shape is that chunk's text
 * cut around those strings: a chunk that is the same text around other valid
 * JSON string bodies parses, by JSON's grammar, to the same value with those
 * strings in their place. Only the bodies need checking. Any other chunk
 * (a finish, usage, a second choice, a changed field) does not match and is
 * parsed as before. Pure: strings in, strings out.
 */
import { TEXT_FIELDS } from "./transcript.js";

type Json = Record<string, unknown>;

/** Where a chunk's varying text goes: a delta field of a choice, or (with `call`) a tool call's arguments. */
export interface ShapeTarget {
  readonly choice: number;
  readonly field: string;
  readonly call: number | undefined;
}

/** Anything in a string body that a plain slice does not stand for: a quote, an escape, a control character. */
const NEEDS_DECODING = /["\\\u0000-\u001f]/;
/** Pairs of strings for the text and the padding: two, so that no string the chunk itself holds can pass for both. */
const PROBES = [
  ["gateway-probe-text-1", "gateway-probe-pad-1"],
  ["gateway-probe-text-2", "gateway-probe-pad-2"],
] as const;

const isObject = (value: unknown): value is Json => typeof value === "object" && value !== null && !Array.isArray(value);

/**
 * A JSON string body's value, or undefined when it is not a valid body
 * (unescaped quote, bad escape, raw control character). With `own`, a string
 * of its own: V8 makes a slice of 13 characters or more a view of the whole
 * chunk, which the transcript would then keep alive for the rest of the
 * stream; a parse copies.
 */
function bodyValue(body: string, own = false): string | undefined {
  if ((!own || body.length < 13) && !NEEDS_DECODING.test(body)) return body;
  try {
    return JSON.parse(`"${body}"`) as string;
  } catch {
    return undefined;
  }
}

export class ChunkShape {
  private constructor(
    /** Up to the text's opening quote, included. */
    private readonly head: string,
    /** From the text's closing quote to the padding's opening quote, both included; undefined without padding. */
    private readonly middle: string | undefined,
    /** From the last string's closing quote to the end. */
    private readonly tail: string,
    readonly target: ShapeTarget,
  ) {}

  /** The varying text of `data` when it is a chunk of this shape; undefined when it must be parsed. */
  match(data: string): string | undefined {
    const head = this.head;
    const tail = this.tail;
    const end = data.length - tail.length;
    // Sliced and compared whole: faster here than startsWith and endsWith.
    if (end < head.length || data.slice(0, head.length) !== head || data.slice(end) !== tail) return undefined;
    let textEnd = end;
    const middle = this.middle;
    if (middle !== undefined) {
      // Any split into valid bodies parses the same, so the first occurrence will do.
      textEnd = data.indexOf(middle, head.length);
      if (textEnd < 0 || textEnd + middle.length > end) return undefined;
      if (bodyValue(data.slice(textEnd + middle.length, end)) === undefined) return undefined;
    }
    return bodyValue(data.slice(head.length, textEnd), true);
  }

  /**
   * Whether `chunk` adds nothing to a transcript but one string (a choice's
   * text, or a tool call's arguments), so that the same chunk with another
   * string means just "append this": the chunks a shape can be learned from.
   */
  static textOnly(chunk: Json): boolean {
    return hole(chunk) !== undefined;
  }

  /** The shape of `chunk` (parsed from `data`), when it is `textOnly` and its strings can be located in `data`. */
  static learn(data: string, chunk: Json): ChunkShape | undefined {
    // The shape is kept for the rest of the stream, and its parts are views of `data`: a small chunk only.
    if (data.length > MAX_LEARNED) return undefined;
    const found = hole(chunk);
    if (!found) return undefined;
    const { target, key, value } = found;
    const padded = typeof chunk.obfuscation === "string";
    const text = locate(data, key, value, false);
    const padding = padded ? locate(data, "obfuscation", chunk.obfuscation as string, true) : undefined;
    if (!text || (padded && (!padding || padding.start < text.end))) return undefined;

    const head = data.slice(0, text.start);
    const middle = padding ? data.slice(text.end, padding.start) : undefined;
    const tail = data.slice(padding ? padding.end : text.end);
    // The proof that these holes are where the parse takes those strings from: two different strings put there
    // both come back there. Then any valid body in their place parses to this chunk with that string instead.
    for (const [probeText, probePad] of PROBES) {
      let probe: unknown;
      try {
        probe = JSON.parse(head + probeText + (middle === undefined ? "" : middle + probePad) + tail);
      } catch {
        return undefined;
      }
      if (!isObject(probe) || !holds(probe, target, probeText) || (padded && probe.obfuscation !== probePad)) return undefined;
    }
    return new ChunkShape(head, middle, tail, target);
  }
}

/** Chunks longer than this are not learned from (a shape holds on to its chunk's text). */
const MAX_LEARNED = 4096;

/** What of `chunk` a shape would vary: see `ChunkShape.textOnly`. */
function hole(chunk: Json): { target: ShapeTarget; key: string; value: string } | undefined {
  if ("error" in chunk || !Array.isArray(chunk.choices) || chunk.choices.length !== 1) return undefined;
  const choice: unknown = chunk.choices[0];
  if (!isObject(choice) || !isObject(choice.delta)) return undefined;
  if (typeof choice.finish_reason === "string" && choice.finish_reason !== "") return undefined;
  const index = typeof choice.index === "number" ? choice.index : 0;
  const delta = choice.delta;
  const texts = TEXT_FIELDS.filter((field) => typeof delta[field] === "string");
  const calls = delta.tool_calls;
  if (texts.length === 1 && !(Array.isArray(calls) && calls.length > 0)) {
    const field = texts[0] as string;
    return { target: { choice: index, field, call: undefined }, key: field, value: delta[field] as string };
  }
  if (!texts.every((field) => delta[field] === "") || !Array.isArray(calls) || calls.length !== 1) return undefined;
  const call: unknown = calls[0];
  // A name (appended with every chunk) or an id (set by every chunk) is more than arguments: only a chunk of arguments alone.
  if (!isObject(call) || typeof call.id === "string" || !isObject(call.function)) return undefined;
  const fn = call.function;
  if (typeof fn.arguments !== "string" || typeof fn.name === "string") return undefined;
  return { target: { choice: index, field: "arguments", call: typeof call.index === "number" ? call.index : 0 }, key: "arguments", value: fn.arguments };
}

/**
 * The bounds of the body of the string value of `"key"` equal to `value`
 * (the first such key, or the last with `last`), or undefined.
 */
function locate(data: string, key: string, value: string, last: boolean): { start: number; end: number } | undefined {
  const quoted = `"${key}"`;
  let at = last ? data.lastIndexOf(quoted) : data.indexOf(quoted);
  // Bounded: a key name can occur only so many times in one chunk that matters.
  for (let tries = 0; at >= 0 && tries < 4; tries++) {
    let i = skipWs(data, at + quoted.length);
    if (data.charCodeAt(i) === 0x3a) {
      i = skipWs(data, i + 1);
      if (data.charCodeAt(i) === 0x22) {
        const start = i + 1;
        let j = start;
        for (; j < data.length; j++) {
          const c = data.charCodeAt(j);
          if (c === 0x5c) j++;
          else if (c === 0x22) break;
        }
        if (j < data.length && bodyValue(data.slice(start, j)) === value) return { start, end: j };
      }
    }
    at = last ? data.lastIndexOf(quoted, at - 1) : data.indexOf(quoted, at + 1);
  }
  return undefined;
}

function skipWs(data: string, i: number): number {
  for (;;) {
    const c = data.charCodeAt(i);
    if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) return i;
    i++;
  }
}

/** Whether the probe's target holds `expected`. */
function holds(probe: Json, target: ShapeTarget, expected: string): boolean {
  const choices = probe.choices;
  if (!Array.isArray(choices) || choices.length !== 1 || !isObject(choices[0]) || !isObject(choices[0].delta)) return false;
  const delta = choices[0].delta;
  if (target.call === undefined) return delta[target.field] === expected;
  const calls = delta.tool_calls;
  return Array.isArray(calls) && calls.length === 1 && isObject(calls[0]) && isObject(calls[0].function) && calls[0].function.arguments === expected;
}
