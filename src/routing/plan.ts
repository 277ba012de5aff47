import { AUTO_MODEL } from "../config/load.js";
import type { GatewayConfig, Route } from "../config/types.js";
import type { RoutingStore } from "./store.js";

export interface Candidate {
  /** The model name sent upstream (null: the request had no model and is passed through). */
  readonly model: string | null;
  readonly route: Route;
}

export type PlanMode = "auto" | "pinned" | "passthrough";

export type Plan =
  | { readonly ok: true; readonly mode: PlanMode; readonly candidates: readonly Candidate[] }
  | { readonly ok: false; readonly status: number; readonly code: string; readonly message: string };

export function routeFor(config: GatewayConfig, model: string): Route | undefined {
  return config.modelRoutes.get(model) ?? config.wildcard;
}

export function rotate<T>(items: readonly T[], start: number): T[] {
  if (items.length <= 1 || start % items.length === 0) return [...items];
  const at = start % items.length;
  return [...items.slice(at), ...items.slice(0, at)];
}

/**
 * The ordered candidates for one request.
 * - `auto`: every enabled route model, rotated round-robin per request.
 * - a pinned model: that model, then its fallbacks (MODEL_FALLBACK_MAP, else
 *   GLOBAL_FALLBACK_MODELS) when configured; never another model otherwise.
 * - no model: the catch-all route, if there is one.
 * No model appears twice; models without a route are skipped.
 */
export function planCandidates(config: GatewayConfig, store: RoutingStore, requested: string | null): Plan {
  if (requested === null) {
    if (config.wildcard) return { ok: true, mode: "passthrough", candidates: [{ model: null, route: config.wildcard }] };
    return {
      ok: false,
      status: 400,
      code: "model_required",
      message: 'This request has no "model" and no catch-all route (`model: "*"` or UPSTREAM_BASE_URL) is configured.',
    };
  }

  if (requested.toLowerCase() === AUTO_MODEL) {
    const models = config.autoModels;
    if (models.length === 0) {
      return { ok: false, status: 400, code: "no_candidates", message: 'No enabled route models are configured for "auto".' };
    }
    const start = store.nextCursor(AUTO_MODEL, models.length);
    return { ok: true, mode: "auto", candidates: rotate(models, start).map((model) => ({ model, route: config.modelRoutes.get(model) as Route })) };
  }

  if (!routeFor(config, requested)) {
    const known = [...config.autoModels, AUTO_MODEL].map((m) => `"${m}"`).join(", ");
    return { ok: false, status: 404, code: "model_not_found", message: `The model "${requested}" has no enabled route. Configured models: ${known}.` };
  }
  const chain = [requested, ...(config.modelFallbackMap[requested] ?? config.globalFallbackModels)];
  const seen = new Set<string>();
  const candidates: Candidate[] = [];
  for (const model of chain) {
    if (seen.has(model) || model.toLowerCase() === AUTO_MODEL) continue;
    seen.add(model);
    const route = routeFor(config, model);
    if (route) candidates.push({ model, route });
  }
  return { ok: true, mode: "pinned", candidates };
}
