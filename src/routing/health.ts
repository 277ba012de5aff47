/**
 * Health of one model on one route: a sliding window of outcomes and
 * latencies, a circuit breaker (closed → open → half-open → closed), and a
 * cooldown set by the upstream itself (429 with Retry-After). Pure state with
 * an injected clock: the caller passes `now` to every method.
 */

export type BreakerState = "closed" | "open" | "half_open";

export interface HealthPolicy {
  /** Outcomes kept in the sliding window. */
  readonly windowSize: number;
  /** Outcomes older than this no longer count. */
  readonly windowMs: number;
  /** The breaker opens on this many consecutive failures… */
  readonly consecutiveFailures: number;
  /** …or when at least `minRequests` outcomes in the window fail at `failureRate` or more. */
  readonly minRequests: number;
  readonly failureRate: number;
  /** Open-breaker cooldown: doubled on each trip that follows a failed probe, up to the max. */
  readonly baseCooldownMs: number;
  readonly maxCooldownMs: number;
  /** Cooldown after a 429 that did not say how long to wait. */
  readonly rateLimitCooldownMs: number;
  /** A half-open probe that has not reported within this time is presumed lost; another may go. */
  readonly probeTimeoutMs: number;
}

export const DEFAULT_HEALTH_POLICY: HealthPolicy = {
  windowSize: 20,
  windowMs: 60_000,
  consecutiveFailures: 3,
  minRequests: 5,
  failureRate: 0.5,
  baseCooldownMs: 5_000,
  maxCooldownMs: 30_000,
  rateLimitCooldownMs: 5_000,
  probeTimeoutMs: 60_000,
};

export interface HealthView {
  readonly state: BreakerState;
  /** Until when the model is out of rotation (breaker or rate-limit cooldown), 0 when it is not. */
  readonly blockedUntil: number;
  readonly cooldownRemainingMs: number;
  /** Share of successes in the window, null with no outcomes. */
  readonly successRate: number | null;
  readonly p50LatencyMs: number | null;
  readonly requests: number;
  readonly consecutiveFailures: number;
  readonly trips: number;
}

/** What a plan may do with a model now. */
export type Admission = "ok" | "probe" | "blocked";

/**
 * The last `size` outcomes within `windowMs`, as a ring in time order, with
 * the counts and the sorted latencies of its successes kept up to date on
 * every change: recording an outcome, expiring one and reading the window's
 * figures cost O(1) (a sorted insert or removal is a binary search and one
 * `copyWithin` of at most `size` numbers), never a pass over the window, and
 * nothing is allocated per request. Time only moves forward here: an outcome
 * that has expired at one `now` stays expired, so a `now` earlier than one
 * already seen counts what is left.
 */
class OutcomeWindow {
  private readonly at: Float64Array;
  private readonly latency: Float64Array;
  private readonly ok: Uint8Array;
  /** The latencies of the successes in the window, ascending. */
  private readonly sortedOk: Float64Array;
  private head = 0;
  private count = 0;
  private okCount = 0;

  constructor(
    private readonly size: number,
    private readonly windowMs: number,
  ) {
    this.at = new Float64Array(size);
    this.latency = new Float64Array(size);
    this.ok = new Uint8Array(size);
    this.sortedOk = new Float64Array(size);
  }

  push(now: number, ok: boolean, latencyMs: number): void {
    // A NaN would sort nowhere, and its removal would take out another success's latency.
    const value = Number.isFinite(latencyMs) ? latencyMs : 0;
    this.expire(now);
    if (this.count === this.size) this.dropOldest();
    const slot = (this.head + this.count) % this.size;
    // A clock that stepped back would put this outcome before older ones: it is stamped no earlier than the last.
    const last = this.count > 0 ? (this.at[(slot + this.size - 1) % this.size] as number) : now;
    this.at[slot] = Math.max(now, last);
    this.latency[slot] = value;
    this.ok[slot] = ok ? 1 : 0;
    this.count++;
    if (ok) this.insertOk(value);
  }

  clear(): void {
    this.head = 0;
    this.count = 0;
    this.okCount = 0;
  }

  requests(now: number): number {
    this.expire(now);
    return this.count;
  }

  failures(now: number): number {
    this.expire(now);
    return this.count - this.okCount;
  }

  successRate(now: number): number | null {
    this.expire(now);
    return this.count ? this.okCount / this.count : null;
  }

  p50LatencyMs(now: number): number | null {
    this.expire(now);
    return this.okCount ? (this.sortedOk[(this.okCount - 1) >> 1] as number) : null;
  }

  private expire(now: number): void {
    while (this.count > 0 && now - (this.at[this.head] as number) > this.windowMs) this.dropOldest();
  }

