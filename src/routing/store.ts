/**
 * Shared routing state behind an interface, so several gateway instances can
 * agree on it later (Redis) while one instance keeps it in memory.
 */
export interface RoutingStore {
  /** Returns the current round-robin position for `key` and advances it, modulo `size`. */
  nextCursor(key: string, size: number): number;
}

export class MemoryStore implements RoutingStore {
  private readonly cursors = new Map<string, number>();

  nextCursor(key: string, size: number): number {
    if (size <= 0) return 0;
    const current = (this.cursors.get(key) ?? 0) % size;
    this.cursors.set(key, (current + 1) % size);
    return current;
  }
}
