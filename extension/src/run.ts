/**
 * Runs in this window: which script, syncing and starting it, its output in the Hot Swap
 * terminal with a header and footer, stdin, cancel, and the status bar while it runs.
 */

import { realpathSync, statSync } from "node:fs";
import * as path from "node:path";
import { performance } from "node:perf_hooks";
import * as vscode from "vscode";
import { Backend, Backends, Connection } from "./backend";
import { SHOW_LOG, UserError, report } from "./errors";
import { TerminalText, footer, header } from "./format";
import { LaunchSpec, runRequest } from "./launch";
import { LineAction } from "./lineEditor";
import { isInside } from "./links";
import {
  Bodies,
  DaemonError,
  DebugReadyBody,
  EventType,
  PathMapping,
  RunFinishedBody,
  RunStartedBody,
} from "./protocol";
import { readSettings } from "./settings";
import { StatusBar } from "./statusBar";
import { HotSwapTerminal } from "./terminal";

/** What a launch configuration (or a command) may say about a run. */
export interface LaunchOptions {
  program?: string;
  args?: string[];
  cwd?: string;
  env?: Record<string, string>;
  justMyCode?: boolean;
}

export interface Launch {
  spec: LaunchSpec;
  folder: vscode.WorkspaceFolder;
  note?: string;
}

/** One run the backend accepted, until its run_finished. */
export class ActiveRun {
  readonly text = new TerminalText();
  midLine = false;
  readonly finished: Promise<RunFinishedBody>;
  readonly debugReady: Promise<DebugReadyBody>;
  settle!: (body: RunFinishedBody) => void;
  ready!: (body: DebugReadyBody) => void;
  private notReady!: (err: Error) => void;

  constructor(
    readonly id: string,
    readonly launch: Launch,
    readonly connection: Connection,
    readonly requestedAt: number,
  ) {
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

  /** How the daemon's paths map to the editor's: the mirror, and a symlinked folder. */
  get mappings(): PathMapping[] {
    const local = this.launch.folder.uri.fsPath;
    const sync = this.connection.sync;
    const mappings = sync.mode === "mirror" && sync.daemonRoot ? [{ localRoot: local, remoteRoot: sync.daemonRoot }] : [];
    return this.connection.root === local ? mappings : [...mappings, { localRoot: local, remoteRoot: this.connection.root }];
  }
}

export class RunController implements vscode.Disposable {
  private readonly runs = new Map<string, ActiveRun>();
  private readonly early = new Map<string, Array<(run: ActiveRun) => void>>();
  private requesting = 0;
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

  /** Sync the saved workspace and start `launch` on the backend; the run's events follow. */
  async start(launch: Launch): Promise<ActiveRun> {
    const requestedAt = performance.now();
    this.lastLaunch = launch;
    this.status.set("loading", "syncing");
    this.terminal.show();
    // Events of the new run may arrive before the code after `await request` runs: keep
    // them until the run is registered (`route` holds them while this count is above zero).
    this.requesting++;
    try {
      const connection = await this.backends.of(launch.folder).connect();
      this.wire(connection);
      const reply = await this.request(connection, launch.spec);
      const run = new ActiveRun(reply.run_id, launch, connection, requestedAt);
      this.runs.set(run.id, run);
      this.shown = run;
      this.recent = run;
      this.terminal.onInput = (action) => this.input(action);
      this.replayEarly(run);
      return run;
    } catch (err) {
      if (this.shown === undefined) {
        this.status.set(this.backends.of(launch.folder).current ? "idle" : "offline");
      }
      throw err;
    } finally {
      this.requesting--;
      if (this.requesting === 0) {
        this.early.clear();
      }
    }
  }

