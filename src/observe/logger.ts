import { pino, type DestinationStream, type Logger } from "pino";

export type { Logger };

export const CENSOR = "[redacted]";

/** Keys whose value is a credential wherever they appear, compared in lower case. */
const SECRET_KEYS = new Set(["authorization", "proxy-authorization", "apikey", "api_key", "api-key", "x-api-key", "x-goog-api-key", "cookie", "set-cookie"]);

function isSecretKey(key: string): boolean {
  return SECRET_KEYS.has(key.toLowerCase());
}

/**
 * `fields` with every credential-named key (at the top level or one level
 * down: `apiKey`, `headers.authorization`) censored. The gateway never passes
 * headers or bodies to the logger; this is a second line of defence should
 * one slip in. It copies only what it censors: a line with no such key, every
 * line the gateway writes, is passed through as it is. (pino's `redact`
 * option did the same by path, but cloned and re-parsed its paths on every
 * call: a quarter of what a failed-over request allocated went to its log line.)
 */
export function censorSecrets(fields: Record<string, unknown>): Record<string, unknown> {
  let out: Record<string, unknown> | undefined;
  for (const key in fields) {
    const value = fields[key];
    let censored: unknown = value;
    if (isSecretKey(key)) {
      censored = CENSOR;
    } else if (value !== null && typeof value === "object" && !Array.isArray(value)) {
      censored = censorOneLevel(value as Record<string, unknown>);
    }
    if (censored !== value) {
      out ??= { ...fields };
      out[key] = censored;
    }
  }
  return out ?? fields;
}

function censorOneLevel(value: Record<string, unknown>): Record<string, unknown> {
  let out: Record<string, unknown> | undefined;
  for (const key in value) {
    if (isSecretKey(key) && value[key] !== undefined) {
      out ??= { ...value };
      out[key] = CENSOR;
    }
  }
  return out ?? value;
}

/** JSON lines on stdout. */
export function createLogger(level: string, destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      base: undefined,
      messageKey: "msg",
      formatters: { log: censorSecrets },
    },
    // Lines are gathered up to 4 KB (or 200 ms) per write: one write per request line would cost a syscall each
    // on the hot path. pino flushes what is left when the process exits.
    destination ?? pino.destination({ fd: 1, sync: false, minLength: 4096, periodicFlush: 200 }),
  );
}
