/**
 * Starting a run, the one way every path does it (run, debug, rerun on save): sync the saved
 * workspace, send `run` with that state, and sync once more if another client moved it.
 */

import { LaunchSpec, runRequest } from "./launch";
import { Bodies, DaemonError } from "./protocol";
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

/** Sync, then run; on `resync` (the daemon's state moved under us) sync and run once more. */
export async function syncThenRun(
  target: RunTarget,
  spec: LaunchSpec,
  env: NodeJS.ProcessEnv,
  onSynced: (synced: SyncResult) => void = () => undefined,
): Promise<StartedRun> {
  for (let attempt = 1; ; attempt++) {
    const synced = await target.sync.sync();
    onSynced(synced);
    try {
      const reply = await target.transport.request("run", runRequest(spec, synced.state, env));
      return { reply, synced };
    } catch (err) {
      if (!(err instanceof DaemonError && err.ename === "resync") || attempt > 1) {
        throw err;
      }
    }
  }
}
