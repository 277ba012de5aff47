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
  private readonly records = new Map<string, { route: string; model: string; health: ModelHealth }>();

  constructor(private readonly policy: HealthPolicy = DEFAULT_HEALTH_POLICY) {}

  nextCursor(key: string, size: number): number {
    if (size <= 0) return 0;
    const current = (this.cursors.get(key) ?? 0) % size;
    this.cursors.set(key, (current + 1) % size);
    return current;
  }

  health(route: string, model: string): ModelHealth {
    const key = `${route}\u0000${model}`;
    let record = this.records.get(key);
    if (!record) {
      record = { route, model, health: new ModelHealth(this.policy) };
      this.records.set(key, record);
    }
    return record.health;
  }

  *healthEntries(): Iterable<readonly [string, string, ModelHealth]> {
    for (const record of this.records.values()) yield [record.route, record.model, record.health];
  }
}
