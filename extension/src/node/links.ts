/**
 * Traceback lines (`File "path", line N`) found in terminal text, with the daemon's paths mapped
 * back to the editor's. No vscode here.
 */

import * as path from "node:path";
import type { PathMapping } from "./protocol";

export interface TracebackLink {
  /** Offset and length of the link in the line. */
  start: number;
  length: number;
  file: string;
  line: number;
}

const TRACEBACK = /File "([^"]+)", line (\d+)/g;

export function tracebackLinks(text: string): TracebackLink[] {
  const links: TracebackLink[] = [];
  for (const match of text.matchAll(TRACEBACK)) {
    links.push({ start: match.index ?? 0, length: match[0].length, file: match[1], line: Number(match[2]) });
  }
  return links;
}

/** A daemon-side path as the editor sees it: mapped (mirror mode), relative ones under `cwd`. */
export function localPath(file: string, mappings: readonly PathMapping[], cwd: string): string {
  for (const { localRoot, remoteRoot } of mappings) {
    const remote = remoteRoot.replace(/\/+$/, "");
    if (file === remote) {
      return localRoot;
    }
    if (file.startsWith(remote + "/")) {
      return localRoot.replace(/\/+$/, "") + file.slice(remote.length);
    }
  }
  return path.isAbsolute(file) ? file : path.join(cwd, file);
}

/** Whether `file` lies inside folder `root`. */
export function isInside(file: string, root: string): boolean {
  const rel = path.relative(root, file);
  return rel !== "" && !rel.startsWith("..") && !path.isAbsolute(rel);
}
