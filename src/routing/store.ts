import { DEFAULT_HEALTH_POLICY, ModelHealth, type HealthPolicy } from "./health.js";

/**
 * Shared routing state behind an interface, so several gateway instances can
 * agree on it later (Redis) while one instance keeps it in memory.
 */
export interface RoutingStore {
  /** Returns the current round-robin position for `key` and advances it, modulo `size`. */
  nextCursor(key: string, size: number): number;
  /** The health of `model` on `route` (created healthy on first use). */
  health(route: string, model: string): ModelHealth;
  /** Every health record so far, for /health. */
  healthEntries(): Iterable<readonly [route: string, model: string, health: ModelHealth]>;
}

export class MemoryStore implements RoutingStore {
  private readonly cursors = new Map<string, number>();
  /** route → model → health: two lookups, no key string built per request. */
  private readonly records = new Map<string, Map<string, ModelHealth>>();

  constructor(private readonly policy: HealthPolicy = DEFAULT_HEALTH_POLICY) {}

  nextCursor(key: string, size: number): number {
    if (size <= 0) return 0;
    const current = (this.cursors.get(key) ?? 0) % size;
    this.cursors.set(key, (current + 1) % size);
    return current;
  }

  health(route: string, model: string): ModelHealth {
    let models = this.records.get(route);
    if (!models) {
      models = new Map();
      this.records.set(route, models);
    }
    let health = models.get(model);
    if (!health) {
      health = new ModelHealth(this.policy);
      models.set(model, health);
    }
    return health;
  }

  *healthEntries(): Iterable<readonly [string, string, ModelHealth]> {
    for (const [route, models] of this.records) for (const [model, health] of models) yield [route, model, health];
  }
}
