// Builds the extension's Node tests with esbuild and runs them with node's test runner:
//   node extension/test/run.mjs unit|integration
// They need no VS Code: they exercise src/node/, the modules that do not import it.
import * as esbuild from "esbuild";
import { spawnSync } from "node:child_process";
import { readdirSync, rmSync } from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { common } from "../esbuild.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const suite = process.argv[2];
if (suite !== "unit" && suite !== "integration") {
  console.error("usage: node extension/test/run.mjs unit|integration");
  process.exit(2);
}
const sources = readdirSync(path.join(here, suite))
  .filter((name) => name.endsWith(".test.ts"))
  .map((name) => path.join(here, suite, name));
const outdir = path.join(here, "..", "out", "test", suite);
rmSync(outdir, { recursive: true, force: true });
await esbuild.build({ ...common, entryPoints: sources, outdir, external: [...common.external] });
const outputs = sources.map((file) => path.join(outdir, path.basename(file).replace(/\.ts$/, ".js")));
const result = spawnSync(process.execPath, ["--enable-source-maps", "--test", ...outputs], { stdio: "inherit" });
process.exit(result.status ?? 1);
