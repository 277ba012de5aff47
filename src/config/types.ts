/** The validated, immutable configuration every stage of the gateway receives. */

import type { HealthPolicy } from "../routing/health.js";
import type { RetryPolicy, Rule } from "../routing/policy.js";

export type SseNoticeMode = "comment" | "event" | "off";

/** How `auto` and groups order their candidates. */
export type Strategy = "round-robin" | "ordered" | "health";

export interface AttemptTimeouts {
  readonly connectMs: number;
  readonly headersMs: number;
  readonly firstTokenMs: number;
  readonly idleMs: number;
}

export interface ModelGroup {
  readonly models: readonly string[];
  readonly strategy: Strategy;
}

/** The API an upstream speaks. */
export type UpstreamApi = "openai" | "anthropic";

export interface Route {
  /** The route's name in routes.yml, or `routes[i]` when it has none. */
  readonly name: string;
  readonly url: string;
  readonly isBaseUrl: boolean;
  readonly api: UpstreamApi;
  /** `max_tokens` for a translated request that sets none (Anthropic routes). */
  readonly maxTokens: number;
  /** `maxTokens` when the file sets it: on an OpenAI route, the most a translated Messages request may ask for. */
  readonly maxTokensCap?: number;
  readonly models: readonly string[];
  readonly enabled: boolean;
  /** Lower-case header name the route's credential goes in. */
  readonly authHeader: string;
  readonly authPrefix: string;
  /** The resolved key (inline or from apiKeyEnv); empty when the route has none. */
  readonly apiKey: string;
  /** Extra headers, lower-case names, applied after the client's. */
  readonly headers: Readonly<Record<string, string>>;
  /** The upstream continues a trailing assistant message (continuation by prefill). */
  readonly prefill: boolean;
  /** Fallback chain for this route's models. */
  readonly fallbacks: readonly string[];
  readonly timeouts: AttemptTimeouts;
  /** Parsed once: the upstream origin and path pieces used by URL joining. */
  readonly origin: string;
  readonly basePath: string;
  readonly baseQuery: string;
}

export interface GatewayConfig {
  readonly host: string;
  readonly port: number;
  readonly maxBodyBytes: number;
  readonly retryStatusCodes: ReadonlySet<number>;
  /** Enabled routes only, in file order. */
  readonly routes: readonly Route[];
  /** Every model named by an enabled route (including `*` when a route names it) → its route. */
  readonly modelRoutes: ReadonlyMap<string, Route>;
  /** The catch-all route: a `*` route, or the implicit one built from UPSTREAM_BASE_URL. */
  readonly wildcard: Route | undefined;
  /** Candidates for `model: "auto"`: `auto.models`, else every enabled route model except `*`, in file order. */
  readonly autoModels: readonly string[];
  readonly autoStrategy: Strategy;
  /** Named groups, callable as a model. */
  readonly groups: ReadonlyMap<string, ModelGroup>;
  /** Top-level per-model fallback chains. */
  readonly fallbacks: ReadonlyMap<string, readonly string[]>;
  readonly retry: RetryPolicy;
  readonly breaker: HealthPolicy;
  /** Classification rules, checked in order. */
  readonly rules: readonly Rule[];
  /** Global attempt timeouts (a route may override each). */
  readonly timeouts: AttemptTimeouts;
  /** Bound on a whole request. */
  readonly deadlineMs: number;
  readonly globalFallbackModels: readonly string[];
  readonly modelFallbackMap: Readonly<Record<string, readonly string[]>>;
  readonly notice: { readonly sse: SseNoticeMode; readonly json: boolean };
  readonly upstream: {
    readonly maxConnections: number;
    readonly keepAliveTimeoutMs: number;
    readonly keepAliveMaxTimeoutMs: number;
  };
  readonly logLevel: string;
  /** Where the configuration came from, for messages. */
  readonly source: { readonly routesFile: string | undefined; readonly envFile: string | undefined };
}