  /** Run the last launch again (rerun on save), without the debugger. */
  async rerun(): Promise<void> {
    if (this.lastLaunch !== undefined) {
      const { spec, folder } = this.lastLaunch;
      await this.start({ spec: { ...spec, debug: false }, folder, note: unsavedNote(folder, spec.entry) });
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

  private async request(connection: Connection, spec: LaunchSpec): Promise<Bodies["run_reply"]> {
    for (let attempt = 1; ; attempt++) {
      const synced = await connection.sync.sync();
      synced.skipped.forEach((s) => this.log.warn(`not synced: ${s.path} (${s.reason}); raise [tool.hotswap] max_file_mb or list it in .hotswapignore`));
      this.log.info(`synced ${synced.sent.length} changed, ${synced.deleted.length} deleted file(s) (${synced.mode})`);
      try {
        return await connection.transport.request("run", runRequest(spec, synced.state, process.env));
      } catch (err) {
        // Another client synced in between: sync again, once.
        if (!(err instanceof DaemonError && err.ename === "resync") || attempt > 1) {
          throw err;
        }
      }
    }
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
    this.route(t, "run_finished", (run, body) => this.finished(run, body));
    this.route(t, "debug_ready", (run, body) => run.ready(body));
    t.on("warm_changed", (body) => this.safely("warm_changed", () => this.warmChanged(body)));
    t.on("worker_restarted", (body) => this.safely("worker_restarted", () => this.workerRestarted(body)));
    t.on("sync_progress", (body) =>
      this.status.set("loading", `syncing ${body.bytes_total ? Math.floor((100 * body.bytes_done) / body.bytes_total) : 100}%`),
    );
    void t.request("status", {}).then(
      (status) => status.workers.forEach((w) => this.status.setWarm(w.index, w.warm)),
      (err) => this.log.warn(`status: ${String(err)}`),
    );
  }

  /** Hand a run's events to `handle`; keep those that overtake the run's own reply. */
  private route<E extends EventType>(
    transport: Connection["transport"],
    type: E,
    handle: (run: ActiveRun, body: Bodies[E]) => void,
  ): void {
    transport.on(type, (body) => {
      const runId = (body as { run_id?: string | null }).run_id;
      if (typeof runId !== "string") {
        return; // a debugger listening at the worker's start, for no run of ours
      }
      const run = this.runs.get(runId);
      const deliver = (r: ActiveRun): void => this.safely(type, () => handle(r, body));
      if (run !== undefined) {
        deliver(run);
      } else if (this.requesting > 0) {
        this.early.set(runId, [...(this.early.get(runId) ?? []), deliver]);
      }
    });
  }

  private replayEarly(run: ActiveRun): void {
    const waiting = this.early.get(run.id) ?? [];
    this.early.delete(run.id);
    waiting.forEach((deliver) => deliver(run));
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
    const entry = vscode.workspace.asRelativePath(path.join(run.launch.folder.uri.fsPath, path.relative(run.connection.root, spec.entry)));
    this.terminal.print(
      header({
        entry,
        args: spec.args,
        warmKeys: body.warm_keys,
        startSeconds: (performance.now() - run.requestedAt) / 1000,
        debug: spec.debug,
        note: run.launch.note,
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
    const text = run.text.write(body.stream, body.data);
    if (text) {
      run.midLine = !text.endsWith("\n");
      this.terminal.print(text);
    }
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
      }),
    );
    this.terminal.scrollToBottom();
    this.end(run, body, body.reason === "crashed" || body.reason === "killed" ? "restarting" : "idle");
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

  private warmChanged(body: Bodies["warm_changed"]): void {
    this.status.setWarm(body.worker, body.warm);
    if (body.warm.length > 0) {
      this.endFirstLoad?.();
      this.endFirstLoad = undefined;
    }
  }

  private workerRestarted(body: Bodies["worker_restarted"]): void {
    this.status.setWarm(body.worker, []);
    if (this.shown === undefined) {
      this.status.set("idle");
    }
    const lost = body.warm_lost.length ? `; warm objects lost: ${body.warm_lost.join(", ")}. The next run loads them again` : "";
    this.log.warn(`worker ${body.worker} restarted (pid ${body.pid}): ${body.reason}${lost}`);
    void vscode.window
      .showWarningMessage(`Hot Swap: the worker stopped (${body.reason}) and was restarted${lost}.`, SHOW_LOG.title)
      .then((picked) => picked && vscode.commands.executeCommand(SHOW_LOG.command));
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

// -- which script -------------------------------------------------------------------

/**
 * The run a command or launch configuration asks for: the `program` (relative to the folder),
 * else the hotswap.entry setting, else the file given or the active editor's.
 */
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
  };
  return { spec, folder, note: unsavedNote(folder, path.resolve(local, program)) };
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
