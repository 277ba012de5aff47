export interface AnthropicEvent { readonly event: string; readonly data: Record<string, unknown> }
export class ChatToMessagesStream {
  constructor(_o: { model: string; stopSequences?: readonly string[]; inputTokens?: number }) {}
  push(_c: Record<string, unknown>): AnthropicEvent[] { return []; }
  end(): AnthropicEvent[] { return []; }
  fail(_m: string, _t?: string): AnthropicEvent[] { return []; }
  get started(): boolean { return false; }
}
export class MessagesToChatStream {
  constructor(_o: { model: string; includeUsage: boolean }) {}
  push(_e: string | undefined, _d: Record<string, unknown>): Record<string, unknown>[] { return []; }
  get done(): boolean { return false; }
}
export function encodeAnthropicEvent(e: AnthropicEvent): string { return `event: ${e.event}\ndata: ${JSON.stringify(e.data)}\n\n`; }
