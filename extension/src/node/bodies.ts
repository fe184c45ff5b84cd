/**
 * The TypeScript bodies of the message types, checked by the compiler against their specs
 * (BODIES_MATCH_SPECS), and the envelope every message travels in.
 */

import type { MESSAGE_TYPES, MessageType } from "./protocolSpec";

export interface HelloBody {
  protocol_version: string;
  client: string;
}

export interface RunBody {
  entry: string;
  args: string[];
  cwd: string;
  env: Record<string, string>;
  queue?: boolean;
  root?: string;
  state?: string;
  debug?: boolean;
  wait?: boolean;
  just_my_code?: boolean;
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

export interface HelloReplyBody {
  protocol_version: string;
  features: string[];
  daemon_pid: number;
  workspace: string;
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

/** One warm object, as `warm_changed` and `status` describe it. */
export interface WarmEntry {
  key: string;
  type: string;
  parameters: number | null;
  bytes: number | null;
  device: string | null;
  build_seconds?: number;
  hits?: number;
}

export interface WorkerStatus {
  index: number;
  pid: number;
  state: string;
  warm: WarmEntry[];
  memory: Record<string, number | null>;
  run_id: string | null;
}

export interface StatusReplyBody {
  daemon: Record<string, unknown>;
  workers: WorkerStatus[];
  runs: Record<string, unknown>[];
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
}

export interface StreamBody {
  run_id: string;
  stream: "stdout" | "stderr";
  seq: number;
  data: Uint8Array;
}

export interface TracebackFrame {
  file: string;
  line: number;
  function: string;
}

export interface RunFinishedBody {
  run_id: string;
  exit_code: number;
  duration: number;
  reason: string;
  error: { type: string; message: string; frames: TracebackFrame[] } | null;
  message: string;
  warm_reused: string[];
  warm_lost: boolean;
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

export interface PathMapping {
  localRoot: string;
  remoteRoot: string;
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
  hello_reply: HelloReplyBody;
  run_reply: RunReplyBody;
  cancel_reply: CancelReplyBody;
  stdin_reply: StdinReplyBody;
  status_reply: StatusReplyBody;
  stop_reply: StopReplyBody;
  manifest_reply: ManifestReplyBody;
  sync_reply: SyncReplyBody;
  release_reply: ReleaseReplyBody;
  error: ErrorBody;
  run_started: RunStartedBody;
  stream: StreamBody;
  run_finished: RunFinishedBody;
  worker_restarted: WorkerRestartedBody;
  warm_changed: WarmChangedBody;
  debug_ready: DebugReadyBody;
  sync_progress: SyncProgressBody;
}

// The compiler checks that every body interface names exactly the fields of its spec.
type SameKeys<A, B> = [Exclude<keyof A, keyof B>, Exclude<keyof B, keyof A>] extends [never, never]
  ? true
  : false;
type BodiesMatch = {
  [K in MessageType]: SameKeys<Bodies[K], (typeof MESSAGE_TYPES)[K]["fields"]>;
}[MessageType];
export const BODIES_MATCH_SPECS: false extends BodiesMatch ? never : true = true;

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
