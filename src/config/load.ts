import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { parse as parseDotenv } from "dotenv";
import { LineCounter, parseDocument, type Document } from "yaml";
import type { z } from "zod";
import {
  attemptTimeoutsShape,
  autoShape,
  breakerShape,
  DEFAULT_RETRY_STATUS_CODES,
  envSchema,
  groupShape,
  noticeShape,
  retryShape,
  timeoutsShape,
  routeDefaultsShape,
  routeShape,
  routesFileSchema,
  routesFileShape,
  type RawRoute,
  type RouteDefaults,
} from "./schema.js";
import { DEFAULT_HEALTH_POLICY } from "../routing/health.js";
import { DEFAULT_RETRY_POLICY, DEFAULT_RULES, type Rule } from "../routing/policy.js";
import { AUTO_MODEL, ConfigError, WILDCARD_MODEL } from "./names.js";
import type { AttemptTimeouts, GatewayConfig, ModelGroup, Route } from "./types.js";

export { AUTO_MODEL, ConfigError, WILDCARD_MODEL } from "./names.js";
/** Streams: a first event must come within this (well under OpenClaw's patience, above most models' TTFT). */
export const DEFAULT_FIRST_TOKEN_MS = 10_000;
/** Silence allowed in the middle of an answer. */
export const DEFAULT_IDLE_MS = 30_000;
/** Bound on a whole request, answer included. */
export const DEFAULT_DEADLINE_MS = 600_000;


export interface LoadOptions {
  /** Directory `routes.yml` and `.env` are looked up in (default: process.cwd()). */
  cwd?: string;
  /** Explicit routes file (`--config`); else ROUTES_FILE; else `<cwd>/routes.yml`. */
  routesFile?: string;
  /** Explicit .env file, or false to read none; else `<cwd>/.env` when it exists. */
  envFile?: string | false;
  /** The process environment (default: process.env); it wins over `.env`, as with dotenv. */
  env?: Record<string, string | undefined>;
  /** Command-line flags, which win over both. */
  overrides?: { host?: string; port?: number };
}

export interface LoadResult {
  config: GatewayConfig;
  warnings: string[];
}

/** Reads `.env`, the environment and routes.yml; throws ConfigError listing every problem. */
export function loadConfig(options: LoadOptions = {}): LoadResult {
  const cwd = options.cwd ?? process.cwd();
  const problems: string[] = [];

  const envFile = options.envFile === false ? undefined : path.resolve(cwd, options.envFile ?? ".env");
  let fileEnv: Record<string, string> = {};
  if (envFile && existsSync(envFile)) {
    try {
      fileEnv = parseDotenv(readFileSync(envFile));
    } catch (error) {
      problems.push(`${envFile}: cannot read: ${(error as Error).message}`);
    }
  } else if (options.envFile) {
    problems.push(`${envFile}: file not found`);
  }
  const env = mergeEnv(fileEnv, options.env ?? process.env);

  const routesFile = path.resolve(cwd, options.routesFile ?? env.ROUTES_FILE ?? "routes.yml");
  let text: string | undefined;
  try {
    text = readFileSync(routesFile, "utf8");
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    problems.push(
      code === "ENOENT"
        ? `${routesFile}: file not found. Create one with \`openclaw-autoproxy init\`, or pass --config PATH.`
        : `${routesFile}: cannot read: ${(error as Error).message}`,
    );
  }

  const result =
    text === undefined
      ? undefined
      : buildConfig(text, env, { routesFile, envFile: envFile && existsSync(envFile) ? envFile : undefined, fileEnvKeys: new Set(Object.keys(fileEnv)), overrides: options.overrides });
  if (result) problems.push(...result.problems);
  if (problems.length > 0 || !result?.config) throw new ConfigError(problems);
  return { config: result.config, warnings: result.warnings };
}

function mergeEnv(fileEnv: Record<string, string>, processEnv: Record<string, string | undefined>): Record<string, string> {
  const merged: Record<string, string> = {};
  // An empty variable means "not set": `RETRY_STATUS_CODES=` in .env must not disable retries.
  for (const source of [fileEnv, processEnv]) {
    for (const [key, value] of Object.entries(source)) {
      if (value !== undefined && value.trim() !== "") merged[key] = value;
    }
  }
  return merged;
}

interface BuildMeta {
  routesFile: string;
  envFile?: string | undefined;
  fileEnvKeys?: ReadonlySet<string>;
  overrides?: { host?: string; port?: number } | undefined;
}

