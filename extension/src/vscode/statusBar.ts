/**
 * The status bar item: what the backend is doing, what is warm, and a menu of actions. It
 * follows each connection's worker, warm and sync-progress events.
 */

import * as vscode from "vscode";
import { describeWarm, formatBytes } from "../node/format";
import type { Bodies, WarmEntry } from "../node/protocol";
import type { Transport } from "../node/transport";
import { SHOW_LOG, report } from "./errors";
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
  private readonly warmed = new vscode.EventEmitter<void>();
  /** Fires when a worker reports warm objects (the first load of a script is over). */
  readonly onDidWarm = this.warmed.event;

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

  /**
   * Show what a connection's workers hold and do: their warm objects now and as they change,
   * restarts (told to the user), and sync progress. `running` says whether a run is shown.
   */
  follow(transport: Transport, log: vscode.LogOutputChannel, running: () => boolean): void {
    const safely = <B>(what: string, action: (body: B) => void) => (body: B) => {
      try {
        action(body);
      } catch (err) {
        report(log, `handling ${what}`, err);
      }
    };
    transport.on("warm_changed", safely("warm_changed", (body) => this.warmChanged(body)));
    transport.on("worker_restarted", safely("worker_restarted", (body) => this.workerRestarted(body, log, running())));
    transport.on("sync_progress", (body) =>
      this.set("loading", `syncing ${body.bytes_total ? Math.floor((100 * body.bytes_done) / body.bytes_total) : 100}%`),
    );
    void transport.request("status", {}).then(
      (status) => status.workers.forEach((w) => this.setWarm(w.index, w.warm)),
      (err) => log.warn(`status: ${String(err)}`),
    );
  }

  dispose(): void {
    this.item.dispose();
    this.warmed.dispose();
  }

  private warmChanged(body: Bodies["warm_changed"]): void {
    this.setWarm(body.worker, body.warm);
    if (body.warm.length > 0) {
      this.warmed.fire();
    }
  }

  private workerRestarted(body: Bodies["worker_restarted"], log: vscode.LogOutputChannel, running: boolean): void {
    this.setWarm(body.worker, []);
    if (!running) {
      this.set("idle");
    }
    const lost = body.warm_lost.length ? `; warm objects lost: ${body.warm_lost.join(", ")}. The next run loads them again` : "";
    log.warn(`worker ${body.worker} restarted (pid ${body.pid}): ${body.reason}${lost}`);
    void vscode.window
      .showWarningMessage(`Hot Swap: the worker was restarted: ${body.reason}${lost}.`, SHOW_LOG.title)
      .then((picked) => picked && vscode.commands.executeCommand(SHOW_LOG.command));
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
