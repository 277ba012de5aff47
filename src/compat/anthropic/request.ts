export type Translated = { ok: true; body: Record<string, unknown> } | { ok: false; message: string; param?: string };
export function messagesToChatRequest(_body: unknown, _model: string): Translated { return { ok: false, message: "stub" }; }
export function chatToMessagesRequest(_body: unknown, _model: string, _o: { defaultMaxTokens: number }): Translated { return { ok: false, message: "stub" }; }
