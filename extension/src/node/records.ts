/**
 * The nested records of the protocol (RECORDS in backend/protocol.py) as TypeScript types; the
 * compiler checks them against protocolSpec.ts in bodies.ts, with the message bodies.
 */

/** One frame of a traceback, as the daemon cut it (our own frames removed). */
export interface Frame {
  file: string;
  line: number;
  function: string;
}

/** An exception a run ended with. */
export interface RunError {
  type: string;
  message: string;
  frames: Frame[];
}

/** One warm object, as `warm_changed` and `status` describe it. */
export interface WarmEntry {
  key: string;
  type: string;
  parameters: number | null;
  bytes: number;
  device: string | null;
  /** Of its parameters (a tensor's own); "mixed" when they differ. */
  dtype: string | null;
  build_seconds: number;
  hits: number;
  /** "pristine" (put back before every run) or "keep". */
  reset: string;
  /** Host memory held to put it back. */
  snapshot_bytes: number;
}

export interface Memory {
  rss?: number | null;
  cuda_allocated?: number;
  cuda_reserved?: number;
  /** Of the worker's last run: its peak, and what it left held beyond warm objects. */
  run_peak_rss?: number;
  rss_beyond_warm?: number;
  run_peak_cuda_allocated?: number;
  cuda_beyond_warm?: number;
}

export interface DebugEndpoint {
  host: string;
  port: number;
}

/** A daemon-side folder (`remoteRoot`) and the client's folder it stands for (`localRoot`). */
export interface PathMapping {
  localRoot: string;
  remoteRoot: string;
}

export interface DaemonStatus {
  pid: number;
  workspace: string;
  address: string;
  started: number;
  version: string;
  protocol_version: string;
  stopping: boolean;
}

export interface WorkerStatus {
  index: number;
  pid: number;
  state: string;
  started: number;
  warm: WarmEntry[];
  memory: Memory;
  run_id: string | null;
  debug: DebugEndpoint | null;
  /** A rank worker: the world size (its index is its rank). */
  ranks?: number;
}

export interface RunStatus {
  run_id: string;
  entry: string;
  state: string;
  requested: number;
  started: number | null;
  worker: number | null;
  exit_code?: number;
  reason?: string;
  duration?: number;
}

/** What the daemon syncs and how (hello_reply): clients follow it and keep no copy of their own. */
export interface SyncPolicy {
  max_file_bytes: number;
  chunk_bytes: number;
  /** Folder names never synced, at any depth. */
  ignored_dirs: string[];
  /** File name endings never synced. */
  ignored_suffixes: string[];
  /** Ignore files read at the workspace root. */
  ignore_files: string[];
  /** Ignore files read in every folder below the root too. */
  nested_ignore_files: string[];
  /** A folder holding one of these is a virtualenv: not synced. */
  venv_markers: string[];
  sync_symlinks: boolean;
}

/** Every record by its name in RECORDS. */
export interface Records {
  frame: Frame;
  error: RunError;
  warm_object: WarmEntry;
  memory: Memory;
  debug_endpoint: DebugEndpoint;
  path_mapping: PathMapping;
  status_daemon: DaemonStatus;
  status_worker: WorkerStatus;
  status_run: RunStatus;
  sync_policy: SyncPolicy;
}