interface BuildResult {
  config?: GatewayConfig;
  problems: string[];
  warnings: string[];
}

/** Pure: routes.yml text + environment → config, problems and warnings. */
export function buildConfig(text: string, env: Record<string, string>, meta: BuildMeta): BuildResult {
  const problems: string[] = [];
  const warnings: string[] = [];
  const file = meta.routesFile;

  const envResult = envSchema.safeParse(env);
  if (!envResult.success) {
    for (const issue of envResult.error.issues) {
      const name = String(issue.path[0]);
      const where = meta.fileEnvKeys?.has(name) && meta.envFile ? meta.envFile : "environment";
      problems.push(`${where}: ${name}=${JSON.stringify(env[name] ?? "")}: ${issue.message}`);
    }
  }

  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    for (const error of doc.errors) {
      const pos = lineCounter.linePos(error.pos[0]);
      problems.push(`${file}:${pos.line}:${pos.col}: invalid YAML: ${error.message.split("\n")[0]}`);
    }
    return { problems, warnings };
  }

  const raw: unknown = doc.toJS();
  const topIsArray = Array.isArray(raw);
  const locate = (issuePath: readonly PropertyKey[]): string => {
    const docPath = topIsArray && issuePath[0] === "routes" ? issuePath.slice(1) : issuePath;
    return lineOf(doc, lineCounter, docPath);
  };

  if (raw === null || raw === undefined) {
    problems.push(`${file}: the file is empty; it needs a "routes:" list (see \`openclaw-autoproxy init\`).`);
    return { problems, warnings };
  }
  const input = topIsArray ? { routes: raw } : raw;

  if (input && typeof input === "object" && !Array.isArray(input)) {
    warnings.push(...unknownKeyWarnings(input as Record<string, unknown>, file, locate));
  }

  const parsed = routesFileSchema.safeParse(input);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      problems.push(formatIssue(file, issue, input, locate));
    }
    return { problems, warnings };
  }
  if (!envResult.success) return { problems, warnings };

  const envConfig = envResult.data;
  const fileData = parsed.data;
  const defaultsKeys = (["defaults", "global", "auth"] as const).filter((key) => fileData[key] !== undefined);
  if (defaultsKeys.length > 1) {
    warnings.push(`${file}: both "${defaultsKeys.join('" and "')}" are set; only "${defaultsKeys[0]}" is used.`);
  }
  const defaults: RouteDefaults = (defaultsKeys[0] ? fileData[defaultsKeys[0]] : undefined) ?? {};

  const timeouts: AttemptTimeouts = {
    connectMs: fileData.timeouts?.connectMs ?? envConfig.CONNECT_TIMEOUT_MS,
    headersMs: fileData.timeouts?.headersMs ?? envConfig.REQUEST_TIMEOUT_MS,
    firstTokenMs: fileData.timeouts?.firstTokenMs ?? DEFAULT_FIRST_TOKEN_MS,
    idleMs: fileData.timeouts?.idleMs ?? DEFAULT_IDLE_MS,
  };
  const allRoutes = fileData.routes.map((route, index) => resolveRoute(route, index, defaults, timeouts, env, warnings, file));
  const routes = allRoutes.filter((route) => route.enabled);

  const modelRoutes = new Map<string, Route>();
  for (const route of routes) {
    for (const model of route.models) {
      const index = allRoutes.indexOf(route);
      const key = fileData.routes[index]?.model !== undefined ? "model" : "models";
      const line = locate(["routes", index, key]);
      if (model.toLowerCase() === AUTO_MODEL) {
        problems.push(`${file}: route "${route.name}" (routes[${index}]) field "${key}": "${model}" is reserved for automatic mode${line}`);
        continue;
      }
      const existing = modelRoutes.get(model);
      if (existing) {
        problems.push(
          `${file}: route "${route.name}" (routes[${index}]) field "${key}": "${model}" is already served by enabled route "${existing.name}"; a model may appear in one enabled route only${line}`,
        );
        continue;
      }
      modelRoutes.set(model, route);
    }
  }

  let wildcard = modelRoutes.get(WILDCARD_MODEL);
  if (!wildcard && envConfig.UPSTREAM_BASE_URL) {
    wildcard = makeRoute({
      name: "UPSTREAM_BASE_URL",
      url: envConfig.UPSTREAM_BASE_URL,
      isBaseUrl: true,
      models: [WILDCARD_MODEL],
      enabled: true,
      authHeader: "authorization",
      authPrefix: "Bearer ",
      apiKey: envConfig.UPSTREAM_API_KEY ?? "",
      headers: {},
      fallbacks: [],
      prefill: false,
      timeouts,
    });
  }

  const isRoutable = (model: string) => modelRoutes.has(model) || wildcard !== undefined;
  const routed = (models: readonly string[], where: string) => {
    const kept = models.filter((model) => model !== WILDCARD_MODEL && modelRoutes.has(model));
    for (const model of models) {
      if (!kept.includes(model)) warnings.push(`${file}: ${where}: "${model}" has no enabled route and is skipped.`);
    }
    return [...new Set(kept)];
  };
  const allModels = [...modelRoutes.keys()].filter((model) => model !== WILDCARD_MODEL);
  const autoModels = fileData.auto?.models ? routed(fileData.auto.models, "auto.models") : allModels;

  const groups = new Map<string, ModelGroup>();
  for (const [name, value] of Object.entries(fileData.groups ?? {})) {
    const line = locate(["groups", name]);
    if (name.toLowerCase() === AUTO_MODEL || modelRoutes.has(name)) {
      problems.push(`${file}: groups: "${name}" is also ${name.toLowerCase() === AUTO_MODEL ? "the automatic mode" : "a model name"}; a group needs a name of its own${line}`);
      continue;
    }
    const models = routed(Array.isArray(value) ? value : value.models, `groups.${name}`);
    if (models.length === 0) warnings.push(`${file}: groups.${name}: no member has an enabled route; requests for it will be answered 404${line}`);
    groups.set(name, { models, strategy: (Array.isArray(value) ? undefined : value.strategy) ?? "round-robin" });
  }

  const fallbacks = new Map<string, readonly string[]>();
  for (const [model, chain] of Object.entries(fileData.fallbacks ?? {})) {
    if (!isRoutable(model)) warnings.push(`${file}: fallbacks: "${model}" has no enabled route${locate(["fallbacks", model])}`);
    const kept = chain.filter((entry) => isRoutable(entry) || groups.has(entry));
    for (const entry of chain) {
      if (!kept.includes(entry)) warnings.push(`${file}: fallbacks.${model}: "${entry}" has no enabled route and is skipped.`);
    }
    fallbacks.set(model, kept);
  }
  const globalFallbackModels = envConfig.GLOBAL_FALLBACK_MODELS ?? [];
  const modelFallbackMap = envConfig.MODEL_FALLBACK_MAP ?? {};
  for (const model of [...globalFallbackModels, ...Object.values(modelFallbackMap).flat()]) {
    if (!isRoutable(model) && !groups.has(model)) warnings.push(`environment: fallback model "${model}" has no enabled route and will be skipped.`);
  }

  for (const route of routes) {
    const index = allRoutes.indexOf(route);
    for (const entry of route.fallbacks) {
      if (!isRoutable(entry) && !groups.has(entry)) {
        warnings.push(`${file}: route "${route.name}" (routes[${index}]) field "fallbacks": "${entry}" has no enabled route and is skipped${locate(["routes", index, "fallbacks"])}`);
      }
    }
  }

  if (routes.length === 0 && !wildcard) {
    warnings.push(`${file}: no enabled routes; every model request will be answered 404.`);
  }

  if (problems.length > 0) return { problems, warnings };

  const config: GatewayConfig = {
    host: meta.overrides?.host ?? envConfig.HOST,
    port: meta.overrides?.port ?? envConfig.PORT,
    maxBodyBytes: envConfig.MAX_BODY_BYTES,
    retryStatusCodes: new Set(fileData.retryStatusCodes ?? envConfig.RETRY_STATUS_CODES ?? DEFAULT_RETRY_STATUS_CODES),
    routes,
    modelRoutes,
    wildcard,
    autoModels,
    autoStrategy: fileData.auto?.strategy ?? "round-robin",
    groups,
    fallbacks,
    retry: {
      retries: fileData.retry?.retries ?? DEFAULT_RETRY_POLICY.retries,
      backoffBaseMs: fileData.retry?.backoffMs ?? DEFAULT_RETRY_POLICY.backoffBaseMs,
      backoffMaxMs: fileData.retry?.maxBackoffMs ?? DEFAULT_RETRY_POLICY.backoffMaxMs,
      retryAfterCapMs: fileData.retry?.retryAfterCapMs ?? DEFAULT_RETRY_POLICY.retryAfterCapMs,
      minSpacingMs: DEFAULT_RETRY_POLICY.minSpacingMs,
    },
    breaker: {
      ...DEFAULT_HEALTH_POLICY,
      ...definedOnly({
        consecutiveFailures: fileData.breaker?.consecutiveFailures,
        failureRate: fileData.breaker?.failureRate,
        minRequests: fileData.breaker?.minRequests,
        windowSize: fileData.breaker?.windowSize,
        windowMs: fileData.breaker?.windowMs,
        baseCooldownMs: fileData.breaker?.cooldownMs,
        maxCooldownMs: fileData.breaker?.maxCooldownMs,
        rateLimitCooldownMs: fileData.breaker?.rateLimitCooldownMs,
      }),
    },
    rules: buildRules(fileData.retry?.passthroughCodes ?? [], fileData.retry?.failoverCodes ?? []),
    timeouts,
    deadlineMs: fileData.timeouts?.deadlineMs ?? DEFAULT_DEADLINE_MS,
    globalFallbackModels,
    modelFallbackMap,
    notice: { sse: fileData.notice?.sse ?? "comment", json: fileData.notice?.json ?? true },
    upstream: {
      maxConnections: envConfig.UPSTREAM_MAX_CONNECTIONS,
      keepAliveTimeoutMs: envConfig.UPSTREAM_KEEPALIVE_TIMEOUT_MS,
      keepAliveMaxTimeoutMs: envConfig.UPSTREAM_KEEPALIVE_MAX_TIMEOUT_MS,
    },
    logLevel: envConfig.LOG_LEVEL,
    source: { routesFile: file, envFile: meta.envFile },
  };
  return { config, problems, warnings };
}

