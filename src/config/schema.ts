/**
 * The one source of truth for configuration: the shape of routes.yml and of the
 * environment, their defaults and their validation messages. The loader, the
 * `validate` command and the `init` template all derive from these schemas.
 */
import { z } from "zod";

export const DEFAULT_RETRY_STATUS_CODES = [412, 429, 500, 502, 503, 504] as const;

const headerValue = z.union([z.string(), z.number(), z.boolean()]).transform((v) => String(v).trim());

const statusCode = z.coerce
  .number({ error: "must be an HTTP status code" })
  .int("must be a whole number")
  .min(100, "must be an HTTP status code (100-599)")
  .max(599, "must be an HTTP status code (100-599)");

const modelList = z.union(
  [
    z.string().trim().min(1, "must not be empty"),
    z.array(z.string().trim().min(1, "must not be empty")).min(1, "must list at least one model"),
  ],
  { error: "must be a model name or a list of model names" },
);

/** Keys a route inherits from `defaults` (1.0.0 also called it `global` or `auth`). */
export const routeDefaultsShape = {
  authHeader: z.string().trim().min(1, "must not be empty").toLowerCase().optional(),
  authPrefix: z.string().optional(),
  apiKey: z.string().trim().optional(),
  apiKeyEnv: z.string().trim().min(1, "must not be empty").optional(),
  headers: z.record(z.string().trim().min(1, "header names must not be empty"), headerValue).optional(),
  isBaseUrl: z.boolean({ error: "must be true or false" }).optional(),
  enabled: z.boolean({ error: "must be true or false" }).optional(),
};

export const routeDefaultsSchema = z.object(routeDefaultsShape, { error: "must be a mapping of route defaults" });

const millis = (what = "a number of milliseconds") =>
  z.number({ error: `must be ${what}` }).int(`must be ${what}`).min(1, `must be ${what} (at least 1)`);

const modelNames = z.array(z.string().trim().min(1, "must not be empty"), { error: "must be a list of model names" });

/** Per-attempt timeouts; each may be set globally (`timeouts:`) and per route. */
export const attemptTimeoutsShape = {
  /** TCP/TLS connect. */
  connectMs: millis().optional(),
  /** From sending the request to the response headers (REQUEST_TIMEOUT_MS). */
  headersMs: millis().optional(),
  /** Streams: from sending the request to the first event. */
  firstTokenMs: millis().optional(),
  /** Silence in the middle of a response body. */
  idleMs: millis().optional(),
};

export const timeoutsShape = {
  ...attemptTimeoutsShape,
  /** The whole request, every attempt and the answer included. */
  deadlineMs: millis().optional(),
};

export const routeShape = {
  name: z.string().trim().min(1, "must not be empty").optional(),
  url: z.string({ error: "is required: the upstream URL" }).superRefine((value, ctx) => {
    if (value.trim() === "") {
      ctx.addIssue({ code: "custom", message: "must be a non-empty URL" });
      return;
    }
    let url: URL | undefined;
    try {
      url = new URL(value.trim());
    } catch {
      url = undefined;
    }
    if (!url || (url.protocol !== "http:" && url.protocol !== "https:")) {
      ctx.addIssue({ code: "custom", message: "must be an absolute http:// or https:// URL" });
    }
  }).transform((value) => value.trim()),
  model: modelList.optional(),
  models: modelList.optional(),
  /** The API the upstream speaks: OpenAI (Chat Completions, Responses, ...) or Anthropic Messages. */
  api: z.enum(["openai", "anthropic"], { error: 'must be "openai" or "anthropic"' }).optional(),
  /** `max_tokens` sent to an Anthropic route when a Chat Completions client sets none (Anthropic requires one). */
  maxTokens: z.number({ error: "must be a whole number of tokens" }).int("must be a whole number of tokens").min(1, "must be at least 1").optional(),
  /** The upstream accepts a trailing assistant message and continues it: a cut stream may be resumed that way. */
  prefill: z.boolean({ error: "must be true or false" }).optional(),
  /** Fallback chain for every model of this route (a top-level `fallbacks` entry for the model wins). */
  fallbacks: modelNames.optional(),
  timeouts: z.object(attemptTimeoutsShape, { error: "must be a mapping of timeouts" }).optional(),
  ...routeDefaultsShape,
};

