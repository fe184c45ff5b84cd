/**
 * The TypeScript bodies of the message types, checked by the compiler against their specs
 * (BODIES_MATCH_SPECS), and the envelope every message travels in.
 */

import type { FieldSpec, RecordName, WireType } from "./protocol";
import type { MESSAGE_TYPES, RECORDS } from "./protocolSpec";
import type {
  DaemonStatus,
  Memory,
  MetricSeries,
  OutputChunk,
  PathMapping,
  Records,
  RunError,
  RunRecord,
  RunStatus,
  Survivor,
  SyncPolicy,
  WarmEntry,
  WorkerStatus,
} from "./records";

export type * from "./records";

export interface HelloBody {
  protocol_version: string;
  client: string;
  /** Also receive run_started and run_finished of every other client's runs. */
  subscribe?: boolean;
  /** Also receive every run's live metrics_update events. */
  subscribe_metrics?: boolean;
  /** This client shows run_notice events (else they reach it on the run's stderr). */
  notices?: boolean;
}

export interface RunBody {
  entry: string;
  /** Chosen by the client, so the run's events are its own before the reply arrives. */
  run_id?: string;
  args: string[];
  cwd: string;
  env: Record<string, string>;
  queue?: boolean;
  root?: string;
  state?: string;
  debug?: boolean;
  wait?: boolean;
  just_my_code?: boolean;
  /** What `entry` names: a script (the default), a module (`python -m`) or code (`python -c`). */
  entry_kind?: "path" | "module" | "code";
  /** Rank workers, as torchrun's --nproc-per-node; 0: plain; absent: the workspace's. */
  nproc_per_node?: number | null;
  /** With debug: the rank that runs under debugpy (default 0). */
  debug_rank?: number;
}

export interface ManifestBody {
  root: string;
}

export interface SyncFile {
  path: string;
  sha256: string;
  data?: Uint8Array;
}

export interface SyncBody {
  root: string;
  base: string;
  target: string;
  files: SyncFile[];
  deleted: string[];
  transaction: string;
  final: boolean;
  total_files?: number;
  total_bytes?: number;
}

export interface CancelBody {
  run_id?: string | null;
}

export interface StdinBody {
  run_id: string;
  data: Uint8Array;
  eof?: boolean;
}

export type EmptyBody = Record<never, never>;

export interface ReleaseBody {
  keys?: string[] | null;
}

export interface LogsBody {
  /** The run whose output to read; the latest run without it. */
  run_id?: string | null;
  /** Send the run's later events to this client (a client that reconnects). */
  follow?: boolean;
}

export interface HelloReplyBody {
  protocol_version: string;
  /** The daemon's hotswap release. */
  version: string;
  features: string[];
  daemon_pid: number;
  workspace: string;
  sync_policy: SyncPolicy;
}

export interface RunReplyBody {
  run_id: string;
  queued: boolean;
}

export interface CancelReplyBody {
  cancelled: string[];
}

export interface StdinReplyBody {
  accepted: boolean;
}

export interface StatusReplyBody {
  daemon: DaemonStatus;
  workers: WorkerStatus[];
  runs: RunStatus[];
}

export interface StopReplyBody {
  stopping: boolean;
}

export interface ManifestReplyBody {
  state: string;
  mode: string;
  files: Record<string, string>;
  daemon_root: string;
}

export interface SyncReplyBody {
  state: string;
  mode: string;
  applied: boolean;
  elapsed_ms: number;
}

export interface ReleaseReplyBody {
  released: string[];
}

export interface LogsReplyBody {
  run_id: string;
  entry: string;
  state: string;
  output: OutputChunk[];
  /** The start of the output was dropped: only its last part is kept. */
  truncated: boolean;
  exit_code: number | null;
  reason: string | null;
  message: string;
}

export interface ErrorBody {
  ename: string;
  evalue: string;
  hint?: string;
}

export interface RunStartedBody {
  run_id: string;
  entry: string;
  worker: number;
  worker_pid: number;
  warm_keys: string[];
  /** How the daemon's paths map to the client's, for this run (the daemon maps, once). */
  path_mappings: PathMapping[];
  /** The run's cwd in the daemon's terms, so a subscriber knows which file it runs. */
  cwd?: string;
  entry_kind?: "path" | "module" | "code";
  /** A run on rank workers: their number (the world size). */
  ranks?: number;
}

export interface StreamBody {
  run_id: string;
  stream: "stdout" | "stderr";
  seq: number;
  data: Uint8Array;
  /** A run on rank workers: the rank that wrote it. */
  rank?: number;
}

export interface RunFinishedBody {
  run_id: string;
  exit_code: number;
  duration: number;
  reason: string;
  error: RunError | null;
  message: string;
  warm_reused: string[];
  warm_lost: boolean;
  /** The run's peak and what the worker holds after it beyond warm objects (the footer). */
  memory?: Memory;
  /** The largest objects the run left alive, when it left memory behind. */
  survivors?: Survivor[];
}

/** What hotswap did for a run (a warm object updated in place, rebuilt, served warm). */
export interface RunNoticeBody {
  run_id: string;
  /** "updated", "rebuilt", "served_warm", "reloaded", "evicted" or "note". */
  kind: string;
  text: string;
}

export interface WorkerRestartedBody {
  worker: number;
  pid: number;
  reason: string;
  warm_lost: string[];
}

export interface WarmChangedBody {
  worker: number;
  warm: WarmEntry[];
}

