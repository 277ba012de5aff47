import { pino, type DestinationStream, type Logger } from "pino";

export type { Logger };

/**
 * JSON lines on stdout. The gateway never passes headers or bodies to the
 * logger; the redact list is a second line of defence should one slip in.
 */
export function createLogger(level: string, destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      base: undefined,
      messageKey: "msg",
      redact: {
        paths: ["headers.authorization", "headers['x-api-key']", "headers['api-key']", "apiKey", "*.apiKey", "authorization", "*.authorization"],
        censor: "[redacted]",
      },
    },
    // Lines are gathered up to 4 KB (or 200 ms) per write: one write per request line would cost a syscall each
    // on the hot path. pino flushes what is left when the process exits.
    destination ?? pino.destination({ fd: 1, sync: false, minLength: 4096, periodicFlush: 200 }),
  );
}