export const routeSchema = z
  .object(routeShape, { error: "must be a mapping with at least url and model" })
  .superRefine(
    (route, ctx) => {
      if (route.model === undefined && route.models === undefined) {
        ctx.addIssue({ code: "custom", path: ["model"], message: "is required: a model name or a list of model names" });
      }
    },
    // Report a missing model even when another field of the route is wrong too.
    { when: (payload) => typeof payload.value === "object" && payload.value !== null },
  );

export const noticeShape = {
  /** How a switch notice travels in an SSE stream: a comment line (safe), a named event (1.0.0), or not at all. */
  sse: z.enum(["comment", "event", "off"], { error: 'must be "comment", "event" or "off"' }).optional(),
  /** Whether JSON responses after a switch carry a top-level `gateway_notice` field. */
  json: z.boolean({ error: "must be true or false" }).optional(),
};

const strategy = z.enum(["round-robin", "ordered", "health"], { error: 'must be "round-robin", "ordered" or "health"' });

export const groupShape = {
  models: modelNames.min(1, "must list at least one model"),
  strategy: strategy.optional(),
};

export const autoShape = {
  /** The models `auto` uses (default: every enabled route model). */
  models: modelNames.min(1, "must list at least one model").optional(),
  strategy: strategy.optional(),
};

export const retryShape = {
  /** Retries of the same model on a transient failure (5xx, reset, short 429). */
  retries: z.number({ error: "must be a number" }).int("must be a whole number").min(0, "must be 0 or more").max(5, "must be at most 5").optional(),
  backoffMs: millis().optional(),
  maxBackoffMs: millis().optional(),
  /** A pinned model's 429 asking to wait at most this long is waited for; longer ones fail over. */
  retryAfterCapMs: z.number({ error: "must be a number of milliseconds" }).int().min(0, "must be 0 or more").optional(),
  /** Error codes passed to the client as they are, never retried (added to the built-in list). */
  passthroughCodes: z.array(z.string().trim().min(1).toLowerCase(), { error: "must be a list of error codes" }).optional(),
  /** Error codes that mean "another model can serve this": fail over at once (added to the built-in list). */
  failoverCodes: z.array(z.string().trim().min(1).toLowerCase(), { error: "must be a list of error codes" }).optional(),
};

export const breakerShape = {
  consecutiveFailures: z.number().int().min(1, "must be at least 1").optional(),
  failureRate: z.number({ error: "must be a number between 0 and 1" }).gt(0, "must be above 0").max(1, "must be at most 1").optional(),
  minRequests: z.number().int().min(1, "must be at least 1").optional(),
  windowSize: z.number().int().min(1, "must be at least 1").max(1000, "must be at most 1000").optional(),
  windowMs: millis().optional(),
  cooldownMs: millis().optional(),
  maxCooldownMs: millis().optional(),
  /** Cooldown after a 429 without Retry-After. */
  rateLimitCooldownMs: millis().optional(),
};

export const routesFileShape = {
  defaults: routeDefaultsSchema.optional(),
  global: routeDefaultsSchema.optional(),
  auth: routeDefaultsSchema.optional(),
  retryStatusCodes: z.array(statusCode, { error: "must be a list of HTTP status codes" }).min(1, "must list at least one status code").optional(),
  notice: z.object(noticeShape, { error: "must be a mapping" }).optional(),
  /** Named groups, callable as a model: `groups: {fast: [a, b]}` or `{fast: {models: [a, b], strategy: ordered}}`. */
  groups: z
    .record(
      z.string().trim().min(1),
      z.union([modelNames.min(1, "must list at least one model"), z.object(groupShape)], { error: "must be a list of models or {models, strategy}" }),
    )
    .optional(),
  /** Per-model fallback chains for pinned models. */
  fallbacks: z.record(z.string().trim().min(1), modelNames).optional(),
  auto: z.object(autoShape, { error: "must be a mapping" }).optional(),
  retry: z.object(retryShape, { error: "must be a mapping" }).optional(),
  timeouts: z.object(timeoutsShape, { error: "must be a mapping of timeouts" }).optional(),
  breaker: z.object(breakerShape, { error: "must be a mapping" }).optional(),
  routes: z.array(routeSchema, { error: "must be a list of routes" }),
};

