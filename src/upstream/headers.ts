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
  // The usual values name no header beyond the hop-by-hop ones, which are always dropped.
  if (!value || value === "keep-alive" || value === "close" || value === "Keep-Alive") return undefined;
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

/** What a route does to the client's headers, worked out once per route. */
interface RouteHeaderPlan {
  /** Client headers never forwarded to this route. */
  readonly skip: ReadonlySet<string>;
  /** Anthropic's version and beta headers mean nothing to an OpenAI upstream (and some reject unknown ones). */
  readonly dropAnthropic: boolean;
  /** The route's own headers and credential, set after the client's. */
  readonly fixed: readonly (readonly [string, string])[];
}

const plans = new WeakMap<Route, RouteHeaderPlan>();

function planFor(route: Route): RouteHeaderPlan {
  let plan = plans.get(route);
  if (plan) return plan;
  const skip = new Set([...HOP_BY_HOP, ...REQUEST_DROP]);
  const forwardCredentials = route.apiKey === "" && (route.authHeader === "authorization" || (route.api === "anthropic" && route.authHeader === "x-api-key"));
  if (!forwardCredentials) {
    for (const key of CLIENT_CREDENTIALS) skip.add(key);
    skip.add(route.authHeader);
  }
  const fixed: [string, string][] = Object.entries(route.headers);
  if (route.apiKey) fixed.push([route.authHeader, route.authPrefix + route.apiKey]);
  for (const [key] of fixed) skip.add(key);
  plan = { skip, dropAnthropic: route.api === "openai", fixed };
  plans.set(route, plan);
  return plan;
}

/**
 * Headers for one upstream attempt. The route's credential replaces whatever the
 * client sent (clients such as OpenClaw send a placeholder key); the client's own
 * credential reaches only routes that have no key and use the standard header.
 */
export function buildUpstreamHeaders(client: IncomingHttpHeaders, route: Route, options: UpstreamHeaderOptions): Record<string, string | string[]> {
  const plan = planFor(route);
  const out: Record<string, string | string[]> = {};
  const named = connectionTokens(client.connection);
  for (const key in client) {
    const value = client[key];
    if (value === undefined || plan.skip.has(key) || named?.has(key)) continue;
    if (plan.dropAnthropic && key.startsWith("anthropic-")) continue;
    out[key] = value;
  }
  for (const [key, value] of plan.fixed) out[key] = value;
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
