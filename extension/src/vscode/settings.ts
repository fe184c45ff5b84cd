/** The extension's settings (`hotswap.*`), read fresh each time they matter. */

import * as vscode from "vscode";

export type RunOnSave = "off" | "entry";

export interface Settings {
  /** An interpreter path; "" means the Python extension's, else python3. */
  python: string;
  /** The script to run instead of the active editor's, relative to the workspace folder. */
  entry: string;
  args: string[];
  runOnSave: RunOnSave;
  /** A daemon elsewhere: the path of a copy of its connection file (mirror mode). */
  backend: string;
  /** Rank workers per run (torchrun's --nproc-per-node); 0: the workspace's pyproject says. */
  nprocPerNode: number;
  /** Show only this rank's output in the terminal; -1: every rank. */
  showRank: number;
}

export function readSettings(scope?: vscode.ConfigurationScope): Settings {
  const config = vscode.workspace.getConfiguration("hotswap", scope);
  return {
    python: config.get<string>("python", "").trim(),
    entry: config.get<string>("entry", "").trim(),
    args: config.get<string[]>("args", []).map(String),
    runOnSave: config.get<string>("runOnSave", "entry") === "off" ? "off" : "entry",
    backend: config.get<string>("backend", "").trim(),
    nprocPerNode: Math.max(0, Math.floor(config.get<number>("nprocPerNode", 0))),
    showRank: Math.floor(config.get<number>("showRank", -1)),
  };
}

/** Flip rerun-on-save in the workspace's settings (the user's, with no folder open). */
export async function toggleRunOnSave(): Promise<RunOnSave> {
  const next: RunOnSave = readSettings().runOnSave === "off" ? "entry" : "off";
  const target = vscode.workspace.workspaceFolders?.length
    ? vscode.ConfigurationTarget.Workspace
    : vscode.ConfigurationTarget.Global;
  await vscode.workspace.getConfiguration("hotswap").update("runOnSave", next, target);
  return next;
}
