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

interface Outcome {
  at: number;
  ok: boolean;
  latencyMs: number;
}

export class ModelHealth {
  private readonly outcomes: Outcome[] = [];
  private next = 0;
  private consecutive = 0;
  private state: BreakerState = "closed";
  private openUntil = 0;
  private rateLimitedUntil = 0;
  private trips = 0;
  private probeSince = -1;

  constructor(private readonly policy: HealthPolicy = DEFAULT_HEALTH_POLICY) {}

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
    this.push({ at: now, ok: true, latencyMs });
    this.consecutive = 0;
    if (this.state !== "closed") {
      this.state = "closed";
      this.trips = 0;
      this.probeSince = -1;
      // The window that tripped the breaker is history now.
      this.outcomes.length = 0;
      this.next = 0;
      this.push({ at: now, ok: true, latencyMs });
    }
    this.rateLimitedUntil = 0;
  }

  /**
   * A failed attempt. `retryAfterMs` (from a 429 or 503) puts the model in
   * cooldown for that long; `rateLimited` without it uses the default.
   */
  recordFailure(now: number, options: { latencyMs?: number; rateLimited?: boolean; retryAfterMs?: number | undefined } = {}): void {
    this.push({ at: now, ok: false, latencyMs: options.latencyMs ?? 0 });
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
    const recent = this.recent(now);
    const oks = recent.filter((o) => o.ok);
    const latencies = oks.map((o) => o.latencyMs).sort((a, b) => a - b);
    const blockedUntil = Math.max(this.rateLimitedUntil, this.state === "open" ? this.openUntil : 0);
    return {
      state: this.state === "open" && now >= this.openUntil ? "half_open" : this.state,
      blockedUntil: blockedUntil > now ? blockedUntil : 0,
      cooldownRemainingMs: Math.max(0, blockedUntil - now),
      successRate: recent.length ? oks.length / recent.length : null,
      p50LatencyMs: latencies.length ? (latencies[Math.floor((latencies.length - 1) / 2)] as number) : null,
      requests: recent.length,
      consecutiveFailures: this.consecutive,
      trips: this.trips,
    };
  }

  private shouldTrip(now: number): boolean {
    if (this.consecutive >= this.policy.consecutiveFailures) return true;
    const recent = this.recent(now);
    if (recent.length < this.policy.minRequests) return false;
    const failures = recent.reduce((n, o) => n + (o.ok ? 0 : 1), 0);
    return failures / recent.length >= this.policy.failureRate;
  }

  private trip(now: number): void {
    this.trips++;
    const cooldown = Math.min(this.policy.maxCooldownMs, this.policy.baseCooldownMs * 2 ** (this.trips - 1));
    this.state = "open";
    this.openUntil = now + cooldown;
    this.probeSince = -1;
  }

  private push(outcome: Outcome): void {
    if (this.outcomes.length < this.policy.windowSize) this.outcomes.push(outcome);
    else this.outcomes[this.next] = outcome;
    this.next = (this.next + 1) % this.policy.windowSize;
  }

  private recent(now: number): Outcome[] {
    return this.outcomes.filter((o) => now - o.at <= this.policy.windowMs);
  }
}
