/**
 * The failover policy as data: which failures are the request's fault (pass
 * through), which mean "this model cannot serve it, try another" (fail over),
 * and which are transient (retry the same model after a backoff, then fail
 * over). Rules are checked in order; the first match decides.
 */

export type Action = "final" | "failover" | "retry";

export interface FailureFacts {
  /** HTTP status, or null for a network error or timeout. */
  readonly status: number | null;
  /** Error codes/types found in the body (`error.code`, `error.type`, `code`, `type`), lower-cased. */
  readonly codes: readonly string[];
  /** The error message from the body, if any. */
  readonly message: string;
  /** network: connection refused/reset/DNS; timeout: no headers in time; status: an HTTP answer. */
  readonly kind: "status" | "network" | "reset" | "timeout";
  /** Whether the route sent its own key (so a 401/403 is about that key, not the client's). */
  readonly keyedRoute: boolean;
  /** Whether the status is in the configured retry set (retryStatusCodes). */
  readonly inRetrySet: boolean;
  /** A timeout spent waiting for a connection of the gateway's own pool: the upstream never saw the request. */
  readonly poolWait?: boolean;
}

export interface Rule {
  readonly name: string;
  readonly action: Action;
  /** Statuses the rule applies to; omitted: any. */
  readonly statuses?: readonly number[];
  /** Match when one of these codes is in the body (lower-case, exact). */
  readonly codes?: readonly string[];
  /** Match when the message contains one of these (case-insensitive). */
  readonly messages?: readonly string[];
  readonly kinds?: readonly FailureFacts["kind"][];
  readonly keyedRoute?: boolean;
  readonly inRetrySet?: boolean;
}

export const CONTEXT_LENGTH_CODES = [
  "context_length_exceeded",
  "string_above_max_length",
  "prompt_too_long",
  "max_tokens_exceeded",
  "context_window_exceeded",
  "input_too_long",
];

export const CONTENT_POLICY_CODES = ["content_policy_violation", "content_filter", "content_filtered", "safety_violation", "moderation_blocked"];

export const DEFAULT_RULES: readonly Rule[] = [
  { name: "content-policy", action: "final", codes: CONTENT_POLICY_CODES },
  {
    name: "context-length",
    action: "failover",
    statuses: [400, 413, 422],
    codes: CONTEXT_LENGTH_CODES,
    messages: ["maximum context length", "context length", "prompt is too long", "too many tokens", "context window"],
  },
  { name: "timeout", action: "failover", kinds: ["timeout"] },
  { name: "connection-reset", action: "retry", kinds: ["reset"] },
  { name: "unreachable", action: "failover", kinds: ["network"] },
  { name: "route-key-rejected", action: "failover", statuses: [401, 403], keyedRoute: true },
  { name: "rate-limited", action: "retry", statuses: [429], inRetrySet: true },
  // Anthropic's "overloaded" status: transient, like a 503.
  { name: "overloaded", action: "retry", statuses: [529] },
  { name: "server-error", action: "retry", statuses: [500, 502, 503, 504], inRetrySet: true },
  { name: "retry-status", action: "failover", inRetrySet: true },
];

/** The first rule matching `facts`; no match means the answer is passed through. */
export function matchRule(facts: FailureFacts, rules: readonly Rule[] = DEFAULT_RULES): Rule | undefined {
  for (const rule of rules) {
    if (rule.kinds && !rule.kinds.includes(facts.kind)) continue;
    if (rule.statuses && (facts.status === null || !rule.statuses.includes(facts.status))) continue;
    if (rule.keyedRoute !== undefined && rule.keyedRoute !== facts.keyedRoute) continue;
    if (rule.inRetrySet !== undefined && (facts.status === null || rule.inRetrySet !== facts.inRetrySet)) continue;
    if (rule.codes || rule.messages) {
      const byCode = rule.codes?.some((code) => facts.codes.includes(code)) ?? false;
      const message = facts.message.toLowerCase();
      const byMessage = rule.messages?.some((text) => message.includes(text)) ?? false;
      if (!byCode && !byMessage) continue;
    }
    return rule;
  }
  return undefined;
}

/** Error codes and the message of an upstream error body (OpenAI, Anthropic and common provider shapes). */
export function errorFacts(payload: unknown): { codes: string[]; message: string } {
  const codes: string[] = [];
  let message = "";
  const visit = (value: unknown) => {
    if (!value || typeof value !== "object" || Array.isArray(value)) return;
    const record = value as Record<string, unknown>;
    for (const key of ["code", "type", "status", "errorCode"]) {
      const field = record[key];
      if (typeof field === "string" && field) codes.push(field.toLowerCase());
      else if (typeof field === "number") codes.push(String(field));
    }
    if (!message && typeof record.message === "string") message = record.message;
  };
  if (payload && typeof payload === "object" && !Array.isArray(payload)) {
    const record = payload as Record<string, unknown>;
    visit(record.error);
    if (Array.isArray(record.errors)) record.errors.forEach(visit);
    visit(record);
  }
  return { codes, message };
}

