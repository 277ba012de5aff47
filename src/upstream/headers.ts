import type { IncomingHttpHeaders, OutgoingHttpHeaders } from "node:http";
import type { Route } from "../config/types.js";

/** RFC 9110 §7.6.1 hop-by-hop headers, plus ones a proxy must regenerate itself. */
const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-authenticate",
  "proxy-authorization",
  "proxy-connection",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
]);

/** Never forwarded upstream: the gateway's own framing and the client's view of the network. */
const REQUEST_DROP = new Set(["host", "content-length", "expect", "forwarded", "x-forwarded-for", "x-forwarded-host", "x-forwarded-proto", "x-forwarded-port", "x-real-ip"]);

/** Client credentials: forwarded only to a route that has none of its own. */
const CLIENT_CREDENTIALS = ["authorization", "x-api-key", "api-key"];

function connectionTokens(value: string | string[] | undefined): Set<string> | undefined {
  if (!value) return undefined;
  const tokens = new Set<string>();
  for (const part of Array.isArray(value) ? value : [value]) {
    for (const token of part.split(",")) {
      const name = token.trim().toLowerCase();
      if (name) tokens.add(name);
    }
  }
  return tokens;
}

export interface UpstreamHeaderOptions {
  bodyLength: number | undefined;
  /** Ask for an uncompressed answer so the gateway can inspect or annotate it. */
  identityEncoding: boolean;
}

/**
 * Headers for one upstream attempt. The route's credential replaces whatever the
 * client sent (clients such as OpenClaw send a placeholder key); the client's own
 * credential reaches only routes that have no key and use the standard header.
 */
export function buildUpstreamHeaders(client: IncomingHttpHeaders, route: Route, options: UpstreamHeaderOptions): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  const named = connectionTokens(client.connection);
  const forwardCredentials = route.apiKey === "" && (route.authHeader === "authorization" || (route.api === "anthropic" && route.authHeader === "x-api-key"));
  const openai = route.api === "openai";
  for (const key in client) {
    const value = client[key];
    if (value === undefined || HOP_BY_HOP.has(key) || REQUEST_DROP.has(key) || named?.has(key)) continue;
    // Anthropic's version and beta headers mean nothing to an OpenAI upstream (and some reject unknown ones).
    if (openai && key.startsWith("anthropic-")) continue;
    out[key] = value;
  }
  if (!forwardCredentials) {
    for (const key of CLIENT_CREDENTIALS) delete out[key];
    delete out[route.authHeader];
  }
  for (const key in route.headers) out[key] = route.headers[key] as string;
  if (route.apiKey) out[route.authHeader] = route.authPrefix + route.apiKey;
  if (options.identityEncoding) out["accept-encoding"] = "identity";
  if (options.bodyLength !== undefined) out["content-length"] = String(options.bodyLength);
  return out;
}

/** Response headers to relay to the client: everything but hop-by-hop ones. */
export function relayResponseHeaders(upstream: Record<string, string | string[] | undefined>, dropLength: boolean): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  const named = connectionTokens(upstream.connection);
  for (const key in upstream) {
    const value = upstream[key];
    if (value === undefined || HOP_BY_HOP.has(key) || named?.has(key)) continue;
    if (dropLength && key === "content-length") continue;
    out[key] = value;
  }
  return out;
}
