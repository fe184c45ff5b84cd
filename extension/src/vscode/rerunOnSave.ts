/**
 * Rerun on save: once a script has run in this window, saving a file of the synced workspace
 * runs it again (debounced; a save during a run supersedes it on the backend). What is synced
 * is the daemon's sync policy (its hello); a folder whose daemon has not said it yet (only in a
 * multi-root workspace: a rerun needs a run first) counts every saved file, and the sync skips
 * what the policy leaves out once connected.
 */

import * as path from "node:path";
import * as vscode from "vscode";
import { guard } from "./errors";
import { RunController } from "./run";
import { readSettings } from "./settings";
import { IgnoreRules } from "../node/sync";

/** The wait after the last save in progress has landed (coalesces Save All's events). */
export const DEBOUNCE_MS = 10;
/** The longest wait for saves still in progress (a save that fails never lands). */
export const MAX_WAIT_MS = 150;

export class RerunOnSave implements vscode.Disposable {
  private timer: NodeJS.Timeout | undefined;
  private readonly saving = new Set<string>();
  private readonly subscriptions: vscode.Disposable[];
  private pending = false;

  constructor(
    private readonly runs: RunController,
    private readonly log: vscode.LogOutputChannel,
  ) {
    this.subscriptions = [
      vscode.workspace.onWillSaveTextDocument((e) => this.saving.add(e.document.uri.toString())),
      vscode.workspace.onDidSaveTextDocument((document) => this.saved(document)),
    ];
  }

  dispose(): void {
    clearTimeout(this.timer);
    this.subscriptions.forEach((s) => s.dispose());
  }

  private saved(document: vscode.TextDocument): void {
    this.saving.delete(document.uri.toString());
    this.pending ||= this.wanted(document);
    if (!this.pending) {
      return;
    }
    // Save All writes many files at once: one rerun, once the last of them has landed.
    clearTimeout(this.timer);
    const wait = this.saving.size === 0 ? DEBOUNCE_MS : MAX_WAIT_MS;
    this.timer = setTimeout(() => {
      this.pending = false;
      this.saving.clear();
      void guard(this.log, "rerun on save", () => this.runs.rerun());
    }, wait);
  }

  private wanted(document: vscode.TextDocument): boolean {
    const folder = vscode.workspace.getWorkspaceFolder(document.uri);
    if (folder === undefined || document.uri.scheme !== "file" || !this.runs.hasRun) {
      return false;
    }
    if (readSettings(folder.uri).runOnSave === "off" || this.runs.current?.launch.spec.debug) {
      return false; // a save while debugging must not kill the session being debugged
    }
    const policy = this.runs.syncPolicy(folder);
    if (policy === undefined) {
      return true;
    }
    const rel = path.relative(folder.uri.fsPath, document.uri.fsPath).split(path.sep).join("/");
    try {
      return !new IgnoreRules(folder.uri.fsPath, policy).ignoredPath(rel);
    } catch (err) {
      this.log.warn(`rerun on save: cannot read the ignore rules: ${String(err)}`);
      return true;
    }
  }
}
