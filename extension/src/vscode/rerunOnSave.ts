/**
 * On save: every saved file of a connected folder is synced in the background (runOnSave or
 * not), so the next run has nothing left to send; and, once a script has run in this window,
 * saving a file of the synced workspace runs it again (debounced; a save during a run
 * supersedes it on the backend). What is synced
 * is the daemon's sync policy (its hello); a folder whose daemon has not said it yet (only in a
 * multi-root workspace: a rerun needs a run first) counts every saved file, and the sync skips
 * what the policy leaves out once connected.
 */

import * as path from "node:path";
import * as vscode from "vscode";
import { guard } from "./errors";
import { RunController } from "./run";
import { readSettings } from "./settings";
import { BackgroundSync } from "../node/backgroundSync";
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
  private readonly background = new Map<string, BackgroundSync>();

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
    this.background.forEach((b) => b.dispose());
    this.subscriptions.forEach((s) => s.dispose());
  }

  private saved(document: vscode.TextDocument): void {
    this.saving.delete(document.uri.toString());
    const wanted = this.wanted(document);
    this.pending ||= wanted;
    if (!this.pending) {
      this.syncInBackground(document);
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

  /** Sync the saved file's folder now, if its daemon is connected: the rerun is not coming. */
  private syncInBackground(document: vscode.TextDocument): void {
    const folder = vscode.workspace.getWorkspaceFolder(document.uri);
    if (folder === undefined || document.uri.scheme !== "file" || !this.synced(folder, document)) {
      return;
    }
    const key = folder.uri.toString();
    let background = this.background.get(key);
    if (background === undefined) {
      background = new BackgroundSync(
        () => this.runs.connectedSync(folder),
        (err) => this.log.warn(`background sync of ${folder.name}: ${String(err)}`),
      );
      this.background.set(key, background);
    }
    background.saved();
  }

  private wanted(document: vscode.TextDocument): boolean {
    const folder = vscode.workspace.getWorkspaceFolder(document.uri);
    if (folder === undefined || document.uri.scheme !== "file" || !this.runs.hasRun) {
      return false;
    }
    if (readSettings(folder.uri).runOnSave === "off" || this.runs.current?.launch.spec.debug) {
      return false; // a save while debugging must not kill the session being debugged
    }
    return !editorConfiguration(folder, document) && this.synced(folder, document);
  }

  /** Whether the daemon's sync policy syncs `document` (every file until a daemon said it). */
  private synced(folder: vscode.WorkspaceFolder, document: vscode.TextDocument): boolean {
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

/** `.vscode/` holds the editor's own files (settings.json, launch.json, tasks.json): saving
 * them, as the Settings editor and the status bar's toggle do, is no edit of the program. */
function editorConfiguration(folder: vscode.WorkspaceFolder, document: vscode.TextDocument): boolean {
  return path.relative(folder.uri.fsPath, document.uri.fsPath).split(path.sep)[0] === ".vscode";
}
