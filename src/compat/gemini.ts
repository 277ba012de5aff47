/**
 * Gemini 3 on Google's OpenAI-compatible endpoints refuses a conversation whose
 * function calls lack the thought signature it attached to them
 * (`tool_calls[].extra_content.google.thought_signature`, on the first call of
 * each assistant turn). A history made by another model, or by an Anthropic
 * client that had nowhere to keep the signature, has none: Google documents a
 * stand-in value for exactly that case.
 */

type Json = Record<string, unknown>;

export const GEMINI_SKIP_SIGNATURE = "skip_thought_signature_validator";

const GOOGLE_ORIGIN = /^https?:\/\/(?:generativelanguage\.googleapis\.com|(?:[a-z0-9-]+-)?aiplatform\.googleapis\.com)(?::\d+)?$/i;

/** Google's OpenAI-compatible endpoints (Gemini API, Vertex AI), by the route's origin. */
export function isGoogleOrigin(origin: string): boolean {
  return GOOGLE_ORIGIN.test(origin);
}

const isObject = (value: unknown): value is Json => typeof value === "object" && value !== null && !Array.isArray(value);

function signatureOf(call: unknown): unknown {
  if (!isObject(call) || !isObject(call.extra_content) || !isObject(call.extra_content.google)) return undefined;
  return call.extra_content.google.thought_signature;
}

/**
 * `messages` with the stand-in signature on the first call of every assistant
 * message whose calls carry none; `undefined` when every one already has its
 * own (Gemini's own history), so such a body is left as it is.
 */
export function withThoughtSignatures(messages: unknown): Json[] | undefined {
  if (!Array.isArray(messages)) return undefined;
  let changed = false;
  const out = messages.map((message: unknown) => {
    if (!isObject(message) || message.role !== "assistant" || !Array.isArray(message.tool_calls) || message.tool_calls.length === 0) return message;
    const calls = message.tool_calls as unknown[];
    if (calls.some((call) => typeof signatureOf(call) === "string")) return message;
    const first = calls[0];
    if (!isObject(first)) return message;
    changed = true;
    const extra = isObject(first.extra_content) ? first.extra_content : {};
    const google = isObject(extra.google) ? extra.google : {};
    return { ...message, tool_calls: [{ ...first, extra_content: { ...extra, google: { ...google, thought_signature: GEMINI_SKIP_SIGNATURE } } }, ...calls.slice(1)] };
  });
  return changed ? (out as Json[]) : undefined;
}
