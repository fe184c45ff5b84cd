/**
 * Syncing in the background on save: a saved file starts a sync of its workspace (debounced;
 * only what changed travels), whether or not the save reruns anything, so a run or a debug
 * session that follows starts with nothing left to send. No vscode here.
 */

import { SyncResult, WorkspaceSync } from "./sync";

/** The wait after the last save of a burst (Save All) before syncing. */
export const SYNC_DEBOUNCE_MS = 10;

export class BackgroundSync {
  private timer: NodeJS.Timeout | undefined;
  private latest: Promise<SyncResult | undefined> = Promise.resolve(undefined);
  /** Until the debounced sync starts: resolves with it. */
  private waiting: { promise: Promise<SyncResult | undefined>; resolve: (sync: Promise<SyncResult | undefined>) => void } | undefined;

  constructor(
    /** The connected folder's sync, or undefined when no daemon is connected (nothing to do). */
    private readonly target: () => WorkspaceSync | undefined,
    private readonly onError: (err: unknown) => void,
    private readonly debounceMs = SYNC_DEBOUNCE_MS,
  ) {}

  /** A file of the workspace was saved: sync once the burst of saves is over. */
  saved(): void {
    clearTimeout(this.timer);
    if (this.waiting === undefined) {
      let resolve!: (sync: Promise<SyncResult | undefined>) => void;
      const promise = new Promise<SyncResult | undefined>((r) => (resolve = r));
      this.waiting = { promise, resolve };
    }
    this.timer = setTimeout(() => {
      const waiting = this.waiting;
      this.timer = undefined;
      this.waiting = undefined;
      this.latest = this.syncNow();
      waiting?.resolve(this.latest);
    }, this.debounceMs);
  }

  /** The sync of the last save once it is done (undefined when none could run). */
  get settled(): Promise<SyncResult | undefined> {
    return this.waiting?.promise ?? this.latest;
  }

  dispose(): void {
    clearTimeout(this.timer);
  }

  private async syncNow(): Promise<SyncResult | undefined> {
    const sync = this.target();
    if (sync === undefined) {
      return undefined;
    }
    try {
      return await sync.sync(); // queued behind (and before) the syncs of runs: one at a time
    } catch (err) {
      this.onError(err);
      return undefined;
    }
  }
}