function definedOnly<T extends object>(values: T): Partial<T> {
  return Object.fromEntries(Object.entries(values).filter(([, value]) => value !== undefined)) as Partial<T>;
}

/** The built-in rules, with the configured codes in front: passthrough first, as a policy refusal beats everything. */
function buildRules(passthroughCodes: string[], failoverCodes: string[]): Rule[] {
  const rules: Rule[] = [];
  if (passthroughCodes.length) rules.push({ name: "configured-passthrough", action: "final", codes: passthroughCodes });
  if (failoverCodes.length) rules.push({ name: "configured-failover", action: "failover", codes: failoverCodes });
  return [...rules, ...DEFAULT_RULES];
}

function resolveRoute(
  route: RawRoute,
  index: number,
  defaults: RouteDefaults,
  timeouts: AttemptTimeouts,
  env: Record<string, string>,
  warnings: string[],
  file: string,
): Route {
  const name = route.name ?? `routes[${index}]`;
  const modelValue = route.model ?? route.models ?? [];
  const models = [...new Set(typeof modelValue === "string" ? [modelValue] : modelValue)];
  const enabled = route.enabled ?? defaults.enabled ?? true;

  let apiKey = route.apiKey ?? "";
  const keyEnv = route.apiKey ? undefined : (route.apiKeyEnv ?? (defaults.apiKey ? undefined : defaults.apiKeyEnv));
  if (!apiKey && keyEnv) {
    apiKey = env[keyEnv]?.trim() ?? "";
    if (!apiKey && enabled) {
      warnings.push(`${file}: route "${name}" (routes[${index}]) field "apiKeyEnv": ${keyEnv} is not set; the route will be called without a key.`);
    }
  }
  if (!apiKey && !keyEnv) apiKey = defaults.apiKey ?? "";

  const api = route.api ?? "openai";
  const headers: Record<string, string> = {};
  // An Anthropic upstream needs a version it accepts; the client's own (the SDK sends its newest) is not forwarded.
  if (api === "anthropic") headers["anthropic-version"] = DEFAULT_ANTHROPIC_VERSION;
  for (const [key, value] of Object.entries({ ...defaults.headers, ...route.headers })) {
    headers[key.toLowerCase()] = value;
  }

  return makeRoute({
    name,
    url: route.url,
    isBaseUrl: route.isBaseUrl ?? defaults.isBaseUrl ?? false,
    models,
    enabled,
    api,
    maxTokens: route.maxTokens ?? DEFAULT_MAX_TOKENS,
    ...(route.maxTokens !== undefined ? { maxTokensCap: route.maxTokens } : {}),
    authHeader: route.authHeader ?? defaults.authHeader ?? (api === "anthropic" ? "x-api-key" : "authorization"),
    authPrefix: route.authPrefix ?? defaults.authPrefix ?? (api === "anthropic" ? "" : "Bearer "),
    apiKey,
    headers,
    fallbacks: route.fallbacks ?? [],
    prefill: route.prefill ?? false,
    timeouts: { ...timeouts, ...definedOnly(route.timeouts ?? {}) },
  });
}

