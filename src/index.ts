/** The programmatic API: load a configuration, create a gateway, listen. */
export { createGateway, type Gateway, type GatewayOptions } from "./gateway.js";
export { loadConfig, buildConfig, type LoadOptions, type LoadResult } from "./config/load.js";
export { ConfigError } from "./config/names.js";
export { loadConfigIsolated } from "./config/isolated.js";
export type { GatewayConfig, Route } from "./config/types.js";
export type { Logger } from "./observe/logger.js";
