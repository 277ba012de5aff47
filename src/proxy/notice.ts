import type { SseNoticeMode } from "../config/types.js";
import type { FailureReason } from "../upstream/classify.js";

/** One failed attempt, as the client is told about it. */
export interface FailedAttempt {
  readonly model: string | null;
  readonly route: string;
  readonly reason: FailureReason;
  readonly status: number | null;
}

/** The 1.0.0 `gateway_notice` fields, plus the full list of failed attempts. */
export interface GatewayNotice {
  readonly trigger_status: number | null;
  readonly from_model: string | null;
  readonly from_route: string;
  readonly to_model: string | null;
  readonly to_route: string;
  readonly reason: FailureReason;
  readonly failed_attempts: readonly FailedAttempt[];
}

export function buildNotice(failed: readonly FailedAttempt[], toModel: string | null, toRoute: string): GatewayNotice | undefined {
  const last = failed[failed.length - 1];
  if (!last) return undefined;
  return {
    trigger_status: last.status,
    from_model: last.model,
    from_route: last.route,
    to_model: toModel,
    to_route: toRoute,
    reason: last.reason,
    failed_attempts: failed,
  };
}

/**
 * The notice as SSE. A comment line is ignored by every SSE client; a named
 * event (1.0.0's form, `notice.sse: event`) is yielded by the openai SDK as a
 * chunk, so it carries `choices: []` to keep `chunk.choices[0]?.delta` loops alive.
 */
export function sseNotice(notice: GatewayNotice, mode: SseNoticeMode): Buffer | undefined {
  if (mode === "off") return undefined;
  if (mode === "event") {
    return Buffer.from(`event: gateway_notice\ndata: ${JSON.stringify({ type: "gateway_notice", choices: [], ...notice })}\n\n`);
  }
  return Buffer.from(`: gateway_notice ${JSON.stringify(notice)}\n\n`);
}

/**
 * `body` (a JSON object) with a top-level `gateway_notice` added before its
 * closing brace. It is spliced into the bytes, with no parse: a body that
 * does not open with `{` and close with `}` (an array, a string) is returned
 * unchanged, and one that does but is not JSON (a provider's bug) stays not
 * JSON, as it came.
 */
export function jsonWithNotice(body: Buffer, notice: GatewayNotice): Buffer {
  let end = body.length - 1;
  while (end >= 0 && isWs(body[end] as number)) end--;
  let start = 0;
  while (start < body.length && isWs(body[start] as number)) start++;
  if (start >= end || body[start] !== 0x7b || body[end] !== 0x7d) return body;
  let first = start + 1;
  while (first < end && isWs(body[first] as number)) first++;
  const empty = first === end;
  const field = `${empty ? "" : ","}"gateway_notice":${JSON.stringify(notice)}`;
  return Buffer.concat([body.subarray(0, end), Buffer.from(field), body.subarray(end)]);
}

function isWs(c: number): boolean {
  return c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
}

/** The in-band error that ends a stream which failed after it started: clients raise it, none mistakes it for a clean end. */
export function sseError(message: string, code: string): Buffer {
  return Buffer.from(`data: ${JSON.stringify({ error: { message, type: "gateway_error", code } })}\n\n`);
}
