/**
 * Getting a backend for a workspace folder: connect to its live daemon, else start one
 * detached; or use the daemon `hotswap.backend` points at. Restart, and explain failures.
 */

import { existsSync, realpathSync } from "node:fs";
import * as os from "node:os";
import * as vscode from "vscode";
import {
  DaemonStartError,
  connectionPath,
  daemonLogPath,
  daemonAlive,
  readConnection,
  startDaemon,
  waitForConnection,
  waitForExit,
} from "../node/daemon";
import { NextStep, RESTART, SHOW_LOG, UserError } from "./errors";
import { runEnvironment } from "../node/launch";
import { ConnectionInfo, DaemonError, DaemonUnavailable, HelloReplyBody, PROTOCOL_VERSION, ProtocolError, SyncPolicy } from "../node/protocol";
import { ensureHotswap, findInterpreter } from "./python";
import { StatusBar } from "./statusBar";
import { readSettings } from "./settings";
import { WorkspaceSync } from "../node/sync";
import { Transport } from "../node/transport";

export const CLIENT_NAME = "vscode-hotswap";
const OPEN_BACKEND_SETTING: NextStep = { title: "Open Settings", command: "workbench.action.openSettings", args: ["hotswap.backend"] };

/** A live connection to the daemon serving one workspace folder. */
export interface Connection {
  transport: Transport;
  hello: HelloReplyBody;
  sync: WorkspaceSync;
  folder: vscode.WorkspaceFolder;
  /** The folder's real path: what the daemon is told (it resolves symlinks too). */
  root: string;
  /** A daemon elsewhere (hotswap.backend): mirror mode, and not ours to restart. */
  remote: boolean;
}

export class Backend implements vscode.Disposable {
  private connection: Connection | undefined;
  /** The sync policy of the last daemon this folder talked to (kept when it goes away). */
  policy: SyncPolicy | undefined;
  /** Why the last connection ended, in words for the terminal. */
  closeReason = "";
  private connecting: Promise<Connection> | undefined;
  private readonly changed = new vscode.EventEmitter<Connection | undefined>();
  /** Fires with the new connection, or undefined when it was lost or closed. */
  readonly onDidChange = this.changed.event;

  constructor(
    readonly folder: vscode.WorkspaceFolder,
    private readonly extensionPath: string,
    private readonly log: vscode.LogOutputChannel,
  ) {}

  get current(): Connection | undefined {
    return this.connection;
  }

  /** The live connection, opened (and the daemon started) if needed. One attempt at a time. */
  connect(): Promise<Connection> {
    if (this.connection !== undefined && !this.connection.transport.closed) {
      return Promise.resolve(this.connection);
    }
    this.connecting ??= this.open().finally(() => (this.connecting = undefined));
    return this.connecting;
  }

  /** Stop the daemon (its warm objects go) and start a fresh one. */
  async restart(): Promise<Connection> {
    // An attempt still in flight was made with the settings of its time (hotswap.backend may
    // have changed since): let it end, so the restart connects afresh.
    await this.connecting?.catch(() => undefined);
    const settings = readSettings(this.folder.uri);
    const root = realpathSync(this.folder.uri.fsPath);
    // Only this folder's own daemon is ours to stop: not one hotswap.backend pointed at before.
    const own = this.connection?.remote ? undefined : this.connection?.transport.connection;
    const info = settings.backend ? undefined : (own ?? liveConnection(root));
    this.close("the backend is restarting");
    if (info !== undefined) {
      await this.stopDaemon(info);
    } else if (settings.backend) {
      this.log.info("the backend runs elsewhere (hotswap.backend): reconnecting only; restart it on its host");
    }
    return this.connect();
  }

  close(reason = "the connection was closed"): void {
    const connection = this.connection;
    this.connection = undefined;
    if (connection !== undefined) {
      this.closeReason = reason;
      connection.transport.close(reason);
      this.changed.fire(undefined);
    }
  }

  /** The daemon's log: .hotswap/daemon.log of a local daemon. */
  logFile(): string | undefined {
    if (readSettings(this.folder.uri).backend) {
      return undefined;
    }
    const file = daemonLogPath(realpathSync(this.folder.uri.fsPath));
    return existsSync(file) ? file : undefined;
  }

  dispose(): void {
    this.close("the window closed"); // the daemon goes on: it is detached, with its warm objects
    this.changed.dispose();
  }

