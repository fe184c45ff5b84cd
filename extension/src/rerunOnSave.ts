/**
 * Rerun on save: once a script has run in this window, saving a file of the synced workspace
 * runs it again (debounced; a save during a run supersedes it on the backend).
 */

import * as path from "node:path";
import * as vscode from "vscode";
import { guard } from "./errors";
import { RunController } from "./run";
import { readSettings } from "./settings";
import { IgnoreRules } from "./sync";

export const DEBOUNCE_MS = 150;

export class RerunOnSave implements vscode.Disposable {
  private timer: NodeJS.Timeout | undefined;
  private readonly subscription: vscode.Disposable;

  constructor(
    private readonly runs: RunController,
    private readonly log: vscode.LogOutputChannel,
  ) {
    this.subscription = vscode.workspace.onDidSaveTextDocument((document) => this.saved(document));
  }

  dispose(): void {
    clearTimeout(this.timer);
    this.subscription.dispose();
  }

  private saved(document: vscode.TextDocument): void {
    if (!this.wanted(document)) {
      return;
    }
    // Save All writes many files at once: one rerun for all of them.
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void guard(this.log, "rerun on save", () => this.runs.rerun()), DEBOUNCE_MS);
  }

  private wanted(document: vscode.TextDocument): boolean {
    const folder = vscode.workspace.getWorkspaceFolder(document.uri);
    if (folder === undefined || document.uri.scheme !== "file" || !this.runs.hasRun) {
      return false;
    }
    if (readSettings(folder.uri).runOnSave === "off" || this.runs.current?.launch.spec.debug) {
      return false; // a save while debugging must not kill the session being debugged
    }
    const rel = path.relative(folder.uri.fsPath, document.uri.fsPath).split(path.sep).join("/");
    try {
      return !new IgnoreRules(folder.uri.fsPath).ignoredPath(rel);
    } catch (err) {
      this.log.warn(`rerun on save: cannot read the ignore rules: ${String(err)}`);
      return true;
    }
  }
}
