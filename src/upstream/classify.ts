/**
 * Facts about an upstream outcome the failover policy decides on. Pure
 * functions over data: the attempt asks, these answer.
 */

/** Why a candidate was left behind; `cooldown`: it was not tried at all (cooling down or breaker open). */
export type FailureReason = "status" | "body_status" | "network_error" | "timeout" | "cooldown";

function statusLike(value: unknown): number | null {
  if (typeof value === "number" && Number.isInteger(value)) return value >= 100 && value <= 599 ? value : null;
  if (typeof value === "string" && /^\s*\d{3}\s*$/.test(value)) return Number(value);
  return null;
}

/**
 * A status hidden in a JSON body (some providers answer 200 with
 * `{"error": {"code": 429}}` or `{"code": "503"}`): `status`, `code` or
 * `errorCode` at the top level, in `error`, or in any entry of `errors[]`.
 */
export function bodyStatus(payload: unknown, retryStatusCodes: ReadonlySet<number>): number | null {
  if (!payload || typeof payload !== "object" || Array.isArray(payload)) return null;
  const record = payload as Record<string, unknown>;
  const holders: unknown[] = [record, record.error];
  if (Array.isArray(record.errors)) holders.push(...record.errors);
  for (const holder of holders) {
    if (!holder || typeof holder !== "object" || Array.isArray(holder)) continue;
    const fields = holder as Record<string, unknown>;
    for (const value of [fields.status, fields.code, fields.errorCode]) {
      const status = statusLike(value);
      if (status !== null && retryStatusCodes.has(status)) return status;
    }
  }
  return null;
}

/** The keys bodyStatus reads, as they appear in JSON text (bytes, so that no search encodes them again). */
const STATUS_KEYS = ['"status"', '"code"', '"errorCode"'].map((key) => Buffer.from(key));
const UNICODE_ESCAPE = Buffer.from("\\u");

/**
 * Whether the JSON text `raw` may hide a status for bodyStatus: false only
 * when no key it reads can be in it, so that a plain answer (nearly every
 * one) needs no parse to be cleared. A key that JSON.parse turns into one of
 * those names is written out in the text, or spelled with a `\u` escape (the
 * only escape that yields a letter): either way this says true.
 */
export function mayHideStatus(raw: Buffer): boolean {
  for (const key of STATUS_KEYS) if (raw.indexOf(key) >= 0) return true;
  return raw.indexOf(UNICODE_ESCAPE) >= 0;
}

const TIMEOUT_CODES = new Set(["UND_ERR_HEADERS_TIMEOUT", "UND_ERR_CONNECT_TIMEOUT", "UND_ERR_BODY_TIMEOUT", "ETIMEDOUT"]);

/** Whether an error thrown by the upstream client is a timeout (as opposed to a network failure). */
export function isTimeoutError(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return (typeof code === "string" && TIMEOUT_CODES.has(code)) || (error as Error | null)?.name === "TimeoutError";
}

