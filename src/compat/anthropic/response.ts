export function chatToMessagesResponse(chat: unknown, _model: string, _s?: readonly string[]): Record<string, unknown> { return chat as Record<string, unknown>; }
export function messagesToChatResponse(m: unknown, _model: string): Record<string, unknown> { return m as Record<string, unknown>; }
export function toAnthropicError(_status: number, body: unknown): Record<string, unknown> { return { type: "error", error: { type: "api_error", message: JSON.stringify(body) } }; }
export function toOpenAIError(_status: number, body: unknown): Record<string, unknown> { return body as Record<string, unknown>; }