  private async open(): Promise<Connection> {
    const settings = readSettings(this.folder.uri);
    const root = realpathSync(this.folder.uri.fsPath);
    const remote = settings.backend !== "";
    const info = remote ? remoteConnection(settings.backend) : (liveConnection(root) ?? (await this.start(root)));
    const transport = new Transport(info, this.log);
    let hello: HelloReplyBody;
    try {
      // The Metrics view follows `hotswap run` from a terminal too.
      hello = await transport.hello(CLIENT_NAME, undefined, { subscribe_metrics: true });
    } catch (err) {
      transport.close("the handshake failed");
      throw this.explainHello(err, info, remote, settings.backend);
    }
    const connection: Connection = {
      transport,
      hello,
      sync: new WorkspaceSync(transport, root, hello.sync_policy),
      folder: this.folder,
      root,
      remote,
    };
    transport.onDisconnect(() => this.lost(connection));
    this.connection = connection;
    this.policy = hello.sync_policy;
    this.log.info(
      `connected to the hotswap daemon ${hello.version} (pid ${hello.daemon_pid}, protocol ${hello.protocol_version}) at ${info.address} for ${hello.workspace}`,
    );
    this.changed.fire(connection);
    return connection;
  }

  private async start(root: string): Promise<ConnectionInfo> {
    const python = await findInterpreter(this.folder.uri, readSettings(this.folder.uri), this.log);
    await ensureHotswap(python, this.extensionPath, this.log);
    this.log.info(`starting ${python.path} -m hotswap serve --workspace ${root} (log: ${daemonLogPath(root)})`);
    return vscode.window.withProgress(
      { location: vscode.ProgressLocation.Window, title: "Hot Swap: starting the backend" },
      async () => {
        const child = startDaemon(python.path, root, runEnvironment(process.env));
        try {
          return await waitForConnection(root, child);
        } catch (err) {
          const other = liveConnection(root); // another window or the CLI started one first
          if (other !== undefined) {
            return other;
          }
          throw explainStart(err, python.path);
        }
      },
    );
  }

  private async stopDaemon(info: ConnectionInfo): Promise<void> {
    this.log.info(`stopping the hotswap daemon (pid ${info.pid})`);
    const transport = new Transport(info, this.log);
    try {
      await transport.request("stop", {}, 5_000);
    } catch (err) {
      // A daemon of another protocol version or a hung one does not take `stop`: signal it.
      this.log.warn(`the daemon did not take stop (${String(err)}); sending SIGTERM`);
      signal(info.pid, "SIGTERM");
    } finally {
      transport.close();
    }
    if (!(await waitForExit(info.pid, 15_000))) {
      this.log.warn(`the daemon (pid ${info.pid}) did not stop within 15 s; killing it`);
      signal(info.pid, "SIGKILL");
      await waitForExit(info.pid, 5_000);
    }
  }

  private lost(connection: Connection): void {
    if (this.connection !== connection) {
      return;
    }
    this.log.warn(`the hotswap daemon at ${connection.transport.connection.address} went away`);
    this.close("the backend went away");
  }

  private explainHello(err: unknown, info: ConnectionInfo, remote: boolean, backendSetting: string): Error {
    // A daemon of another release: another major version, or a reply our protocol cannot read.
    const otherRelease = ["version_mismatch", "malformed", "unknown_type"];
    if ((err instanceof DaemonError || err instanceof ProtocolError) && otherRelease.includes(err.ename)) {
      return new UserError(
        `the hotswap daemon speaks protocol ${info.protocol_version}, this extension ${PROTOCOL_VERSION} (${err.message}). ` +
          (remote
            ? "Install the same hotswap release as the extension on the backend's host and restart it there."
            : "Restart the backend to start one of this release (its warm objects will be lost)."),
        remote ? [] : [RESTART],
      );
    }
    if (err instanceof DaemonError && err.ename === "bad_signature") {
      return new UserError(
        remote
          ? `the daemon refused the key of ${backendSetting}: copy its current connection file again.`
          : "the daemon refused the key of .hotswap/connection.json. Restart the backend.",
        remote ? [OPEN_BACKEND_SETTING] : [RESTART],
      );
    }
    if (err instanceof DaemonUnavailable) {
      return remote
        ? new UserError(
            `no hotswap daemon answered at ${info.address} (hotswap.backend = ${backendSetting}). Is it running, and is the SSH tunnel to its port up?`,
            [OPEN_BACKEND_SETTING],
          )
        : new UserError(
            `the hotswap daemon (pid ${info.pid}) does not answer. Restart the backend (its warm objects will be lost).`,
            [RESTART, SHOW_LOG],
          );
    }
    return err instanceof Error ? err : new Error(String(err));
  }
}

