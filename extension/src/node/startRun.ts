/**
 * Starting a run, the one way every path does it (run, debug, rerun on save): sync the saved
 * workspace, send `run` with that state and a run id the client chose, and sync once more if
 * another client moved the daemon's state in between.
 */

import { LaunchSpec, runRequest } from "./launch";
import { Bodies, DaemonError } from "./protocol";
import { newId } from "./session";
import { Requester, SyncResult, WorkspaceSync } from "./sync";

/** What starting a run needs of a connection. */
export interface RunTarget {
  transport: Requester;
  sync: WorkspaceSync;
}

export interface StartedRun {
  reply: Bodies["run_reply"];
  synced: SyncResult;
}

/**
 * A new run id. The client chooses it, so it can route the run's events (which may overtake
 * the reply) from the moment it sends the request, with no buffer.
 */
export function newRunId(): string {
  return newId();
}

/** Sync, then run as `runId`; on `resync` (the daemon's state moved under us) once more. */
export async function syncThenRun(
  target: RunTarget,
  spec: LaunchSpec,
  env: NodeJS.ProcessEnv,
  runId: string,
  onSynced: (synced: SyncResult) => void = () => undefined,
): Promise<StartedRun> {
  for (let attempt = 1; ; attempt++) {
    const synced = await target.sync.sync();
    onSynced(synced);
    try {
      const reply = await target.transport.request("run", runRequest(spec, synced.state, env, runId));
      return { reply, synced };
    } catch (err) {
      if (!(err instanceof DaemonError && err.ename === "resync") || attempt > 1) {
        throw err;
      }
    }
  }
}
