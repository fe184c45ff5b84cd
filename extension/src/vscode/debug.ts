/**
 * F5 on the warm worker: a `hotswap` launch configuration starts a debug run on the backend,
 * waits for its debug_ready event (no timer), and becomes an attach to debugpy's own DAP server
 * in the worker, which VS Code reaches through a debug adapter descriptor. No Python Debugger
 * extension needed. The session ends with the run, and stopping it cancels the run.
 */

import * as vscode from "vscode";
import { UserError, report } from "./errors";
import { attachConfiguration } from "../node/launch";
import { LaunchOptions, resolveLaunch } from "./launchTarget";
import { RunController } from "./run";
import { readSettings } from "./settings";

export const DEBUG_TYPE = "hotswap";
export const DEBUG_NAME = "Hot Swap: Debug on Warm GPU";

export class HotSwapDebugging
  implements vscode.DebugConfigurationProvider, vscode.DebugAdapterDescriptorFactory, vscode.Disposable
{
  private readonly sessions = new Map<string, vscode.DebugSession>();
  private readonly ended = new Set<string>();
  private readonly subscriptions: vscode.Disposable[] = [];
  private failure: unknown;
  private debugRun: string | undefined;

  constructor(
    private readonly runs: RunController,
    private readonly log: vscode.LogOutputChannel,
  ) {
    // The first launch.json comes from package.json's initialConfigurations: a provider of the
    // Initial kind as well wrote the same configuration twice (seen in the e2e).
    this.subscriptions.push(
      vscode.debug.registerDebugConfigurationProvider(DEBUG_TYPE, this, vscode.DebugConfigurationProviderTriggerKind.Dynamic),
      vscode.debug.registerDebugAdapterDescriptorFactory(DEBUG_TYPE, this),
      vscode.debug.onDidStartDebugSession((s) => this.sessionStarted(s)),
      vscode.debug.onDidTerminateDebugSession((s) => this.sessionEnded(s)),
      runs.onDidFinish(({ run }) => this.runEnded(run.id)),
    );
  }

  /** "Debug on Warm GPU": the active file (or hotswap.entry) under the debugger. */
  async debugCommand(resource?: vscode.Uri): Promise<void> {
    const { folder } = resolveLaunch(resource, {}, true); // says what is missing before VS Code does
    const settings = readSettings(folder.uri);
    const program = settings.entry || resource?.fsPath || vscode.window.activeTextEditor?.document.uri.fsPath;
    this.failure = undefined;
    this.debugRun = undefined;
    const started = await vscode.debug.startDebugging(folder, {
      type: DEBUG_TYPE,
      request: "launch",
      name: DEBUG_NAME,
      program,
      args: settings.args,
      justMyCode: true,
    });
    if (!started && this.failure === undefined) {
      if (this.debugRun !== undefined) {
        await this.runs.cancel(this.debugRun).catch(() => undefined); // nobody will attach to it
      }
      throw new UserError("VS Code could not start the debug session (see the Hot Swap log); the run was cancelled.");
    }
  }

  provideDebugConfigurations(): vscode.DebugConfiguration[] {
    return [
      { type: DEBUG_TYPE, request: "launch", name: DEBUG_NAME, program: "${file}", args: [], justMyCode: true },
    ];
  }

  /** F5 with no launch.json: debug the active Python file. */
  resolveDebugConfiguration(_folder: vscode.WorkspaceFolder | undefined, config: vscode.DebugConfiguration): vscode.DebugConfiguration {
    if (!config.type && !config.request && !config.name) {
      return { type: DEBUG_TYPE, request: "launch", name: DEBUG_NAME, program: "${file}", justMyCode: true };
    }
    return { ...config, request: config.request ?? "launch", program: config.program ?? "${file}" };
  }

  async resolveDebugConfigurationWithSubstitutedVariables(
    folder: vscode.WorkspaceFolder | undefined,
    config: vscode.DebugConfiguration,
    token?: vscode.CancellationToken,
  ): Promise<vscode.DebugConfiguration | undefined> {
    if (config.request === "attach") {
      return config; // already an attach (a launch.json entry with `connect`)
    }
    try {
      const options: LaunchOptions = {
        program: config.program,
        args: config.args,
        cwd: config.cwd,
        env: config.env,
        justMyCode: config.justMyCode,
        nprocPerNode: config.nprocPerNode,
      };
      const run = await this.runs.start(resolveLaunch(folder?.uri, options, true));
      this.debugRun = run.id;
      token?.onCancellationRequested(() => void this.runs.cancel(run.id).catch(() => undefined));
      const ready = await run.debugReady; // the backend's event: debugpy listens, the run waits for us
      this.log.info(`debugpy of run ${run.id} listens on ${ready.host}:${ready.port}; attaching`);
      return attachConfiguration({ ...config, type: DEBUG_TYPE, name: config.name }, ready);
    } catch (err) {
      this.failure = err;
      report(this.log, "starting the debug run", err);
      return undefined; // aborts the launch; null would open launch.json
    }
  }

  createDebugAdapterDescriptor(session: vscode.DebugSession): vscode.DebugAdapterDescriptor {
    const connect = session.configuration.connect as { host?: string; port?: number } | undefined;
    if (connect?.port === undefined) {
      throw new Error("a hotswap debug session needs the port its run announced: start it with Debug on Warm GPU or F5");
    }
    return new vscode.DebugAdapterServer(connect.port, connect.host ?? "127.0.0.1");
  }

  dispose(): void {
    this.subscriptions.forEach((s) => s.dispose());
  }

  private sessionStarted(session: vscode.DebugSession): void {
    const runId = this.runIdOf(session);
    if (runId === undefined) {
      return;
    }
    if (this.ended.delete(runId)) {
      void vscode.debug.stopDebugging(session); // the run was over before the session began
    } else {
      this.sessions.set(runId, session);
    }
  }

  /** The user stopped debugging: the run must not go on unattended. */
  private sessionEnded(session: vscode.DebugSession): void {
    const runId = this.runIdOf(session);
    if (runId !== undefined && this.sessions.delete(runId) && this.runs.current?.id === runId) {
      void this.runs.cancel(runId).catch((err) => report(this.log, "cancelling the debug run", err));
    }
  }

  private runEnded(runId: string): void {
    const session = this.sessions.get(runId);
    if (session === undefined) {
      this.ended.add(runId);
      return;
    }
    this.sessions.delete(runId);
    void vscode.debug.stopDebugging(session);
  }

  private runIdOf(session: vscode.DebugSession): string | undefined {
    const runId = session.type === DEBUG_TYPE ? session.configuration.hotswapRunId : undefined;
    return typeof runId === "string" ? runId : undefined;
  }
}
