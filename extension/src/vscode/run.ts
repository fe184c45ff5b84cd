/**
 * Runs in this window: syncing and starting a script, its output in the Hot Swap terminal with
 * a header and footer, stdin, cancel, and the status bar's state while it runs.
 */

import * as path from "node:path";
import { performance } from "node:perf_hooks";
import * as vscode from "vscode";
import { TerminalText, footer, header, notice } from "../node/format";
import { LineAction } from "../node/lineEditor";
import { Bodies, DebugReadyBody, EventType, PathMapping, RunFinishedBody, RunStartedBody, SyncPolicy } from "../node/protocol";
import { newRunId, syncThenRun } from "../node/startRun";
import { WorkspaceSync } from "../node/sync";
import { Backend, Backends, Connection } from "./backend";
import { SHOW_LOG, UserError, guard, report } from "./errors";
import { Launch, relaunch } from "./launchTarget";
import { METRICS_LINK_TEXT } from "./metricsView";
import { StatusBar } from "./statusBar";
import { HotSwapTerminal } from "./terminal";

/** One run the backend accepted, until its run_finished. */
export class ActiveRun {
  readonly text: TerminalText;
  midLine = false;
  readonly finished: Promise<RunFinishedBody>;
  readonly debugReady: Promise<DebugReadyBody>;
  /** How the daemon's paths map to the editor's, as its run_started said. */
  mappings: PathMapping[] = [];
  settle!: (body: RunFinishedBody) => void;
  ready!: (body: DebugReadyBody) => void;
  private notReady!: (err: Error) => void;

  constructor(
    readonly id: string,
    readonly launch: Launch,
    readonly connection: Connection,
    readonly requestedAt: number,
    /** 2 when sent again because its state was gone when it left the queue (`resync`). */
    readonly attempt = 1,
  ) {
    this.text = new TerminalText(launch.spec.showRank);
    this.finished = new Promise((resolve) => (this.settle = resolve));
    this.debugReady = new Promise((resolve, reject) => {
      this.ready = resolve;
      this.notReady = reject;
    });
    this.debugReady.catch(() => undefined); // a run nobody debugs never gets ready
    this.finished.then((body) => this.notReady(new UserError(`the run ended before its debugger was ready: ${body.message || body.reason}`)));
  }

  get entry(): string {
    return path.basename(this.launch.spec.entry);
  }

}

export class RunController implements vscode.Disposable {
  private readonly runs = new Map<string, ActiveRun>();
  private shown: ActiveRun | undefined;
  private recent: ActiveRun | undefined;
  private lastLaunch: Launch | undefined;
  private readonly wired = new WeakSet<Connection>();
  private stdin: Promise<unknown> = Promise.resolve();
  private endFirstLoad: (() => void) | undefined;
  private readonly entriesRun = new Set<string>();
  private readonly finishedRuns = new vscode.EventEmitter<{ run: ActiveRun; body: RunFinishedBody }>();
  readonly onDidFinish = this.finishedRuns.event;
  private readonly subscriptions: vscode.Disposable[] = [];

  constructor(
    private readonly backends: Backends,
    private readonly terminal: HotSwapTerminal,
    private readonly status: StatusBar,
    private readonly log: vscode.LogOutputChannel,
  ) {
    this.subscriptions.push(
      backends.onDidCreate((backend) =>
        this.subscriptions.push(
          backend.onDidChange((connection) => (connection ? this.wire(connection) : this.lost(backend))),
        ),
      ),
      status.onDidWarm(() => {
        this.endFirstLoad?.();
        this.endFirstLoad = undefined;
      }),
    );
  }

  /** The run whose output the terminal shows and stdin goes to. */
  get current(): ActiveRun | undefined {
    return this.shown;
  }

  /** Paths in the terminal belong to the newest run: how to map them to the editor's. */
  linkContext(): { mappings: PathMapping[]; cwd: string } | undefined {
    const run = this.shown ?? this.recent;
    return run && { mappings: run.mappings, cwd: run.launch.spec.cwd };
  }

  get hasRun(): boolean {
    return this.lastLaunch !== undefined;
  }

