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
    destination ?? pino.destination({ fd: 1, sync: false }),
  );
}
