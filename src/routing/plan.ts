import { AUTO_MODEL, WILDCARD_MODEL } from "../config/names.js";
import type { GatewayConfig, Route, Strategy } from "../config/types.js";
import type { Admission, ModelHealth } from "./health.js";
import type { RoutingStore } from "./store.js";

export interface Candidate {
  /** The model name sent upstream (null: the request had no model and is passed through). */
  readonly model: string | null;
  readonly route: Route;
}

export type PlanMode = "auto" | "group" | "pinned" | "passthrough";

export type Plan =
  | {
      readonly ok: true;
      readonly mode: PlanMode;
      /** auto and groups: any candidate serves as well as another, so a rate-limited one is skipped at once. */
      readonly interchangeable: boolean;
      readonly candidates: readonly Candidate[];
    }
  | { readonly ok: false; readonly status: number; readonly code: string; readonly message: string };

export function routeFor(config: GatewayConfig, model: string): Route | undefined {
  return config.modelRoutes.get(model) ?? config.wildcard;
}

export function healthOf(store: RoutingStore, candidate: Candidate): ModelHealth {
  return store.health(candidate.route.name, candidate.model ?? WILDCARD_MODEL);
}

export function rotate<T>(items: readonly T[], start: number): T[] {
  if (items.length <= 1 || start % items.length === 0) return [...items];
  const at = start % items.length;
  return [...items.slice(at), ...items.slice(0, at)];
}

/**
 * The ordered candidates for one request.
 * - `auto` and groups: their models, ordered by the strategy (round-robin per
 *   request, fixed order, or by health), interchangeable.
 * - a pinned model: that model, then its fallback chain when one is configured
 *   (routes.yml `fallbacks`, the route's `fallbacks`, MODEL_FALLBACK_MAP,
 *   GLOBAL_FALLBACK_MODELS, in that order of precedence) or sent in the body
 *   as `models`; never another model otherwise.
 * - no model: the catch-all route, if there is one.
 * No model appears twice. Models whose breaker is open or that are cooling
 * down are left out; when that leaves none, the one that recovers first stays.
 */
export function planCandidates(
  config: GatewayConfig,
  store: RoutingStore,
  requested: string | null,
  requestModels: readonly string[] | undefined,
  now: number,
): Plan {
  const expand = (names: readonly string[]) => names.flatMap((name) => config.groups.get(name)?.models ?? [name]);
  if (requestModels?.length === 0) requestModels = undefined;

  if (requestModels && requestModels.length > 0 && (requested === null || requested.toLowerCase() === AUTO_MODEL || config.groups.has(requested))) {
    // The body's own list replaces auto/group selection: it is the client's chain.
    return pinned(config, store, expand(requestModels), now, requestModels[0] as string);
  }

  if (requested === null) {
    if (config.wildcard) return { ok: true, mode: "passthrough", interchangeable: false, candidates: [{ model: null, route: config.wildcard }] };
    return {
      ok: false,
      status: 400,
      code: "model_required",
      message: 'This request has no "model" and no catch-all route (`model: "*"` or UPSTREAM_BASE_URL) is configured.',
    };
  }

  const group = requested.toLowerCase() === AUTO_MODEL ? { models: config.autoModels, strategy: config.autoStrategy } : config.groups.get(requested);
  if (group) {
    if (group.models.length === 0) {
      return { ok: false, status: 404, code: "no_candidates", message: `No enabled route serves any model of "${requested}".` };
    }
    const ordered = order(group.models, group.strategy, store, requested.toLowerCase() === AUTO_MODEL ? AUTO_MODEL : requested, now, config);
    const candidates = withHealth(ordered.map((model) => ({ model, route: config.modelRoutes.get(model) as Route })), store, now, true);
    return { ok: true, mode: requested.toLowerCase() === AUTO_MODEL ? "auto" : "group", interchangeable: true, candidates };
  }

  if (!routeFor(config, requested)) {
    const known = [...config.autoModels, AUTO_MODEL, ...config.groups.keys()].map((m) => `"${m}"`).join(", ");
    return { ok: false, status: 404, code: "model_not_found", message: `The model "${requested}" has no enabled route. Configured models: ${known}.` };
  }
  const route = routeFor(config, requested) as Route;
  const chain =
    requestModels ??
    config.fallbacks.get(requested) ??
    (route.fallbacks.length > 0 ? route.fallbacks : undefined) ??
    config.modelFallbackMap[requested] ??
    config.globalFallbackModels;
  // The common case, a pinned model with no chain: one candidate, nothing to filter or order.
  if (chain.length === 0) return { ok: true, mode: "pinned", interchangeable: false, candidates: [{ model: requested, route }] };
  return pinned(config, store, [requested, ...expand(chain)], now, requested);
}

function pinned(config: GatewayConfig, store: RoutingStore, chain: readonly string[], now: number, first: string): Plan {
  const seen = new Set<string>();
  const candidates: Candidate[] = [];
  for (const model of chain) {
    if (seen.has(model) || model.toLowerCase() === AUTO_MODEL) continue;
    seen.add(model);
    const route = routeFor(config, model);
    if (route) candidates.push({ model, route });
  }
  if (candidates.length === 0) {
    return { ok: false, status: 404, code: "model_not_found", message: `No model of the request ("${first}", ...) has an enabled route.` };
  }
  return { ok: true, mode: "pinned", interchangeable: false, candidates: withHealth(candidates, store, now, false) };
}

function order(models: readonly string[], strategy: Strategy, store: RoutingStore, key: string, now: number, config: GatewayConfig): string[] {
  if (strategy === "ordered") return [...models];
  const rotated = rotate(models, store.nextCursor(key, models.length));
  if (strategy === "round-robin") return rotated;
  // health: best recent success rate first (in steps of 10%, so noise does not reorder), then lower p50 latency.
  const score = (model: string) => {
    const view = store.health((config.modelRoutes.get(model) as Route).name, model).view(now);
    return { rate: Math.round((view.successRate ?? 1) * 10), latency: view.p50LatencyMs ?? Number.POSITIVE_INFINITY };
  };
  const scores = new Map(rotated.map((model) => [model, score(model)]));
  return rotated
    .map((model, index) => ({ model, index, ...(scores.get(model) as { rate: number; latency: number }) }))
    .sort((a, b) => b.rate - a.rate || (a.latency === b.latency ? 0 : a.latency < b.latency ? -1 : 1) || a.index - b.index)
    .map((entry) => entry.model);
}

/**
 * Leaves out candidates that are cooling down or whose breaker is open. With
 * interchangeable candidates, one whose breaker is ready for its half-open
 * probe goes first, so a recovered model is back in rotation at once.
 */
function withHealth(candidates: readonly Candidate[], store: RoutingStore, now: number, interchangeable: boolean): Candidate[] {
  const admissions = candidates.map((candidate) => ({ candidate, admission: healthOf(store, candidate).admission(now) as Admission }));
  const open = admissions.filter((entry) => entry.admission !== "blocked");
  if (open.length === 0) {
    const soonest = candidates.reduce((best, candidate) =>
      healthOf(store, candidate).view(now).blockedUntil < healthOf(store, best).view(now).blockedUntil ? candidate : best,
    );
    return [soonest];
  }
  if (!interchangeable) return open.map((entry) => entry.candidate);
  return [...open.filter((entry) => entry.admission === "probe"), ...open.filter((entry) => entry.admission === "ok")].map((entry) => entry.candidate);
}
