/** Shared by the Node tests: the repository, its Python, and running Python snippets. */

import { execFileSync } from "node:child_process";
import { mkdtempSync, mkdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";

export const REPO = path.resolve(__dirname, "..", "..", "..", "..");
/** The project's venv (made by `make venv`); HOTSWAP_PYTHON overrides it. */
export const PYTHON = process.env.HOTSWAP_PYTHON ?? path.join(REPO, ".venv", "bin", "python");

/** Run a Python snippet with the project's venv; `input` goes to its stdin; its stdout back. */
export function python(code: string, input = ""): string {
  return execFileSync(PYTHON, ["-c", code], { input, encoding: "utf8", env: { ...process.env, PYTHONSAFEPATH: "1" } });
}

/** A temporary folder with these files (relative POSIX path → text). */
export function tempTree(files: Record<string, string>, prefix = "hotswap-ext-"): string {
  const root = mkdtempSync(path.join(tmpdir(), prefix));
  writeTree(root, files);
  return root;
}

export function writeTree(root: string, files: Record<string, string>): void {
  for (const [rel, text] of Object.entries(files)) {
    const file = path.join(root, ...rel.split("/"));
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(file, text);
  }
}
