/**
 * What the gateway needs to know about a request body (its model) and the one
 * change it ever makes to it (the model, spliced in place), so everything else
 * the client sent reaches the upstream byte for byte.
 */

/** The bytes of a body's `model` value: `body` is the buffer they lie in. */
export interface ModelSpan {
  readonly body: Buffer;
  readonly start: number;
  readonly end: number;
}

export type BodyInfo =
  | {
      readonly kind: "json";
      readonly model: string | null;
      readonly models?: readonly string[];
      readonly stream?: boolean;
      /** Where the model's value lies in the inspected buffer, when the scan found it: a rewrite splices there without a second scan. */
      readonly modelSpan?: ModelSpan;
    }
  | { readonly kind: "invalid_json"; readonly message: string }
  | { readonly kind: "multipart"; readonly model: string | null; readonly boundary: string }
  | { readonly kind: "opaque"; readonly model: null };

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const COMMA = 0x2c;
const COLON = 0x3a;

export function inspectBody(body: Buffer, contentType: string | undefined): BodyInfo {
  const type = (contentType ?? "").toLowerCase();
  if (type.includes("json")) return parseJson(body);
  if (type.startsWith("multipart/form-data")) {
    const boundary = /boundary=(?:"([^"]+)"|([^;\s]+))/i.exec(contentType ?? "");
    const value = boundary?.[1] ?? boundary?.[2];
    if (value) {
      const span = multipartFieldSpan(body, value, "model");
      const model = span ? body.toString("utf8", span[0], span[1]).trim() : "";
      return { kind: "multipart", model: model || null, boundary: value };
    }
  }
  // curl -d sends JSON as x-www-form-urlencoded; a body that parses as a JSON object is treated as one.
  if ((type === "" || type.startsWith("application/x-www-form-urlencoded") || type.startsWith("text/plain")) && body[skipWs(body, 0)] === OPEN_BRACE) {
    const info = parseJson(body);
    if (info.kind === "json") return info;
  }
  return { kind: "opaque", model: null };
}

const KEY_MODEL = Buffer.from('"model"');
const KEY_MODELS = Buffer.from('"models"');
const KEY_STREAM = Buffer.from('"stream"');
const TRUE = Buffer.from("true");
/** Bare, so that any spelling counts: `model` also finds "models", 'model' and an unquoted key a lenient upstream might accept. */
const INSPECTED_KEYS = [Buffer.from("model"), Buffer.from("stream")];

/**
 * Reads `model`, `models` and `stream` from a JSON object without parsing the
 * rest: an agent's 60 KB body costs a walk over its top-level members (long
 * strings are skipped with memchr), not a full parse. Anything the walk does
 * not accept as a well-formed object is parsed for real, for the error message.
 */
function parseJson(body: Buffer): BodyInfo {
  if (body.length === 0) return { kind: "json", model: null };
  let model: [number, number] | undefined;
  let models: [number, number] | undefined;
  let stream: [number, number] | undefined;
  let escapedKey = false;
  let horizon: number | undefined;
  const wellFormed = forEachMember(body, (keyStart, keyEnd, valueStart, valueEnd) => {
    const length = keyEnd - keyStart;
    if (length === 7 && body.compare(KEY_MODEL, 0, 7, keyStart, keyEnd) === 0) model = [valueStart, valueEnd];
    else if (length === 8 && body.compare(KEY_MODELS, 0, 8, keyStart, keyEnd) === 0) models = [valueStart, valueEnd];
    else if (length === 8 && body.compare(KEY_STREAM, 0, 8, keyStart, keyEnd) === 0) stream = [valueStart, valueEnd];
    else if (hasByte(body, BACKSLASH, keyStart, keyEnd)) escapedKey = true;
    if (model === undefined) return false;
    horizon ??= walkHorizon(body, valueEnd, INSPECTED_KEYS);
    return canStopAt(body, valueEnd, horizon);
  });
  if (wellFormed && !escapedKey) {
    const value = (span: [number, number] | undefined): unknown => {
      if (!span) return undefined;
      try {
        return JSON.parse(body.toString("utf8", span[0], span[1]));
      } catch {
        return INVALID;
      }
    };
    const modelValue = value(model);
    const modelsValue = value(models);
    if (modelValue !== INVALID && modelsValue !== INVALID) {
      const isStream = stream !== undefined && stream[1] - stream[0] === 4 && body.compare(TRUE, 0, 4, stream[0], stream[1]) === 0;
      return describe(modelValue, modelsValue, isStream, model && typeof modelValue === "string" ? { body, start: model[0], end: model[1] } : undefined);
    }
  }
  return parseFully(body);
}

