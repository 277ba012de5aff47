import type { Route, UpstreamApi } from "../config/types.js";
import { chatToMessagesRequest, messagesToChatRequest } from "../compat/anthropic/request.js";
import { upstreamPath } from "../upstream/url.js";
import { isGoogleOrigin } from "../compat/gemini.js";

/**
 * Which API a client speaks and how each candidate's upstream can serve it:
 * natively, through a translation (Chat Completions ⇄ Anthropic Messages), or
 * not at all.
 */

export type ClientApi = "chat" | "responses" | "messages" | "count_tokens" | "other";

/** Anthropic's paths, also served under the prefix openclaw-autoproxy 1.0.0 users know. */
const ANTHROPIC_PREFIX = "/anthropic";

/** The client's API for a (normalised) request path, and the path to route it as. */
export function clientApiOf(pathname: string): { api: ClientApi; pathname: string } | undefined {
  if (pathname.startsWith(ANTHROPIC_PREFIX + "/")) {
    const rest = pathname.slice(ANTHROPIC_PREFIX.length);
    if (rest === "/v1/messages") return { api: "messages", pathname: rest };
    if (rest === "/v1/messages/count_tokens") return { api: "count_tokens", pathname: rest };
    return undefined;
  }
  if (pathname === "/v1/messages") return { api: "messages", pathname };
  if (pathname === "/v1/messages/count_tokens") return { api: "count_tokens", pathname };
  if (pathname === "/v1/responses") return { api: "responses", pathname };
  if (pathname.endsWith("/chat/completions")) return { api: "chat", pathname };
  return { api: "other", pathname };
}

/** Whether the client sees Anthropic's formats (errors, notices). */
export function speaksAnthropic(api: ClientApi): boolean {
  return api === "messages" || api === "count_tokens";
}

/**
 * How an answer from the upstream is turned into the client's API:
 * `chat-from-messages`: a Chat Completions client served by an Anthropic route;
 * `messages-from-chat`: a Messages client served by an OpenAI route.
 */
export type Codec = "chat-from-messages" | "messages-from-chat";

/** Why a candidate cannot serve a request, when it cannot. */
export function unsupported(client: ClientApi, upstream: UpstreamApi): { status: number; message: string } | undefined {
  if (upstream === "openai") {
    if (client === "count_tokens") {
      return { status: 501, message: "count_tokens needs an Anthropic route (api: anthropic); OpenAI-compatible upstreams have no token-counting endpoint" };
    }
    return undefined;
  }
  if (client === "chat" || client === "messages" || client === "count_tokens") return undefined;
  if (client === "responses") return { status: 501, message: "the Responses API is not translated to Anthropic routes (api: anthropic); use /v1/chat/completions or /v1/messages for this model" };
  return { status: 501, message: "this endpoint is not available on Anthropic routes (api: anthropic), which serve /v1/messages and /v1/chat/completions only" };
}

export function codecFor(client: ClientApi, upstream: UpstreamApi): Codec | undefined {
  if (client === "chat" && upstream === "anthropic") return "chat-from-messages";
  if (client === "messages" && upstream === "openai") return "messages-from-chat";
  return undefined;
}

/** The upstream path for a request of API `client` on `route`. */
export function pathFor(route: Route, client: ClientApi, pathname: string, search: string): string {
  if (route.api === "anthropic") {
    return anthropicPath(route, client === "count_tokens" ? "/v1/messages/count_tokens" : "/v1/messages", client === "chat" ? "" : search);
  }
  // A translated Messages request goes to the route's chat endpoint; Anthropic's query parameters mean nothing there.
  if (client === "messages") return upstreamPath(route, "/v1/chat/completions", "");
  return upstreamPath(route, pathname, search);
}

/**
 * An Anthropic route's URL is a base (`https://api.anthropic.com`,
 * `https://api.deepseek.com/anthropic`, ending in `/v1` or not) or the full
 * `/v1/messages` endpoint.
 */
function anthropicPath(route: Route, endpoint: "/v1/messages" | "/v1/messages/count_tokens", search: string): string {
  let base = route.basePath;
  if (base.endsWith("/v1/messages")) base = base.slice(0, -"/v1/messages".length);
  else if (base.endsWith("/v1")) base = base.slice(0, -"/v1".length);
  const query = [route.baseQuery, search.startsWith("?") ? search.slice(1) : search].filter(Boolean).join("&");
  return base + endpoint + (query ? `?${query}` : "");
}

/** A request body translated for one candidate, or why it cannot be. */
export type TranslatedBody = { ok: true; body: Buffer } | { ok: false; message: string; param?: string };

/** The client's body (parsed JSON) in the upstream's API, for `model`. */
export function translateRequest(codec: Codec, parsed: unknown, model: string, route: Route): TranslatedBody {
  const result =
    codec === "chat-from-messages"
      ? chatToMessagesRequest(parsed, model, { defaultMaxTokens: route.maxTokens })
      : messagesToChatRequest(parsed, model, { maxTokensCap: route.maxTokensCap, geminiSignatures: isGoogleOrigin(route.origin) });
  if (!result.ok) return result;
  return { ok: true, body: Buffer.from(JSON.stringify(result.body)) };
}

/** One candidate's request, in its upstream's API. */
export interface Exchange {
  readonly path: string;
  readonly body: Buffer | undefined;
  readonly codec: Codec | undefined;
  /** The upstream's stream, once translated if need be, is a Chat Completions stream (held and relayed with its integrity checks). */
  readonly chatStream: boolean;
  /** A translated Chat Completions stream ends with a usage chunk (the client asked for `stream_options.include_usage`, or needs usage). */
  readonly includeUsage: boolean;
}
