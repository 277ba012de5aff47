import { Writable } from "node:stream";
import { buildConfig } from "../../src/config/load.js";
import { createGateway, type Gateway } from "../../src/index.js";
import { createLogger } from "../../src/observe/logger.js";

export interface TestGateway {
  /** http://127.0.0.1:PORT */
  readonly url: string;
  readonly gateway: Gateway;
  /** Every log line the gateway wrote, parsed. */
  readonly logs: Record<string, unknown>[];
  /** The raw log text, for "never logs a secret" checks. */
  logText(): string;
  close(): Promise<void>;
}

/** Starts a real gateway on 127.0.0.1:0 from routes.yml text and an environment. */
export async function startGateway(routesYaml: string, env: Record<string, string> = {}): Promise<TestGateway> {
  const built = buildConfig(routesYaml, env, { routesFile: "test/routes.yml" });
  if (!built.config) throw new Error(`bad test config:\n${built.problems.join("\n")}`);
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      lines.push(...chunk.toString("utf8").split("\n").filter(Boolean));
      callback();
    },
  });
  const gateway = createGateway(built.config, { logger: createLogger("debug", sink) });
  const { url } = await gateway.listen(0, "127.0.0.1");
  return {
    url,
    gateway,
    get logs() {
      return lines.map((line) => JSON.parse(line) as Record<string, unknown>);
    },
    logText: () => lines.join("\n"),
    close: () => gateway.close(),
  };
}