const INVALID = Symbol("invalid");

function describe(model: unknown, models: unknown, stream: boolean, modelSpan?: ModelSpan): BodyInfo {
  // Built by assignment, not by spreading: a spread into a literal takes V8's slow path, on every request.
  const info: { kind: "json"; model: string | null; models?: readonly string[]; stream?: boolean; modelSpan?: ModelSpan } = {
    kind: "json",
    model: typeof model === "string" && model.trim() ? model.trim() : null,
  };
  if (stream) info.stream = stream;
  if (modelSpan) info.modelSpan = modelSpan;
  if (models === undefined) return info;
  // OpenRouter's convention: "models" is this request's own fallback chain.
  if (!Array.isArray(models) || models.some((entry) => typeof entry !== "string" || !entry.trim())) {
    return { kind: "invalid_json", message: '"models" must be a list of model names: the fallback chain for this request.' };
  }
  info.models = models.map((entry: string) => entry.trim());
  return info;
}

function parseFully(body: Buffer): BodyInfo {
  let value: unknown;
  try {
    value = JSON.parse(body.toString("utf8"));
  } catch (error) {
    return { kind: "invalid_json", message: `The request body is not valid JSON: ${(error as Error).message}` };
  }
  if (!value || typeof value !== "object" || Array.isArray(value)) return { kind: "json", model: null };
  const { model, models, stream } = value as { model?: unknown; models?: unknown; stream?: unknown };
  return describe(model, models, stream === true);
}

const escapeRegExp = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/**
 * Byte span of the value of form field `name` in a multipart/form-data body:
 * the part whose Content-Disposition names it exactly (not a file part's
 * filename, not text inside another part).
 */
export function multipartFieldSpan(body: Buffer, boundary: string, name: string): [number, number] | null {
  const delimiter = Buffer.from(`--${boundary}`);
  const nextDelimiter = Buffer.from(`\r\n--${boundary}`);
  const wanted = new RegExp(`^content-disposition:[^\\r\\n]*;\\s*name="${escapeRegExp(name)}"\\s*(?:;|$)`, "im");
  let at = body.indexOf(delimiter);
  while (at >= 0) {
    if (body[at + delimiter.length] === 0x2d) return null; // "--boundary--" closes the body
    const headersStart = at + delimiter.length + 2;
    const headersEnd = body.indexOf("\r\n\r\n", headersStart);
    if (headersEnd < 0) return null;
    const next = body.indexOf(nextDelimiter, headersEnd + 4);
    if (next < 0) return null;
    if (wanted.test(body.toString("latin1", headersStart, headersEnd))) return [headersEnd + 4, next];
    at = next + 2;
  }
  return null;
}

/**
 * `body` with its model replaced by `model`; every other byte unchanged.
 * Undefined when the body is of a kind whose model cannot be rewritten.
 */
export function withModel(body: Buffer, info: BodyInfo, model: string): Buffer | undefined {
  if (info.kind === "multipart") {
    const span = multipartFieldSpan(body, info.boundary, "model");
    return span ? Buffer.concat([body.subarray(0, span[0]), Buffer.from(model), body.subarray(span[1])]) : undefined;
  }
  if (info.kind !== "json") return undefined;
  const known = info.modelSpan;
  const span = known && known.body === body ? [known.start, known.end] : topLevelValueSpan(body, "model");
  if (span) return Buffer.concat([body.subarray(0, span[0]), Buffer.from(JSON.stringify(model)), body.subarray(span[1])]);
  // No "model" key at all: add one (a body that does not parse is left as it is, for the upstream to refuse).
  let value: unknown;
  try {
    value = JSON.parse(body.toString("utf8"));
  } catch {
    return undefined;
  }
  if (!value || typeof value !== "object" || Array.isArray(value)) return undefined;
  return Buffer.from(JSON.stringify({ ...(value as Record<string, unknown>), model }));
}

function skipWs(buf: Buffer, i: number): number {
  while (i < buf.length) {
    const c = buf[i] as number;
    if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) break;
    i++;
  }
  return i;
}

