/**
 * Hot Swap: run and debug Python scripts on a warm backend. This file only wires the parts
 * together; each concern lives in its own module.
 */

import * as vscode from "vscode";
import { Backends, restartBackend, showBackendLog } from "./backend";
import { HotSwapDebugging } from "./debug";
import { guard, guarded } from "./errors";
import { RerunOnSave } from "./rerunOnSave";
import { LanguageServers } from "./languageServer";
import { resolveLaunch } from "./launchTarget";
import { MetricsLinkProvider, MetricsView, SHOW_METRICS } from "./metricsView";
import { RunController } from "./run";
import { readSettings, toggleRunOnSave } from "./settings";
import { StatusBar, showStatusMenu } from "./statusBar";
import { HotSwapTerminal, TracebackLinkProvider } from "./terminal";
import { releaseWarm, showWarm } from "./warm";

export function activate(context: vscode.ExtensionContext): void {
  const log = vscode.window.createOutputChannel("Hot Swap", { log: true });
  const backends = new Backends(context.extensionPath, log);
  const terminal = new HotSwapTerminal();
  const status = new StatusBar();
  const runs = new RunController(backends, terminal, status, log);
  const debugging = new HotSwapDebugging(runs, log);
  const metrics = new MetricsView(context.extensionUri, backends, log);
  const command = <A extends unknown[]>(id: string, what: string, action: (...args: A) => unknown): vscode.Disposable =>
    vscode.commands.registerCommand(id, guarded(log, what, action));

  status.setRunOnSave(readSettings().runOnSave);
  context.subscriptions.push(
    log,
    backends,
    terminal,
    status,
    runs,
    debugging,
    metrics,
    new RerunOnSave(runs, log),
    new LanguageServers(backends, log),
    vscode.window.registerTerminalLinkProvider(new TracebackLinkProvider(terminal, () => runs.linkContext())),
    vscode.window.registerTerminalLinkProvider(new MetricsLinkProvider((t) => terminal.is(t))),
    command(SHOW_METRICS, "Show Metrics", () => metrics.show()),
    command("hotswap.run", "Run on Warm GPU", (uri?: vscode.Uri) => runs.start(resolveLaunch(asUri(uri), {}, false))),
    command("hotswap.debug", "Debug on Warm GPU", (uri?: vscode.Uri) => debugging.debugCommand(asUri(uri))),
    command("hotswap.cancel", "Cancel", () => runs.cancel()),
    command("hotswap.restartBackend", "Restart Backend", () => restartBackend(backends, status)),
    command("hotswap.releaseWarm", "Release Warm Objects", () => releaseWarm(backends)),
    command("hotswap.showWarm", "Show Warm Objects", () => showWarm(backends)),
    command("hotswap.showLog", "Show Backend Log", () => showBackendLog(backends, log)),
    command("hotswap.showOutput", "Show Output", () => log.show()),
    command("hotswap.toggleRunOnSave", "Toggle Rerun on Save", async () => status.setRunOnSave(await toggleRunOnSave())),
    command("hotswap.statusMenu", "Hot Swap menu", () => showStatusMenu(runs.current !== undefined, readSettings().runOnSave)),
    vscode.workspace.onDidChangeConfiguration((e) => {
      if (e.affectsConfiguration("hotswap.runOnSave")) {
        status.setRunOnSave(readSettings().runOnSave);
      }
    }),
  );
  void guard(log, "reconnecting to the backend", () => backends.reconnectLive());
  log.info(`Hot Swap ${context.extension.packageJSON.version ?? ""} active`);
}

export function deactivate(): void {
  // Disposables close the connections; the daemons go on, detached, with their warm objects.
}

/** Menus pass the file's URI; the command palette passes nothing (or something else). */
function asUri(arg: unknown): vscode.Uri | undefined {
  return arg instanceof vscode.Uri ? arg : undefined;
}