  /**
   * Sync the saved workspace and start `launch` on the backend. The run is ours (and shown)
   * under the id we chose before the request goes: its events may overtake the reply.
   */
  async start(launch: Launch, attempt = 1): Promise<ActiveRun> {
    const requestedAt = performance.now();
    this.lastLaunch = launch;
    this.status.set("loading", "syncing");
    this.terminal.show();
    const connection = await this.connect(launch);
    const run = new ActiveRun(newRunId(), launch, connection, requestedAt, attempt);
    const [previous, previousRecent] = [this.shown, this.recent];
    this.runs.set(run.id, run);
    this.shown = run;
    this.recent = run;
    this.terminal.onInput = (action) => this.input(action);
    try {
      await this.request(run);
      return run;
    } catch (err) {
      this.runs.delete(run.id);
      this.recent = this.recent === run ? previousRecent : this.recent;
      if (this.shown === run) {
        this.shown = previous !== undefined && this.runs.has(previous.id) ? previous : undefined;
        this.terminal.onInput = this.shown && ((action) => this.input(action));
      }
      if (this.shown === undefined) {
        this.status.set(this.backends.of(launch.folder).current ? "idle" : "offline");
      }
      throw err;
    }
  }

  private async connect(launch: Launch): Promise<Connection> {
    try {
      const connection = await this.backends.of(launch.folder).connect();
      this.wire(connection);
      return connection;
    } catch (err) {
      if (this.shown === undefined) {
        this.status.set("offline");
      }
      throw err;
    }
  }

  /** Run the last launch again (rerun on save), without the debugger. */
  async rerun(): Promise<void> {
    if (this.lastLaunch !== undefined) {
      await this.start(relaunch(this.lastLaunch));
    }
  }

  async cancel(runId?: string): Promise<void> {
    const run = runId === undefined ? this.shown : this.runs.get(runId);
    if (run === undefined) {
      void vscode.window.showInformationMessage("Hot Swap: nothing is running.");
      return;
    }
    await run.connection.transport.request("cancel", { run_id: run.id });
  }

  dispose(): void {
    this.subscriptions.forEach((s) => s.dispose());
    this.finishedRuns.dispose();
  }

  private async request(run: ActiveRun): Promise<void> {
    await syncThenRun(run.connection, run.launch.spec, process.env, run.id, (synced) => {
      synced.skipped.forEach((s) => this.log.warn(`not synced: ${s.path} (${s.reason}); raise [tool.hotswap] max_file_mb or list it in .hotswapignore`));
      this.log.info(`synced ${synced.sent.length} changed, ${synced.deleted.length} deleted file(s) (${synced.mode})`);
    });
  }

  /** The sync of `folder`'s connected daemon, if one is connected (background sync on save). */
  connectedSync(folder: vscode.WorkspaceFolder): WorkspaceSync | undefined {
    return this.backends.of(folder).current?.sync;
  }

  /** The sync policy of the daemon of `folder`, once one has said it (rerun on save uses it). */
  syncPolicy(folder: vscode.WorkspaceFolder): SyncPolicy | undefined {
    return this.backends.of(folder).policy;
  }

  // -- events -----------------------------------------------------------------------

  private wire(connection: Connection): void {
    if (this.wired.has(connection)) {
      return;
    }
    this.wired.add(connection);
    const t = connection.transport;
    this.route(t, "run_started", (run, body) => this.started(run, body));
    this.route(t, "stream", (run, body) => this.output(run, body));
    this.route(t, "run_notice", (run, body) => this.notice(run, body));
    this.route(t, "run_finished", (run, body) => this.finished(run, body));
    this.route(t, "debug_ready", (run, body) => run.ready(body));
    this.status.follow(t, this.log, () => this.shown !== undefined);
  }

  /** Hand the events of our runs to `handle` (their ids are ours: no event comes too early). */
  private route<E extends EventType>(
    transport: Connection["transport"],
    type: E,
    handle: (run: ActiveRun, body: Bodies[E]) => void,
  ): void {
    transport.on(type, (body) => {
      const runId = (body as { run_id?: string | null }).run_id;
      const run = typeof runId === "string" ? this.runs.get(runId) : undefined;
      if (run !== undefined) {
        this.safely(type, () => handle(run, body)); // else another client's run, or a debugger for none
      }
    });
  }

  private safely(what: string, action: () => void): void {
    try {
      action();
    } catch (err) {
      report(this.log, `handling ${what}`, err);
    }
  }

  private started(run: ActiveRun, body: RunStartedBody): void {
    const { spec } = run.launch;
    run.mappings = body.path_mappings;
    const entry = vscode.workspace.asRelativePath(path.join(run.launch.folder.uri.fsPath, path.relative(run.connection.root, spec.entry)));
    this.terminal.print(
      header({
        entry,
        args: spec.args,
        warmKeys: body.warm_keys,
        startSeconds: (performance.now() - run.requestedAt) / 1000,
        debug: spec.debug,
        note: run.launch.note,
        metricsLink: METRICS_LINK_TEXT,
      }),
    );
    if (run === this.shown) {
      this.status.set(spec.debug ? "debugging" : "running", run.entry);
      void vscode.commands.executeCommand("setContext", "hotswap.running", true);
    }
    // The first run of a script on a cold backend is the one that loads: say it will be faster.
    if (body.warm_keys.length === 0 && !spec.debug && !this.entriesRun.has(spec.entry)) {
      this.showFirstLoad(run);
    }
    this.entriesRun.add(spec.entry);
  }