/** Whether `byte` occurs in buf[start, end): a key is short, so a loop beats a native call that may scan far past it. */
function hasByte(buf: Buffer, byte: number, start: number, end: number): boolean {
  for (let k = start; k < end; k++) if (buf[k] === byte) return true;
  return false;
}

/** Index just past the string starting at `i` (a quote). Jumps from quote to quote (memchr), as prompts are mostly long strings. */
function skipString(buf: Buffer, i: number): number {
  let from = i + 1;
  for (;;) {
    const quote = buf.indexOf(QUOTE, from);
    if (quote < 0) return buf.length;
    let slashes = 0;
    for (let k = quote - 1; k > i && buf[k] === BACKSLASH; k--) slashes++;
    if (slashes % 2 === 0) return quote + 1;
    from = quote + 1;
  }
}

function skipValue(buf: Buffer, i: number): number {
  const c = buf[i];
  if (c === QUOTE) return skipString(buf, i);
  if (c === OPEN_BRACE || c === OPEN_BRACKET) {
    let depth = 0;
    while (i < buf.length) {
      const d = buf[i];
      if (d === QUOTE) {
        i = skipString(buf, i);
        continue;
      }
      if (d === OPEN_BRACE || d === OPEN_BRACKET) depth++;
      else if (d === CLOSE_BRACE || d === CLOSE_BRACKET) {
        depth--;
        if (depth === 0) return i + 1;
      }
      i++;
    }
    return i;
  }
  while (i < buf.length) {
    const d = buf[i];
    if (d === COMMA || d === CLOSE_BRACE || d === CLOSE_BRACKET || d === 0x20 || d === 0x0a || d === 0x0d || d === 0x09) break;
    i++;
  }
  return i;
}

/**
 * A Chat Completions body with the partial answer appended as a trailing
 * assistant message, for an upstream that continues it (continuation by prefill).
 */
export function withAssistantPrefix(body: Buffer, partial: string): Buffer {
  const value = JSON.parse(body.toString("utf8")) as { messages?: unknown[] };
  const messages = Array.isArray(value.messages) ? value.messages : [];
  return Buffer.from(JSON.stringify({ ...value, messages: [...messages, { role: "assistant", content: partial }] }));
}

/**
 * `body` without its top-level `key` member (and the comma that separated it);
 * every other byte unchanged. The body itself when the key is absent.
 */
export function withoutKey(body: Buffer, key: string): Buffer {
  // Duplicates too: each pass removes the last occurrence (bounded by the number of members).
  for (let out = body, pass = 0; pass < 1000; pass++) {
    const next = withoutLastKey(out, key);
    if (next === out) return out;
    out = next;
  }
  return body;
}

function withoutLastKey(body: Buffer, key: string): Buffer {
  const member = topLevelMember(body, key);
  if (!member) return body;
  const [keyStart, valueEnd, previousEnd] = member;
  let end = skipWs(body, valueEnd);
  if (body[end] === COMMA) return Buffer.concat([body.subarray(0, keyStart), body.subarray(skipWs(body, end + 1))]);
  // The last member: take the comma before it instead.
  end = valueEnd;
  return Buffer.concat([body.subarray(0, previousEnd ?? keyStart), body.subarray(end)]);
}

/**
 * Byte span of the value of top-level `key` in a JSON object, without parsing
 * the rest: the last occurrence, as JSON.parse keeps the last duplicate, and
 * keys written with escapes compared by their decoded text.
 */
export function topLevelValueSpan(buf: Buffer, key: string): [number, number] | null {
  const member = topLevelMember(buf, key);
  return member ? [member[3], member[1]] : null;
}

/** [key start, value end, end of the previous member's value (undefined for the first), value start] of the last `key` member. */
function topLevelMember(buf: Buffer, key: string): [number, number, number | undefined, number] | null {
  const wanted = Buffer.from(JSON.stringify(key));
  // A key with characters JSON may also write escaped (as \/ for /) cannot be searched for by one spelling.
  const needles = /^[A-Za-z0-9_]+$/.test(key) ? [Buffer.from(key)] : undefined;
  let found: [number, number, number | undefined, number] | null = null;
  let horizon: number | undefined;
  forEachMember(buf, (keyStart, keyEnd, valueStart, valueEnd, previousEnd) => {
    if (keyMatches(buf, keyStart, keyEnd, wanted, key)) found = [keyStart, valueEnd, previousEnd, valueStart];
    if (found === null) return false;
    horizon ??= needles ? walkHorizon(buf, valueEnd, needles) : buf.length;
    return canStopAt(buf, valueEnd, horizon);
  });
  return found;
}

