import { ChatToMessagesStream, encodeAnthropicEvent, type AnthropicEvent } from "../compat/anthropic/stream.js";
import type { ChatStreamOutput } from "./chat-stream.js";

const COLON = 0x3a;

/** A Chat Completions stream relayed to an Anthropic Messages client, event by event. */
export function anthropicOutput(options: { model: string; stopSequences?: readonly string[] }): ChatStreamOutput {
  const translator = new ChatToMessagesStream(options);
  let closed = false;
  const bytes = (events: AnthropicEvent[]) => (events.length === 0 ? undefined : events.map(encodeAnthropicEvent).join(""));
  const close = () => {
    if (closed) return undefined;
    closed = true;
    return bytes(translator.end());
  };
  return {
    chunk: (chunk) => (closed ? undefined : bytes(translator.push(chunk))),
    // Comments (keep-alives, the gateway's notice) are SSE for every client; unnamed data-less events are not worth keeping.
    other: (raw) => (raw[0] === COLON ? raw : undefined),
    done: close,
    ended: close,
    error: (message) => {
      closed = true;
      return bytes(translator.fail(message)) ?? "";
    },
  };
}
