/** Names and errors of the configuration that the request path needs, without the loader's dependencies (zod, yaml). */

export const AUTO_MODEL = "auto";
export const WILDCARD_MODEL = "*";

/** Every problem found, so `validate` can print them all at once. */
export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(problems.join("\n"));
    this.name = "ConfigError";
  }
}