export interface DebugReadyBody {
  run_id: string | null;
  worker: number;
  host: string;
  port: number;
  path_mappings: PathMapping[];
  just_my_code: boolean;
  wait: boolean;
  /** A debugger was already attached when the run was announced (it starts at once). */
  attached?: boolean;
}

export interface RunsBody {
  /** Only the runs of this entry (as run_record's entry). */
  entry?: string;
  limit?: number;
}

export interface MetricsBody {
  /** A run id, or "last". */
  run_id: string;
}

export interface RunsReplyBody {
  runs: RunRecord[];
}

export interface MetricsReplyBody {
  run: RunRecord;
  series: MetricSeries[];
}

export interface MetricsUpdateBody {
  run_id: string;
  entry: string;
  series: MetricSeries[];
}

export interface SyncProgressBody {
  transaction: string;
  files_done: number;
  files_total: number;
  bytes_done: number;
  bytes_total: number;
}

/** The body of every message type: what `request` takes and what events carry. */
export interface Bodies {
  hello: HelloBody;
  run: RunBody;
  manifest: ManifestBody;
  sync: SyncBody;
  cancel: CancelBody;
  stdin: StdinBody;
  status: EmptyBody;
  stop: EmptyBody;
  release: ReleaseBody;
  runs: RunsBody;
  metrics: MetricsBody;
  logs: LogsBody;
  hello_reply: HelloReplyBody;
  run_reply: RunReplyBody;
  cancel_reply: CancelReplyBody;
  stdin_reply: StdinReplyBody;
  status_reply: StatusReplyBody;
  stop_reply: StopReplyBody;
  manifest_reply: ManifestReplyBody;
  sync_reply: SyncReplyBody;
  release_reply: ReleaseReplyBody;
  runs_reply: RunsReplyBody;
  metrics_reply: MetricsReplyBody;
  logs_reply: LogsReplyBody;
  error: ErrorBody;
  run_started: RunStartedBody;
  stream: StreamBody;
  run_finished: RunFinishedBody;
  run_notice: RunNoticeBody;
  worker_restarted: WorkerRestartedBody;
  warm_changed: WarmChangedBody;
  metrics_update: MetricsUpdateBody;
  debug_ready: DebugReadyBody;
  sync_progress: SyncProgressBody;
}

// -- the compiler checks every body and record against protocolSpec.ts ----------------------

type Fields = Readonly<Record<string, FieldSpec>>;
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
/** The TypeScript types a wire type admits. */
type Wire<T extends WireType> = {
  str: string;
  int: number;
  float: number;
  bool: boolean;
  list: readonly unknown[];
  dict: object;
  bytes: Uint8Array;
  none: null;
}[T];
/** The record a field's map (`record`) or list (`items`) holds, or never. */
type Nested<S extends FieldSpec> = S["record"] extends RecordName
  ? Records[S["record"]]
  : S["items"] extends RecordName
    ? Records[S["items"]][]
    : never;
/** A field's TypeScript type fits its spec: one of its wire types, and exactly its record. */
type FieldFits<V, S extends FieldSpec> = [Exclude<V, undefined>] extends [Wire<S["types"][number]>]
  ? [Nested<S>] extends [never]
    ? true
    : Same<Exclude<V, null | undefined>, Nested<S>>
  : false;
type OptionalKeys<T> = { [K in keyof T]-?: Record<never, never> extends Pick<T, K> ? K : never }[keyof T];
type SpecOptional<F extends Fields> = { [K in keyof F]: F[K]["required"] extends false ? K : never }[keyof F];
/** Same field names, the same ones optional, and every field's type fits. */
type Fits<T, F extends Fields> =
  Same<keyof T, keyof F> extends true
    ? Same<OptionalKeys<T>, SpecOptional<F>> extends true
      ? false extends { [K in keyof F & keyof T]: FieldFits<T[K], F[K]> }[keyof F & keyof T]
        ? false
        : true
      : false
    : false;
type Misfits<D, S extends { [K in keyof D]: Fields }> = { [K in keyof D]: Fits<D[K], S[K]> extends true ? never : K }[keyof D];

export type MessageType = keyof typeof MESSAGE_TYPES;
type MessageFields = { [K in MessageType]: (typeof MESSAGE_TYPES)[K]["fields"] };
/** A compile error here names the message type whose body does not fit its spec. */
export const BODIES_MATCH_SPECS: Same<keyof Bodies, MessageType> extends true
  ? [Misfits<Bodies, MessageFields>] extends [never]
    ? true
    : Misfits<Bodies, MessageFields>
  : "Bodies must name every message type, and only them" = true;
/** A compile error here names the record whose interface does not fit its spec. */
export const RECORDS_MATCH_SPECS: Same<keyof Records, RecordName> extends true
  ? [Misfits<Records, typeof RECORDS>] extends [never]
    ? true
    : Misfits<Records, typeof RECORDS>
  : "Records must name every record, and only them" = true;

export type RequestType = {
  [K in MessageType]: (typeof MESSAGE_TYPES)[K]["kind"] extends "request" ? K : never;
}[MessageType];
export type EventType = {
  [K in MessageType]: (typeof MESSAGE_TYPES)[K]["kind"] extends "event" ? K : never;
}[MessageType];
export type ReplyType<R extends RequestType> = `${R}_reply` & MessageType;

export interface Envelope<T extends string = string, B = Record<string, unknown>> {
  v: string;
  id: string;
  type: T;
  ts: number;
  parent: string | null;
  body: B;
}

export type Message = Envelope;
