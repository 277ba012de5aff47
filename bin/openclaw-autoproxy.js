#!/usr/bin/env node
// Thin launcher: the CLI is compiled to dist/ (npm install runs the build).
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

const cli = new URL("../dist/cli.js", import.meta.url);
if (!existsSync(fileURLToPath(cli))) {
  process.stderr.write("openclaw-autoproxy is not built: run `npm install` (or `npm run build`) in its directory.\n");
  process.exit(1);
}
await import(cli.href);
