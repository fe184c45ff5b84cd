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

/** The Metrics webview's script (with uPlot and its CSS, as metricsWebview.css): a browser bundle. */
export const webview = {
  bundle: true,
  platform: "browser",
  format: "iife",
  target: "es2020",
  minify: true,
  sourcemap: true,
  logLevel: "warning",
  entryPoints: [path.join(here, "src", "webview", "metricsWebview.ts")],
  outfile: path.join(here, "dist", "metricsWebview.js"),
};

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  await esbuild.build({
    ...common,
    entryPoints: [path.join(here, "src", "vscode", "extension.ts")],
    outfile: path.join(here, "dist", "extension.js"),
  });
  await esbuild.build(webview);
}