  private dropOldest(): void {
    const slot = this.head;
    this.head = (this.head + 1) % this.size;
    this.count--;
    if (this.ok[slot] === 1) this.removeOk(this.latency[slot] as number);
  }

  private insertOk(latencyMs: number): void {
    const at = this.lowerBound(latencyMs);
    this.sortedOk.copyWithin(at + 1, at, this.okCount);
    this.sortedOk[at] = latencyMs;
    this.okCount++;
  }

  private removeOk(latencyMs: number): void {
    const at = this.lowerBound(latencyMs);
    this.sortedOk.copyWithin(at, at + 1, this.okCount);
    this.okCount--;
  }

  /** The first index whose latency is not below `latencyMs`. */
  private lowerBound(latencyMs: number): number {
    let low = 0;
    let high = this.okCount;
    while (low < high) {
      const mid = (low + high) >> 1;
      if ((this.sortedOk[mid] as number) < latencyMs) low = mid + 1;
      else high = mid;
    }
    return low;
  }
}

export class ModelHealth {
  private readonly window: OutcomeWindow;
  private consecutive = 0;
  private state: BreakerState = "closed";
  private openUntil = 0;
  private rateLimitedUntil = 0;
  private trips = 0;
  private probeSince = -1;

  constructor(private readonly policy: HealthPolicy = DEFAULT_HEALTH_POLICY) {
    this.window = new OutcomeWindow(policy.windowSize, policy.windowMs);
  }

  /** Whether a request may go to this model now, without changing state. */
  admission(now: number): Admission {
    if (now < this.rateLimitedUntil) return "blocked";
    if (this.state === "closed") return "ok";
    if (this.state === "open") return now >= this.openUntil ? "probe" : "blocked";
    // half-open: one probe at a time
    return this.probeSince >= 0 && now - this.probeSince < this.policy.probeTimeoutMs ? "blocked" : "probe";
  }

  /** Marks a request as sent; a request to an open breaker past its cooldown becomes the half-open probe. */
  begin(now: number): void {
    if (this.state === "open" && now >= this.openUntil) this.state = "half_open";
    if (this.state === "half_open") this.probeSince = now;
  }

  /** An attempt that ended without an outcome (the client left): free the probe slot it may hold. */
  abandon(): void {
    if (this.state === "half_open") this.probeSince = -1;
  }

  recordSuccess(now: number, latencyMs: number): void {
    this.window.push(now, true, latencyMs);
    this.consecutive = 0;
    if (this.state !== "closed") {
      this.state = "closed";
      this.trips = 0;
      this.probeSince = -1;
      // The window that tripped the breaker is history now.
      this.window.clear();
      this.window.push(now, true, latencyMs);
    }
    this.rateLimitedUntil = 0;
  }

  /**
   * A failed attempt. `retryAfterMs` (from a 429 or 503) puts the model in
   * cooldown for that long; `rateLimited` without it uses the default.
   */
  recordFailure(now: number, options: { latencyMs?: number; rateLimited?: boolean; retryAfterMs?: number | undefined } = {}): void {
    this.window.push(now, false, options.latencyMs ?? 0);
    this.consecutive++;
    if (options.retryAfterMs !== undefined || options.rateLimited) {
      const wait = options.retryAfterMs ?? this.policy.rateLimitCooldownMs;
      this.rateLimitedUntil = Math.max(this.rateLimitedUntil, now + wait);
    }
    if (this.state === "half_open") {
      this.trip(now);
      return;
    }
    if (this.state === "closed" && this.shouldTrip(now)) this.trip(now);
  }

  view(now: number): HealthView {
    const blockedUntil = Math.max(this.rateLimitedUntil, this.state === "open" ? this.openUntil : 0);
    return {
      state: this.state === "open" && now >= this.openUntil ? "half_open" : this.state,
      blockedUntil: blockedUntil > now ? blockedUntil : 0,
      cooldownRemainingMs: Math.max(0, blockedUntil - now),
      successRate: this.window.successRate(now),
      p50LatencyMs: this.window.p50LatencyMs(now),
      requests: this.window.requests(now),
      consecutiveFailures: this.consecutive,
      trips: this.trips,
    };
  }

  private shouldTrip(now: number): boolean {
    if (this.consecutive >= this.policy.consecutiveFailures) return true;
    const requests = this.window.requests(now);
    if (requests < this.policy.minRequests) return false;
    return this.window.failures(now) / requests >= this.policy.failureRate;
  }

  private trip(now: number): void {
    this.trips++;
    const cooldown = Math.min(this.policy.maxCooldownMs, this.policy.baseCooldownMs * 2 ** (this.trips - 1));
    this.state = "open";
    this.openUntil = now + cooldown;
    this.probeSince = -1;
  }
}
