/**
 * A workspace's daemon as files and processes: its connection file, whether its pid lives,
 * starting `hotswap serve` detached, and its log. No vscode here.
 */

import { ChildProcess, spawn } from "node:child_process";
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, watch } from "node:fs";
import * as path from "node:path";
import type { ConnectionInfo } from "./protocol";

export const STATE_DIR = ".hotswap";
export const CONNECTION_FILE = "connection.json";
export const DAEMON_LOG = "daemon.log";
export const START_TIMEOUT_MS = 60_000;

export function stateDir(root: string): string {
  return path.join(root, STATE_DIR);
}

export function connectionPath(root: string): string {
  return path.join(stateDir(root), CONNECTION_FILE);
}

export function daemonLogPath(root: string): string {
  return path.join(stateDir(root), DAEMON_LOG);
}

export class ConnectionFileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ConnectionFileError";
  }
}

/** The daemon exited at start or never wrote its connection file. */
export class DaemonStartError extends Error {
  constructor(
    message: string,
    readonly logTail: string,
    readonly exitCode: number | null = null,
  ) {
    super(message);
    this.name = "DaemonStartError";
  }
}

export function readConnection(file: string): ConnectionInfo {
  let data: unknown;
  try {
    data = JSON.parse(readFileSync(file, "utf8"));
  } catch (err) {
    const missing = (err as NodeJS.ErrnoException).code === "ENOENT";
    throw new ConnectionFileError(missing ? `no connection file at ${file}` : `cannot read ${file}: ${String(err)}`);
  }
  if (typeof data !== "object" || data === null) {
    throw new ConnectionFileError(`${file} does not hold a JSON object; delete it`);
  }
  for (const key of ["address", "key", "pid", "protocol_version"]) {
    if (!(key in data)) {
      throw new ConnectionFileError(`${file} lacks '${key}'; delete it`);
    }
  }
  return data as ConnectionInfo;
}

export function pidAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) {
    return false;
  }
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * Whether `pid` is a live `hotswap serve`: not a zombie, nor another process that was given
 * the pid of a dead daemon (a stale connection file would cost a handshake timeout). Reads
 * /proc as the CLI does (backend/client.py daemon_alive); without /proc the handshake tells.
 */
export function daemonAlive(pid: number, proc = "/proc"): boolean {
  if (!pidAlive(pid)) {
    return false;
  }
  let argv: string[];
  let state: string;
  try {
    argv = readFileSync(`${proc}/${pid}/cmdline`, "utf8").split("\0");
    state = readFileSync(`${proc}/${pid}/stat`, "utf8").split(")").pop()?.trim().split(" ")[0] ?? "";
  } catch {
    return !existsSync(proc); // gone meanwhile; or no /proc at all (not Linux)
  }
  return argv.includes("serve") && state !== "Z";
}

/**
 * `<python> -m hotswap serve --workspace <root>` in its own session, its output appended to
 * .hotswap/daemon.log: detached, so the warm model outlives this window (and a dropped SSH link).
 */
export function startDaemon(python: string, root: string, env: NodeJS.ProcessEnv = process.env): ChildProcess {
  mkdirSync(stateDir(root), { recursive: true });
  const log = openSync(daemonLogPath(root), "a");
  try {
    const child = spawn(python, ["-m", "hotswap", "serve", "--workspace", root], {
      cwd: root,
      env,
      detached: true,
      stdio: ["ignore", log, log],
    });
    child.unref();
    return child;
  } finally {
    closeSync(log);
  }
}

/**
 * Resolve with the connection file `child` writes; reject with DaemonStartError (and the
 * log's tail) if it exits first or writes nothing within `timeoutMs`.
 */
export function waitForConnection(root: string, child: ChildProcess, timeoutMs = START_TIMEOUT_MS): Promise<ConnectionInfo> {
  return new Promise((resolve, reject) => {
    mkdirSync(stateDir(root), { recursive: true });
    const watcher = watch(stateDir(root));
    const finish = (error: Error | undefined, info?: ConnectionInfo): void => {
      watcher.close();
      clearTimeout(timer);
      child.off("exit", onExit);
      child.off("error", onError);
      if (error !== undefined) {
        reject(error);
      } else {
        resolve(info as ConnectionInfo);
      }
    };
    const check = (): void => {
      try {
        const info = readConnection(connectionPath(root));
        if (info.pid === child.pid) {
          finish(undefined, info);
        }
      } catch {
        // not written yet, or half-way through its atomic rename
      }
    };
    const onExit = (code: number | null, signal: string | null): void => {
      check(); // it may have written the file and stopped at once
      const how = signal ? `was killed by ${signal}` : `exited with code ${code}`;
      finish(new DaemonStartError(`the hotswap daemon ${how} at start`, logTail(root), code));
    };
    const onError = (err: Error): void =>
      finish(new DaemonStartError(`cannot start the hotswap daemon: ${err.message}`, logTail(root)));
    const timer = setTimeout(
      () => finish(new DaemonStartError(`the hotswap daemon did not start within ${timeoutMs / 1000}s`, logTail(root))),
      timeoutMs,
    );
    watcher.on("change", check);
    watcher.on("error", () => undefined);
    child.on("exit", onExit);
    child.on("error", onError);
    check();
  });
}

/** Wait (bounded) until `pid` has exited: a non-child process offers no exit event. */
export async function waitForExit(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (pidAlive(pid)) {
    if (Date.now() > deadline) {
      return false;
    }
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  return true;
}

/** The last lines of .hotswap/daemon.log, for a message about a daemon that did not start. */
export function logTail(root: string, lines = 20): string {
  const file = daemonLogPath(root);
  if (!existsSync(file)) {
    return `(no log at ${file})`;
  }
  try {
    const tail = readFileSync(file, "utf8").trimEnd().split("\n").slice(-lines);
    return `Last lines of ${file}:\n${tail.map((line) => `  ${line}`).join("\n")}`;
  } catch (err) {
    return `(cannot read ${file}: ${String(err)})`;
  }
}