export const routesFileSchema = z.object(routesFileShape, { error: "must be a YAML mapping or a list of routes" });

export type RoutesFile = z.infer<typeof routesFileSchema>;
export type RawRoute = z.infer<typeof routeSchema>;
export type RouteDefaults = z.infer<typeof routeDefaultsSchema>;

const csv = (value: string) =>
  value
    .split(",")
    .map((item) => item.trim())
    .filter(Boolean);

const positiveInt = (what: string, min = 1) =>
  z.coerce.number({ error: `must be ${what}` }).int(`must be ${what}`).min(min, `must be at least ${min}`);

/**
 * Environment variables (from the process and `.env`). Every 1.0.0 variable is
 * here; the ones 1.0.0 parsed but ignored (GLOBAL_FALLBACK_MODELS,
 * MODEL_FALLBACK_MAP) take effect.
 */
export const envShape = {
  HOST: z.string().trim().min(1).default("127.0.0.1"),
  PORT: positiveInt("a TCP port number", 0).max(65535, "must be a TCP port number (0-65535)").default(8787),
  ROUTES_FILE: z.string().trim().min(1).optional(),
  REQUEST_TIMEOUT_MS: positiveInt("a number of milliseconds", 100).default(60_000),
  CONNECT_TIMEOUT_MS: positiveInt("a number of milliseconds", 100).default(10_000),
  MAX_BODY_BYTES: positiveInt("a number of bytes", 1024).default(50 * 1024 * 1024),
  RETRY_STATUS_CODES: z
    .string()
    .transform((value, ctx) => {
      const codes = csv(value).map((item) => Number(item));
      const bad = codes.find((code) => !Number.isInteger(code) || code < 100 || code > 599);
      if (bad !== undefined) {
        ctx.addIssue({ code: "custom", message: `must be a comma-separated list of HTTP status codes (bad: ${bad})` });
        return z.NEVER;
      }
      return codes;
    })
    .optional(),
  GLOBAL_FALLBACK_MODELS: z.string().transform(csv).optional(),
  MODEL_FALLBACK_MAP: z
    .string()
    .transform((value, ctx) => {
      let parsed: unknown;
      try {
        parsed = JSON.parse(value);
      } catch {
        ctx.addIssue({ code: "custom", message: 'must be JSON, e.g. {"gpt-4o": ["gpt-4o-mini"]}' });
        return z.NEVER;
      }
      const result = z.record(z.string(), z.array(z.string().trim().min(1))).safeParse(parsed);
      if (!result.success) {
        ctx.addIssue({ code: "custom", message: 'must be a JSON object of model → list of models, e.g. {"gpt-4o": ["gpt-4o-mini"]}' });
        return z.NEVER;
      }
      return result.data;
    })
    .optional(),
  UPSTREAM_BASE_URL: z
    .string()
    .trim()
    .refine((value) => /^https?:\/\/[^/]/.test(value), "must be an absolute http:// or https:// URL")
    .optional(),
  UPSTREAM_API_KEY: z.string().trim().optional(),
  UPSTREAM_MAX_CONNECTIONS: positiveInt("a number of connections").default(200),
  UPSTREAM_KEEPALIVE_TIMEOUT_MS: positiveInt("a number of milliseconds").default(60_000),
  UPSTREAM_KEEPALIVE_MAX_TIMEOUT_MS: positiveInt("a number of milliseconds").default(300_000),
  LOG_LEVEL: z.enum(["trace", "debug", "info", "warn", "error", "fatal", "silent"]).default("info"),
};

export const envSchema = z.object(envShape);
export type EnvConfig = z.infer<typeof envSchema>;