  private output(run: ActiveRun, body: Bodies["stream"]): void {
    const text = run.text.write(body.stream, body.data, body.rank);
    if (text) {
      run.midLine = !text.endsWith("\n");
      this.terminal.print(text);
    }
  }

  /** What hotswap did for the run, as a header line of its own colour (not the script's). */
  private notice(run: ActiveRun, body: Bodies["run_notice"]): void {
    this.terminal.print(notice(body.kind, body.text, run.midLine));
    run.midLine = false;
  }

  private finished(run: ActiveRun, body: RunFinishedBody): void {
    const rest = run.text.flush();
    this.terminal.print(rest + (run.midLine || (rest && !rest.endsWith("\n")) ? "\r\n" : ""));
    this.terminal.print(
      footer({
        exitCode: body.exit_code,
        duration: body.duration,
        reason: body.reason,
        message: body.message,
        warmReused: body.warm_reused,
        warmLost: body.warm_lost,
        memory: body.memory,
        survivors: body.survivors,
      }),
    );
    this.terminal.scrollToBottom();
    this.end(run, body, body.reason === "crashed" || body.reason === "killed" ? "restarting" : "idle");
    if (body.reason === "resync" && run.attempt === 1) {
      // It waited in the queue while the workspace moved on: sync again and send it once more.
      void guard(this.log, "sending the run again", () => this.start(run.launch, 2));
    }
  }

  private end(run: ActiveRun, body: RunFinishedBody, state: "idle" | "restarting" | "offline"): void {
    this.runs.delete(run.id);
    run.settle(body);
    if (run === this.shown) {
      this.shown = undefined;
      this.terminal.onInput = undefined;
      this.terminal.clearInput();
      this.status.set(state);
      void vscode.commands.executeCommand("setContext", "hotswap.running", false);
    }
    this.finishedRuns.fire({ run, body });
  }

  private showFirstLoad(run: ActiveRun): void {
    this.endFirstLoad?.();
    void vscode.window.withProgress(
      {
        location: vscode.ProgressLocation.Notification,
        title: `Hot Swap: first run of ${run.entry}; what it keeps warm is reused by the next runs`,
        cancellable: true,
      },
      (_progress, token) =>
        new Promise<void>((resolve) => {
          this.endFirstLoad = resolve;
          token.onCancellationRequested(() => void this.cancel(run.id).catch((err) => report(this.log, "cancel", err)));
          void run.finished.then(() => resolve());
        }),
    );
  }

  /** The daemon went away: the runs it had will send nothing more. */
  private lost(backend: Backend): void {
    const lost = [...this.runs.values()].filter((r) => r.launch.folder === backend.folder && r.connection !== backend.current);
    this.status.clearWarm();
    this.status.set(this.shown && !lost.includes(this.shown) ? this.status.current : "offline");
    for (const run of lost) {
      const message = `${backend.closeReason || "the backend went away"}; the run's end is unknown. Run again to start a new backend; its log may say why.`;
      this.terminal.print(`\r\n\x1b[33m■ ${message}\x1b[0m\r\n\r\n`);
      this.end(run, { run_id: run.id, exit_code: 1, duration: 0, reason: "lost", error: null, message, warm_reused: [], warm_lost: true }, "offline");
      void vscode.window
        .showErrorMessage(`Hot Swap: ${message}`, SHOW_LOG.title)
        .then((picked) => picked && vscode.commands.executeCommand(SHOW_LOG.command));
    }
  }

  private input(action: LineAction): void {
    const run = this.shown;
    if (run === undefined) {
      return;
    }
    if (action.kind === "interrupt") {
      void this.cancel(run.id).catch((err) => report(this.log, "cancel", err));
      return;
    }
    const body = { run_id: run.id, data: Buffer.from(action.text, "utf8"), ...(action.eof ? { eof: true } : {}) };
    // One after the other, so lines arrive in the order they were typed.
    this.stdin = this.stdin
      .then(() => run.connection.transport.request("stdin", body))
      .catch((err) => this.log.warn(`stdin for run ${run.id}: ${String(err)}`));
  }
}