/** The connection of the folder's daemon if its process is alive. */
function liveConnection(root: string): ConnectionInfo | undefined {
  try {
    const info = readConnection(connectionPath(root));
    return daemonAlive(Number(info.pid)) ? info : undefined;
  } catch {
    return undefined;
  }
}

function remoteConnection(setting: string): ConnectionInfo {
  const file = setting.startsWith("~/") ? os.homedir() + setting.slice(1) : setting;
  try {
    return readConnection(file);
  } catch (err) {
    throw new UserError(
      `hotswap.backend: ${(err as Error).message}. Point it at a copy of the remote daemon's .hotswap/connection.json (with its port forwarded).`,
      [OPEN_BACKEND_SETTING],
    );
  }
}

function explainStart(err: unknown, python: string): Error {
  if (!(err instanceof DaemonStartError)) {
    return err instanceof Error ? err : new Error(String(err));
  }
  const lines = err.logTail.split("\n");
  const last = lines[lines.length - 1].trim();
  const choose: NextStep = { title: "Choose Interpreter", command: "workbench.action.openSettings", args: ["hotswap.python"] };
  return new UserError(`${err.message} (${python}): ${last}`, [SHOW_LOG, choose], err.logTail);
}

function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch {
    // already gone
  }
}

/** One Backend per workspace folder, made on first use. */
export class Backends implements vscode.Disposable {
  private readonly byFolder = new Map<string, Backend>();
  private readonly created = new vscode.EventEmitter<Backend>();
  readonly onDidCreate = this.created.event;

  constructor(
    private readonly extensionPath: string,
    private readonly log: vscode.LogOutputChannel,
  ) {}

  of(folder: vscode.WorkspaceFolder): Backend {
    const key = folder.uri.toString();
    let backend = this.byFolder.get(key);
    if (backend === undefined) {
      backend = new Backend(folder, this.extensionPath, this.log);
      this.byFolder.set(key, backend);
      this.created.fire(backend);
    }
    return backend;
  }

  /** Reconnect to the daemons that outlived the last window (no daemon is started). */
  async reconnectLive(): Promise<void> {
    for (const folder of vscode.workspace.workspaceFolders ?? []) {
      const remote = readSettings(folder.uri).backend !== "";
      if (!remote && folder.uri.scheme === "file" && liveConnection(realpathSync(folder.uri.fsPath)) !== undefined) {
        await this.of(folder)
          .connect()
          .catch((err) => this.log.warn(`reconnecting to the daemon of ${folder.name}: ${String(err)}`));
      }
    }
  }

  /** The backend of the active editor's folder, else of the first folder. */
  current(): Backend {
    const uri = vscode.window.activeTextEditor?.document.uri;
    const folder = (uri && vscode.workspace.getWorkspaceFolder(uri)) ?? vscode.workspace.workspaceFolders?.[0];
    if (folder === undefined) {
      throw new UserError("open a folder first: Hot Swap runs the scripts of a workspace folder.");
    }
    return this.of(folder);
  }

  dispose(): void {
    this.byFolder.forEach((backend) => backend.dispose());
    this.byFolder.clear();
    this.created.dispose();
  }
}

/** "Restart Backend": a fresh daemon (warm objects go), told in the status bar. */
export async function restartBackend(backends: Backends, status: StatusBar): Promise<void> {
  status.set("restarting", "backend");
  try {
    const connection = await backends.current().restart();
    status.set("idle");
    void vscode.window.showInformationMessage(`Hot Swap: the backend restarted (pid ${connection.hello.daemon_pid}).`);
  } catch (err) {
    status.set("offline");
    throw err;
  }
}

/** "Show Backend Log": .hotswap/daemon.log of a local daemon, else this window's log. */
export async function showBackendLog(backends: Backends, log: vscode.LogOutputChannel): Promise<void> {
  const file = backends.current().logFile();
  if (file === undefined) {
    log.show();
    return;
  }
  await vscode.window.showTextDocument(vscode.Uri.file(file), { preview: true });
}
