import type { ServerResponse } from "node:http";
import { toAnthropicError } from "../compat/anthropic/response.js";

/** Which API's error shape the client expects. */
export type ErrorShape = "openai" | "anthropic";

export type ErrorType = "invalid_request_error" | "not_found_error" | "gateway_error" | "timeout_error";

const DEFAULT_TYPE: Record<number, ErrorType> = { 404: "not_found_error", 502: "gateway_error", 503: "gateway_error", 504: "timeout_error", 500: "gateway_error" };

/** OpenAI's error shape, which every OpenAI client knows how to surface. */
export function errorBody(status: number, code: string, message: string, type?: ErrorType, shape: ErrorShape = "openai"): string {
  const error = { error: { message, type: type ?? DEFAULT_TYPE[status] ?? "invalid_request_error", code, param: null } };
  return JSON.stringify(shape === "anthropic" ? toAnthropicError(status, error) : error);
}

export function sendError(res: ServerResponse, status: number, code: string, message: string, extraHeaders?: Record<string, string>, shape: ErrorShape = "openai"): void {
  if (res.headersSent) {
    if (!res.writableEnded) res.destroy();
    return;
  }
  const body = errorBody(status, code, message, undefined, shape);
  res.writeHead(status, { "content-type": "application/json; charset=utf-8", "content-length": Buffer.byteLength(body), ...extraHeaders });
  res.end(body);
}

export function sendJson(res: ServerResponse, status: number, payload: unknown, method = "GET"): void {
  const body = JSON.stringify(payload);
  res.writeHead(status, { "content-type": "application/json; charset=utf-8", "content-length": Buffer.byteLength(body) });
  res.end(method === "HEAD" ? undefined : body);
}