/** Below this, the rest of a body is walked: cheap, and a malformed member there gets the gateway's own error. */
const TAIL_WALK_MAX = 2048;

/**
 * Where a walk for the members named as `needles` may stop: past this offset
 * the body holds none of them. An agent's body is mostly what follows `model`
 * (tool schemas: a thousand short strings, which cost a walk far more than a
 * search does). A later key with that name must contain its letters as they
 * are, or written with a \u escape (no other escape spells a letter), so
 * searching for the bare name and for `\u` rules them out, in any quoting.
 * What is not walked is not checked either: a body malformed in that tail
 * (but for its closing brace) reaches the upstream, which refuses it, as it
 * would through any reverse proxy.
 */
function walkHorizon(buf: Buffer, from: number, needles: readonly Buffer[]): number {
  // No stop is allowed after a member that ends past this.
  const latest = buf.length - TAIL_WALK_MAX;
  if (from >= latest) return buf.length;
  let last = buf.length - 1;
  while (last > from && (buf[last] === 0x20 || buf[last] === 0x0a || buf[last] === 0x0d || buf[last] === 0x09)) last--;
  if (buf[last] !== CLOSE_BRACE) return buf.length;
  const all = [ESCAPE_U, ...needles];
  // Most often a stop is impossible because a wanted key comes last ("stream" after the tools): seen in the last bytes alone.
  for (const needle of all) if (buf.indexOf(needle, latest) >= 0) return buf.length;
  let horizon = -1;
  for (const needle of all) {
    // Forward first: a search from the end would scan the whole body when the tail has none. When it has one, the
    // search from the end stops at the last, which lies in the tail: both bounded by the tail, however many there are.
    if (buf.indexOf(needle, from) >= 0) horizon = Math.max(horizon, buf.lastIndexOf(needle));
  }
  return horizon;
}

/** Whether a walk may stop after a member that ends at `end`: past the horizon, with a long tail of further members. */
function canStopAt(buf: Buffer, end: number, horizon: number): boolean {
  if (end <= horizon || buf.length - end < TAIL_WALK_MAX) return false;
  const comma = skipWs(buf, end);
  return buf[comma] === COMMA && buf[skipWs(buf, comma + 1)] === QUOTE;
}

const ESCAPE_U = Buffer.from("\\u");

/**
 * Walks the members of a top-level JSON object, skipping nested values
 * without parsing them, until `visit` returns true (the caller has what it
 * needs). Returns whether the object is well-formed at the top level
 * (braces, keys, colons, commas, nothing after the closing brace) as far as
 * it was walked.
 */
function forEachMember(
  buf: Buffer,
  visit: (keyStart: number, keyEnd: number, valueStart: number, valueEnd: number, previousEnd: number | undefined) => boolean,
): boolean {
  let i = skipWs(buf, 0);
  if (buf[i] !== OPEN_BRACE) return false;
  i = skipWs(buf, i + 1);
  if (buf[i] === CLOSE_BRACE) return skipWs(buf, i + 1) === buf.length;
  let previousEnd: number | undefined;
  while (i < buf.length) {
    i = skipWs(buf, i);
    if (buf[i] !== QUOTE) return false;
    const keyStart = i;
    i = skipString(buf, i);
    const keyEnd = i;
    i = skipWs(buf, i);
    if (buf[i] !== COLON) return false;
    i = skipWs(buf, i + 1);
    const valueStart = i;
    if (i >= buf.length) return false;
    i = skipValue(buf, i);
    if (i === valueStart || i > buf.length) return false;
    if (visit(keyStart, keyEnd, valueStart, i, previousEnd)) return true;
    previousEnd = i;
    i = skipWs(buf, i);
    if (buf[i] === COMMA) {
      i++;
      continue;
    }
    return buf[i] === CLOSE_BRACE && skipWs(buf, i + 1) === buf.length;
  }
  return false;
}

function keyMatches(buf: Buffer, start: number, end: number, wanted: Buffer, key: string): boolean {
  if (end - start === wanted.length && buf.compare(wanted, 0, wanted.length, start, end) === 0) return true;
  if (!hasByte(buf, BACKSLASH, start, end)) return false;
  try {
    return JSON.parse(buf.toString("utf8", start, end)) === key;
  } catch {
    return false;
  }
}
