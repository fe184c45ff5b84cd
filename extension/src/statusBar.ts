/** The status bar item: what the backend is doing, what is warm, and a menu of actions. */

import * as vscode from "vscode";
import { describeWarm, formatBytes } from "./format";
import type { WarmEntry } from "./protocol";
import { RunOnSave } from "./settings";

export type BackendState = "idle" | "loading" | "running" | "debugging" | "restarting" | "offline";

const ICONS: Record<BackendState, string> = {
  idle: "$(zap)",
  loading: "$(sync~spin)",
  running: "$(play)",
  debugging: "$(debug-alt)",
  restarting: "$(sync~spin)",
  offline: "$(circle-slash)",
};

export class StatusBar implements vscode.Disposable {
  private readonly item = vscode.window.createStatusBarItem("hotswap.status", vscode.StatusBarAlignment.Left, 50);
  private state: BackendState = "offline";
  private detail = "";
  private readonly warm = new Map<number, WarmEntry[]>();
  private runOnSave: RunOnSave = "entry";

  constructor() {
    this.item.name = "Hot Swap";
    this.item.command = "hotswap.statusMenu";
    this.render();
    this.item.show();
  }

  get current(): BackendState {
    return this.state;
  }

  set(state: BackendState, detail = ""): void {
    this.state = state;
    this.detail = detail;
    this.render();
  }

  setWarm(worker: number, entries: WarmEntry[]): void {
    this.warm.set(worker, entries);
    this.render();
  }

  clearWarm(): void {
    this.warm.clear();
    this.render();
  }

  setRunOnSave(mode: RunOnSave): void {
    this.runOnSave = mode;
    this.render();
  }

  dispose(): void {
    this.item.dispose();
  }

  private render(): void {
    const entries = [...this.warm.values()].flat();
    const warm = describeWarm(entries);
    const what = this.state === "idle" || this.state === "offline" ? "" : `: ${this.state}${this.detail ? " " + this.detail : ""}`;
    this.item.text = `${ICONS[this.state]} Hot Swap${what}${warm ? " · " + warm : ""}${this.runOnSave === "entry" ? "" : " · save: off"}`;
    const tooltip = new vscode.MarkdownString(undefined, true);
    tooltip.appendMarkdown(`**Hot Swap**: ${this.state}${this.detail ? " " + this.detail : ""}\n\n`);
    for (const e of entries) {
      tooltip.appendMarkdown(`- \`${e.key}\` ${e.type} · ${formatBytes(e.bytes)} · ${e.device ?? "-"}\n`);
    }
    if (entries.length === 0) {
      tooltip.appendMarkdown("Nothing warm yet.\n");
    }
    tooltip.appendMarkdown(`\nRerun on save: ${this.runOnSave === "entry" ? "on" : "off"} · click for actions`);
    this.item.tooltip = tooltip;
    this.item.backgroundColor =
      this.state === "restarting" ? new vscode.ThemeColor("statusBarItem.warningBackground") : undefined;
  }
}

/** The status bar's menu: the commands that make sense now. */
export async function showStatusMenu(running: boolean, runOnSave: RunOnSave): Promise<void> {
  const items: Array<vscode.QuickPickItem & { command: string }> = [
    { label: "$(zap) Run on Warm GPU", command: "hotswap.run" },
    { label: "$(debug-alt) Debug on Warm GPU", command: "hotswap.debug" },
    ...(running ? [{ label: "$(debug-stop) Cancel the Run", command: "hotswap.cancel" }] : []),
    {
      label: runOnSave === "entry" ? "$(eye-closed) Turn Rerun on Save Off" : "$(eye) Turn Rerun on Save On",
      command: "hotswap.toggleRunOnSave",
    },
    { label: "$(list-unordered) Show Warm Objects", command: "hotswap.showWarm" },
    { label: "$(trash) Release Warm Objects", command: "hotswap.releaseWarm" },
    { label: "$(debug-restart) Restart Backend", command: "hotswap.restartBackend" },
    { label: "$(output) Show Backend Log", command: "hotswap.showLog" },
  ];
  const picked = await vscode.window.showQuickPick(items, { title: "Hot Swap" });
  if (picked !== undefined) {
    await vscode.commands.executeCommand(picked.command);
  }
}
