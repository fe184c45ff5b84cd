// Builds the extension's benchmark with esbuild and runs it with node (`npm run bench:save`):
// save → first output line against a real daemon of .venv. Prints one JSON line.
import * as esbuild from "esbuild";
import { spawnSync } from "node:child_process";
import { rmSync } from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { common } from "../../esbuild.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const outdir = path.join(here, "..", "..", "out", "test", "bench");
rmSync(outdir, { recursive: true, force: true });
await esbuild.build({ ...common, entryPoints: [path.join(here, "saveToOutput.ts")], outdir });
const result = spawnSync(process.execPath, ["--enable-source-maps", path.join(outdir, "saveToOutput.js")], { stdio: "inherit" });
process.exit(result.status ?? 1);
