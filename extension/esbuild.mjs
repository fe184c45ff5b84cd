// Bundles the extension into extension/dist/extension.js. `vscode` is the host's; zeromq is
// native and ships as itself in node_modules (inside the VSIX).
import * as esbuild from "esbuild";
import { fileURLToPath } from "node:url";
import * as path from "node:path";

const here = path.dirname(fileURLToPath(import.meta.url));

export const common = {
  bundle: true,
  platform: "node",
  format: "cjs",
  target: "node18",
  external: ["vscode", "zeromq"],
  sourcemap: true,
  logLevel: "warning",
};

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  await esbuild.build({
    ...common,
    entryPoints: [path.join(here, "src", "vscode", "extension.ts")],
    outfile: path.join(here, "dist", "extension.js"),
  });
}
