/**
 * What the gateway needs to know about a request body (its model) and the one
 * change it ever makes to it (the model, spliced in place), so everything else
 * the client sent reaches the upstream byte for byte.
 */

export type BodyInfo =
  | { readonly kind: "json"; readonly model: string | null }
  | { readonly kind: "invalid_json"; readonly message: string }
  | { readonly kind: "opaque"; readonly model: string | null };

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
  if (type.startsWith("multipart/form-data")) return { kind: "opaque", model: multipartModel(body) };
  // curl -d sends JSON as x-www-form-urlencoded; a body that parses as a JSON object is treated as one.
  if ((type === "" || type.startsWith("application/x-www-form-urlencoded") || type.startsWith("text/plain")) && body[skipWs(body, 0)] === OPEN_BRACE) {
    const info = parseJson(body);
    if (info.kind === "json") return info;
  }
  return { kind: "opaque", model: null };
}

function parseJson(body: Buffer): BodyInfo {
  if (body.length === 0) return { kind: "json", model: null };
  let value: unknown;
  try {
    value = JSON.parse(body.toString("utf8"));
  } catch (error) {
    return { kind: "invalid_json", message: `The request body is not valid JSON: ${(error as Error).message}` };
  }
  const model = value && typeof value === "object" && !Array.isArray(value) ? (value as { model?: unknown }).model : undefined;
  return { kind: "json", model: typeof model === "string" && model.trim() ? model.trim() : null };
}

function multipartModel(body: Buffer): string | null {
  const at = body.indexOf('name="model"');
  if (at < 0) return null;
  const start = body.indexOf("\r\n\r\n", at);
  if (start < 0) return null;
  const end = body.indexOf("\r\n", start + 4);
  if (end < 0) return null;
  const model = body.toString("utf8", start + 4, end).trim();
  return model || null;
}

/** `body` with its top-level "model" string replaced by `model`; every other byte unchanged. */
export function withModel(body: Buffer, model: string): Buffer {
  const span = topLevelStringSpan(body, "model");
  const replacement = Buffer.from(JSON.stringify(model));
  if (span) return Buffer.concat([body.subarray(0, span[0]), replacement, body.subarray(span[1])]);
  // No plain "model" key (absent, or written with escapes): rebuild the object.
  const value = JSON.parse(body.toString("utf8")) as Record<string, unknown>;
  return Buffer.from(JSON.stringify({ ...value, model }));
}

function skipWs(buf: Buffer, i: number): number {
  while (i < buf.length) {
    const c = buf[i] as number;
    if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) break;
    i++;
  }
  return i;
}

/** Index just past the string starting at `i` (a quote). */
function skipString(buf: Buffer, i: number): number {
  i++;
  while (i < buf.length) {
    const c = buf[i];
    if (c === BACKSLASH) i += 2;
    else if (c === QUOTE) return i + 1;
    else i++;
  }
  return i;
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
 * Byte span of the string value of top-level `key` in a JSON object (the last
 * occurrence, as JSON.parse keeps the last duplicate), without parsing the rest.
 */
export function topLevelStringSpan(buf: Buffer, key: string): [number, number] | null {
  const wanted = Buffer.from(JSON.stringify(key));
  let i = skipWs(buf, 0);
  if (buf[i] !== OPEN_BRACE) return null;
  i++;
  let found: [number, number] | null = null;
  while (i < buf.length) {
    i = skipWs(buf, i);
    if (buf[i] !== QUOTE) return found;
    const keyStart = i;
    i = skipString(buf, i);
    const keyEnd = i;
    i = skipWs(buf, i);
    if (buf[i] !== COLON) return found;
    i = skipWs(buf, i + 1);
    const valueStart = i;
    i = skipValue(buf, i);
    if (buf[valueStart] === QUOTE && keyEnd - keyStart === wanted.length && buf.compare(wanted, 0, wanted.length, keyStart, keyEnd) === 0) {
      found = [valueStart, i];
    }
    i = skipWs(buf, i);
    if (buf[i] === COMMA) i++;
    else return found;
  }
  return found;
}