export const DEFAULT_ANTHROPIC_VERSION = "2023-06-01";
export const DEFAULT_MAX_TOKENS = 8192;

export function makeRoute(input: Omit<Route, "origin" | "basePath" | "baseQuery" | "api" | "maxTokens"> & Partial<Pick<Route, "api" | "maxTokens">>): Route {
  const url = new URL(input.url);
  return {
    api: "openai",
    maxTokens: DEFAULT_MAX_TOKENS,
    ...input,
    origin: url.origin,
    basePath: url.pathname.replace(/\/+$/, ""),
    baseQuery: url.search.slice(1),
  };
}

function unknownKeyWarnings(
  input: Record<string, unknown>,
  file: string,
  locate: (path: readonly PropertyKey[]) => string,
): string[] {
  const warnings: string[] = [];
  const check = (value: unknown, known: object, where: string, at: PropertyKey[]) => {
    if (!value || typeof value !== "object" || Array.isArray(value)) return;
    for (const key of Object.keys(value)) {
      if (!(key in known)) warnings.push(`${file}: ${where}unknown key "${key}" is ignored${locate([...at, key])}`);
    }
  };
  check(input, routesFileShape, "", []);
  for (const key of ["defaults", "global", "auth"]) check(input[key], routeDefaultsShape, `${key}: `, [key]);
  check(input.notice, noticeShape, "notice: ", ["notice"]);
  check(input.retry, retryShape, "retry: ", ["retry"]);
  check(input.timeouts, timeoutsShape, "timeouts: ", ["timeouts"]);
  check(input.breaker, breakerShape, "breaker: ", ["breaker"]);
  check(input.auto, autoShape, "auto: ", ["auto"]);
  if (input.groups && typeof input.groups === "object") {
    for (const [name, group] of Object.entries(input.groups)) check(group, groupShape, `groups.${name}: `, ["groups", name]);
  }
  if (Array.isArray(input.routes)) {
    input.routes.forEach((route, index) => {
      check(route, routeShape, `${routeLabel(route, index)}: `, ["routes", index]);
      check((route as { timeouts?: unknown } | null)?.timeouts, attemptTimeoutsShape, `${routeLabel(route, index)} timeouts: `, ["routes", index, "timeouts"]);
    });
  }
  return warnings;
}

