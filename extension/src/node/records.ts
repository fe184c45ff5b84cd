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
  /** How much rss_beyond_warm grew over the run (negative: it shrank). */
  rss_left?: number;
  run_peak_cuda_allocated?: number;
  cuda_beyond_warm?: number;
}

/** An object a run left alive beyond warm objects (the footer names the largest). */
export interface Survivor {
  /** "torch.Tensor", "numpy.ndarray". */
  type: string;
  bytes: number;
  /** "float32[4096, 1024] cpu". */
  detail: string;
  /** The module global (or an item or attribute of one) holding it, when found. */
  held_by: string | null;
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

/** hotswap.log's points from a worker (little-endian int64 steps, float64 values and times). */
export interface MetricBatch {
  name: string;
  steps: Uint8Array;
  values: Uint8Array;
  times: Uint8Array;
}

/** [step, value, time (Unix seconds)] */
export type MetricPoint = [number, number, number];

/** A series as the daemon keeps it: every `stride`-th of `count` points (a full copy adds min,
 * max and last). Live, only the points kept since the last event, unless `reset`. */
export interface MetricSeries {
  name: string;
  points: MetricPoint[];
  count: number;
  stride: number;
  reset: boolean;
  last: MetricPoint | null;
}

/** A run as the daemon keeps it in .hotswap/runs/. */
export interface RunRecord {
  run_id: string;
  /** The script's absolute path in the daemon's terms, or the module or code. */
  entry: string;
  entry_kind: string;
  args: string[];
  cwd: string;
  path_mappings: PathMapping[];
  started: number;
  state: string;
  duration: number | null;
  exit_code: number | null;
  reason: string | null;
  error: RunError | null;
  warm_reused: string[];
  previous: string | null;
  /** Workspace files changed since the previous run of the entry (null: unknown). */
  changed: string[] | null;
  changed_count: number;
  args_changed: boolean;
  last: Record<string, number | null>;
}

/** A piece of a run's kept output (the `logs` request), in the order the daemon read it. */
export interface OutputChunk {
  stream: "stdout" | "stderr";
  data: Uint8Array;
}

/** Every record by its name in RECORDS. */
export interface Records {
  frame: Frame;
  error: RunError;
  warm_object: WarmEntry;
  memory: Memory;
  survivor: Survivor;
  debug_endpoint: DebugEndpoint;
  path_mapping: PathMapping;
  status_daemon: DaemonStatus;
  status_worker: WorkerStatus;
  status_run: RunStatus;
  sync_policy: SyncPolicy;
  metric_batch: MetricBatch;
  metric_series: MetricSeries;
  run_record: RunRecord;
  output_chunk: OutputChunk;
}
