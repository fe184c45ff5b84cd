/**
 * The boundary between VS Code and our code: handlers never throw into VS Code. Errors are
 * logged to the one "Hot Swap" log and told to the user with what to do next.
 */

import * as vscode from "vscode";
import { DaemonError, DaemonUnavailable } from "../node/protocol";

/** A button on an error message: its title and the command it runs. */
export interface NextStep {
  title: string;
  command: string;
  args?: unknown[];
}

/** An error the user can act on: a sentence, details for the log, and buttons. */
export class UserError extends Error {
  constructor(
    message: string,
    readonly steps: NextStep[] = [],
    readonly details = "",
  ) {
    super(message);
    this.name = "UserError";
  }
}

export const SHOW_LOG: NextStep = { title: "Show Backend Log", command: "hotswap.showLog" };
export const RESTART: NextStep = { title: "Restart Backend", command: "hotswap.restartBackend" };

/** Run `action`; log and show what went wrong instead of throwing. */
export async function guard<T>(log: vscode.LogOutputChannel, what: string, action: () => Promise<T> | T): Promise<T | undefined> {
  try {
    return await action();
  } catch (err) {
    report(log, what, err);
    return undefined;
  }
}

/** A command handler that never throws into VS Code. */
export function guarded<A extends unknown[]>(
  log: vscode.LogOutputChannel,
  what: string,
  action: (...args: A) => unknown,
): (...args: A) => Promise<void> {
  return async (...args: A) => {
    await guard(log, what, () => action(...args));
  };
}

export function report(log: vscode.LogOutputChannel, what: string, err: unknown): void {
  const error = explain(err);
  log.error(`${what}: ${error.message}${error.details ? "\n" + error.details : ""}`);
  if (err instanceof Error && !(err instanceof UserError) && err.stack) {
    log.debug(err.stack);
  }
  void vscode.window.showErrorMessage(`Hot Swap: ${error.message}`, ...error.steps.map((s) => s.title)).then((picked) => {
    const step = error.steps.find((s) => s.title === picked);
    if (step !== undefined) {
      void vscode.commands.executeCommand(step.command, ...(step.args ?? []));
    }
  });
}

/** Any error as a UserError: the daemon's own refusals carry their hint. */
export function explain(err: unknown): UserError {
  if (err instanceof UserError) {
    return err;
  }
  if (err instanceof DaemonError) {
    const steps = err.ename === "bad_signature" || err.ename === "version_mismatch" ? [RESTART] : [SHOW_LOG];
    return new UserError(`${err.evalue}${err.hint ? ` — ${err.hint}` : ""}`, steps);
  }
  if (err instanceof DaemonUnavailable) {
    return new UserError(`${err.message}. The backend may have stopped: restart it.`, [RESTART, SHOW_LOG]);
  }
  return new UserError(err instanceof Error ? err.message : String(err), [SHOW_LOG]);
}