function routeLabel(route: unknown, index: number): string {
  const name = route && typeof route === "object" ? (route as { name?: unknown }).name : undefined;
  return typeof name === "string" && name.trim() ? `route "${name.trim()}" (routes[${index}])` : `route routes[${index}]`;
}

function formatIssue(file: string, issue: z.core.$ZodIssue, input: unknown, locate: (path: readonly PropertyKey[]) => string): string {
  const issuePath = issue.path;
  let where = "";
  let fieldPath = issuePath;
  if (issuePath[0] === "routes" && typeof issuePath[1] === "number") {
    const routes = (input as { routes?: unknown[] }).routes;
    where = `${routeLabel(routes?.[issuePath[1]], issuePath[1])} `;
    fieldPath = issuePath.slice(2);
  }
  const field = fieldPath.length > 0 ? `field "${fieldPath.map(String).join(".")}"` : "";
  const subject = `${where}${field}`.trim() || "top level";
  return `${file}: ${subject}: ${issue.message}${locate(issuePath)}`;
}

/** " (line N)" for the YAML node at `docPath`, or its nearest existing parent. */
function lineOf(doc: Document, lineCounter: LineCounter, docPath: readonly PropertyKey[]): string {
  for (let length = docPath.length; length >= 0; length--) {
    const node = doc.getIn(docPath.slice(0, length) as unknown[], true) as { range?: [number, number, number] } | undefined;
    if (node && typeof node === "object" && node.range) {
      return ` (line ${lineCounter.linePos(node.range[0]).line})`;
    }
  }
  return "";
}
