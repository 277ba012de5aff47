/** The validated, immutable configuration every stage of the gateway receives. */

export type SseNoticeMode = "comment" | "event" | "off";

export interface Route {
  /** The route's name in routes.yml, or `routes[i]` when it has none. */
  readonly name: string;
  readonly url: string;
  readonly isBaseUrl: boolean;
  readonly models: readonly string[];
  readonly enabled: boolean;
  /** Lower-case header name the route's credential goes in. */
  readonly authHeader: string;
  readonly authPrefix: string;
  /** The resolved key (inline or from apiKeyEnv); empty when the route has none. */
  readonly apiKey: string;
  /** Extra headers, lower-case names, applied after the client's. */
  readonly headers: Readonly<Record<string, string>>;
  /** Parsed once: the upstream origin and path pieces used by URL joining. */
  readonly origin: string;
  readonly basePath: string;
  readonly baseQuery: string;
}

export interface GatewayConfig {
  readonly host: string;
  readonly port: number;
  readonly requestTimeoutMs: number;
  readonly connectTimeoutMs: number;
  readonly maxBodyBytes: number;
  readonly retryStatusCodes: ReadonlySet<number>;
  /** Enabled routes only, in file order. */
  readonly routes: readonly Route[];
  /** Every model named by an enabled route (including `*` when a route names it) → its route. */
  readonly modelRoutes: ReadonlyMap<string, Route>;
  /** The catch-all route: a `*` route, or the implicit one built from UPSTREAM_BASE_URL. */
  readonly wildcard: Route | undefined;
  /** Candidates for `model: "auto"`: every enabled route model except `*`, in file order. */
  readonly autoModels: readonly string[];
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
