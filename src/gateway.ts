import type { AddressInfo } from "node:net";
import type { Server } from "node:http";
import type { GatewayConfig } from "./config/types.js";
import { createLogger, type Logger } from "./observe/logger.js";
import { MemoryStore, type RoutingStore } from "./routing/store.js";
import { createGatewayServer } from "./server/http.js";
import { UpstreamClient } from "./upstream/client.js";


export interface GatewayOptions {
  logger?: Logger;
  store?: RoutingStore;
  /** Clock for health bookkeeping (default: Date.now). */
  now?: () => number;
}

export interface Gateway {
  readonly config: GatewayConfig;
  readonly store: RoutingStore;
  readonly server: Server;
  readonly logger: Logger;
  /** Listens on `port`/`host` (default: the config's); resolves with the bound address. */
  listen(port?: number, host?: string): Promise<{ host: string; port: number; url: string }>;
  /** Stops accepting, ends open connections and upstream pools. */
  close(): Promise<void>;
}

export function createGateway(config: GatewayConfig, options: GatewayOptions = {}): Gateway {
  const logger = options.logger ?? createLogger(config.logLevel);
  const upstream = new UpstreamClient(config);
  const store = options.store ?? new MemoryStore(config.breaker);
  const server = createGatewayServer({ config, upstream, store, logger, now: options.now ?? Date.now });

  return {
    config,
    store,
    server,
    logger,
    listen(port = config.port, host = config.host) {
      return new Promise((resolve, reject) => {
        const onError = (error: Error) => reject(error);
        server.once("error", onError);
        server.listen(port, host, () => {
          server.off("error", onError);
          const address = server.address() as AddressInfo;
          const shownHost = address.family === "IPv6" ? `[${address.address}]` : address.address;
          resolve({ host: address.address, port: address.port, url: `http://${shownHost}:${address.port}` });
        });
      });
    },
    async close() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      await upstream.close();
    },
  };
}