/**
 * Milliseconds an upstream asked us to wait: `retry-after-ms`, else
 * `retry-after` as seconds or an HTTP date. Undefined when absent or unusable.
 */
export function retryAfterMs(headers: Record<string, string | string[] | undefined>, now: number = Date.now()): number | undefined {
  const first = (value: string | string[] | undefined) => (Array.isArray(value) ? value[0] : value);
  const ms = first(headers["retry-after-ms"]);
  if (ms !== undefined && /^\s*\d+(\.\d+)?\s*$/.test(ms)) return Math.ceil(Number(ms));
  const after = first(headers["retry-after"])?.trim();
  if (!after) return undefined;
  if (/^\d+(\.\d+)?$/.test(after)) return Math.ceil(Number(after) * 1000);
  // Only a real HTTP date (RFC 9110 IMF-fixdate, RFC 850, asctime): Date.parse accepts junk like "x 1".
  if (!HTTP_DATE.test(after)) return undefined;
  const date = Date.parse(after);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

const HTTP_DATE =
  /^(?:[A-Za-z]{3}, \d{2} [A-Za-z]{3} \d{4} \d{2}:\d{2}:\d{2} GMT|[A-Za-z]{6,9}, \d{2}-[A-Za-z]{3}-\d{2} \d{2}:\d{2}:\d{2} GMT|[A-Za-z]{3} [A-Za-z]{3} [ \d]\d \d{2}:\d{2}:\d{2} \d{4})$/;

export interface RetryPolicy {
  /** Retries of the same model on a transient failure (so attempts per model = retries + 1). */
  readonly retries: number;
  readonly backoffBaseMs: number;
  readonly backoffMaxMs: number;
  /** A 429's Retry-After at or under this is waited for (pinned models); a longer one fails over. */
  readonly retryAfterCapMs: number;
  /** At most 2 attempts on one model inside this window. */
  readonly minSpacingMs: number;
}

export const DEFAULT_RETRY_POLICY: RetryPolicy = {
  retries: 1,
  backoffBaseMs: 250,
  backoffMaxMs: 2_000,
  retryAfterCapMs: 5_000,
  minSpacingMs: 1_500,
};

/** Exponential backoff with jitter for retry number `n` (1-based): between half and all of base·2^(n-1), capped. */
export function backoffMs(policy: RetryPolicy, n: number, random: () => number = Math.random): number {
  const ceiling = Math.min(policy.backoffMaxMs, policy.backoffBaseMs * 2 ** (n - 1));
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}

export type Decision =
  | { readonly next: "deliver" }
  | { readonly next: "failover"; readonly cooldown: boolean }
  | { readonly next: "retry"; readonly delayMs: number };

export interface DecisionContext {
  readonly rule: Rule | undefined;
  readonly status: number | null;
  readonly retryAfterMs: number | undefined;
  /** auto and groups: candidates are interchangeable, so a rate-limited one is skipped at once. */
  readonly interchangeable: boolean;
  /** Whether a candidate after this one can be tried now. */
  readonly healthyAlternative: boolean;
  /** Start times of the attempts already made on this model in this request. */
  readonly attemptTimes: readonly number[];
  readonly now: number;
  /** Milliseconds left before the request's deadline. */
  readonly remainingMs: number;
  readonly policy: RetryPolicy;
  readonly random?: () => number;
}

/** After a failed attempt: deliver it, retry the same model after a delay, or move to the next candidate. */
export function decide(context: DecisionContext): Decision {
  const { rule, policy } = context;
  if (!rule || rule.action === "final") return { next: "deliver" };
  const rateLimited = context.status === 429;
  if (rule.action === "failover") return { next: "failover", cooldown: rateLimited };

  // Transient: retry the same model within its budget, unless a healthy peer can take it now.
  if (rateLimited && context.interchangeable && context.healthyAlternative) return { next: "failover", cooldown: true };
  const retriesDone = context.attemptTimes.length - 1;
  if (retriesDone >= policy.retries) return { next: "failover", cooldown: rateLimited };
  if (context.retryAfterMs !== undefined && context.retryAfterMs > policy.retryAfterCapMs) return { next: "failover", cooldown: rateLimited };

  let delay = backoffMs(policy, retriesDone + 1, context.random);
  if (context.retryAfterMs !== undefined) delay = Math.max(delay, context.retryAfterMs);
  const secondLast = context.attemptTimes[context.attemptTimes.length - 2];
  if (secondLast !== undefined) delay = Math.max(delay, secondLast + policy.minSpacingMs - context.now);
  if (delay >= context.remainingMs) return { next: "failover", cooldown: rateLimited };
  return { next: "retry", delayMs: delay };
}
