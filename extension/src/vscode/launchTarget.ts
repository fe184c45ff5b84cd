/**
 * Which script a command or launch configuration runs, in which folder, with what: the
 * `program`, else the hotswap.entry setting, else the file given or the active editor's.
 */

import { realpathSync, statSync } from "node:fs";
import * as path from "node:path";
import * as vscode from "vscode";
import { LaunchSpec } from "../node/launch";
import { isInside } from "../node/links";
import { UserError } from "./errors";
import { readSettings } from "./settings";

/** What a launch configuration (or a command) may say about a run. */
export interface LaunchOptions {
  program?: string;
  args?: string[];
  cwd?: string;
  env?: Record<string, string>;
  justMyCode?: boolean;
  nprocPerNode?: number;
}

export interface Launch {
  spec: LaunchSpec;
  folder: vscode.WorkspaceFolder;
  note?: string;
}

/** The run a command or launch configuration asks for (relative paths are the folder's). */
export function resolveLaunch(resource: vscode.Uri | undefined, options: LaunchOptions, debug: boolean): Launch {
  const hint = resource ?? vscode.window.activeTextEditor?.document.uri;
  const folder = (hint && vscode.workspace.getWorkspaceFolder(hint)) ?? vscode.workspace.workspaceFolders?.[0];
  if (folder === undefined) {
    throw new UserError("open a folder first: Hot Swap runs the scripts of a workspace folder.");
  }
  const settings = readSettings(folder.uri);
  const program = options.program || settings.entry || (hint?.scheme === "file" && isFile(hint.fsPath) ? hint.fsPath : "");
  if (!program) {
    throw new UserError("open the Python file to run, or set hotswap.entry to the script to run.", [
      { title: "Set Entry", command: "workbench.action.openSettings", args: ["hotswap.entry"] },
    ]);
  }
  const local = folder.uri.fsPath;
  const root = realpathSync(local);
  const inRoot = (file: string): string => {
    const absolute = path.resolve(local, file);
    return isInside(absolute, local) || absolute === local ? path.join(root, path.relative(local, absolute)) : absolute;
  };
  const spec: LaunchSpec = {
    root,
    entry: inRoot(program),
    args: options.args ?? settings.args,
    cwd: inRoot(options.cwd || local),
    env: options.env ?? {},
    debug,
    justMyCode: options.justMyCode ?? true,
    nprocPerNode: options.nprocPerNode ?? settings.nprocPerNode,
    showRank: settings.showRank,
  };
  return { spec, folder, note: unsavedNote(folder, path.resolve(local, program)) };
}

/** The last launch again, without the debugger (rerun on save), with a fresh unsaved note. */
export function relaunch(launch: Launch): Launch {
  const { spec, folder } = launch;
  return { spec: { ...spec, debug: false }, folder, note: unsavedNote(folder, spec.entry) };
}

function isFile(file: string): boolean {
  try {
    return statSync(file).isFile();
  } catch {
    return false;
  }
}

/** A line for the header when the workspace has unsaved files: the saved versions run. */
function unsavedNote(folder: vscode.WorkspaceFolder, entry: string): string | undefined {
  const dirty = vscode.workspace.textDocuments.filter(
    (d) => d.isDirty && d.uri.scheme === "file" && vscode.workspace.getWorkspaceFolder(d.uri) === folder,
  );
  if (dirty.length === 0) {
    return undefined;
  }
  const names = dirty.map((d) => vscode.workspace.asRelativePath(d.uri, false));
  const entryDirty = dirty.some((d) => d.uri.fsPath === entry);
  return `note: unsaved changes in ${names.slice(0, 3).join(", ")}${names.length > 3 ? "…" : ""} are not sent; ${entryDirty ? "the saved entry runs" : "the saved files run"} (save to include them)`;
}
