/**
 * hotswap's wire protocol as the extension speaks it: message types, bodies, the version.
 * Mirrors backend/protocol.py (a test checks it); no vscode, no zeromq.
 */

export const PROTOCOL_VERSION = "1.0";
export const PROTOCOL_MAJOR = Number(PROTOCOL_VERSION.split(".")[0]);

/** Python type names as backend/protocol.py declares them ("none" is NoneType). */
export type WireType = "str" | "int" | "float" | "bool" | "list" | "dict" | "bytes" | "none";
export type MessageKind = "request" | "reply" | "event";

export interface FieldSpec {
  readonly types: readonly WireType[];
  readonly required: boolean;
}

export interface MessageSpec {
  readonly kind: MessageKind;
  readonly fields: Readonly<Record<string, FieldSpec>>;
}

function f(...types: WireType[]): FieldSpec {
  return { types, required: true };
}

function optional(...types: WireType[]): FieldSpec {
  return { types, required: false };
}

/** The client-facing message types (the daemon ↔ worker ones never reach a client). */
export const MESSAGE_TYPES = {
  // -- requests from clients ----------------------------------------------------
  hello: { kind: "request", fields: { protocol_version: f("str"), client: f("str") } },
  run: {
    kind: "request",
    fields: {
      entry: f("str"),
      args: f("list"),
      cwd: f("str"),
      env: f("dict"),
      queue: optional("bool"),
      root: optional("str"),
      state: optional("str"),
      debug: optional("bool"),
      wait: optional("bool"),
      just_my_code: optional("bool"),
    },
  },
  manifest: { kind: "request", fields: { root: f("str") } },
  sync: {
    kind: "request",
    fields: {
      root: f("str"),
      base: f("str"),
      target: f("str"),
      files: f("list"),
      deleted: f("list"),
      transaction: f("str"),
      final: f("bool"),
      total_files: optional("int"),
      total_bytes: optional("int"),
    },
  },
  cancel: { kind: "request", fields: { run_id: optional("str", "none") } },
  stdin: { kind: "request", fields: { run_id: f("str"), data: f("bytes"), eof: optional("bool") } },
  status: { kind: "request", fields: {} },
  stop: { kind: "request", fields: {} },
  release: { kind: "request", fields: { keys: optional("list", "none") } },
  // -- replies (type is "<request>_reply", or "error") --------------------------
  hello_reply: {
    kind: "reply",
    fields: {
      protocol_version: f("str"),
      features: f("list"),
      daemon_pid: f("int"),
      workspace: f("str"),
    },
  },
  run_reply: { kind: "reply", fields: { run_id: f("str"), queued: f("bool") } },
  cancel_reply: { kind: "reply", fields: { cancelled: f("list") } },
  stdin_reply: { kind: "reply", fields: { accepted: f("bool") } },
  status_reply: { kind: "reply", fields: { daemon: f("dict"), workers: f("list"), runs: f("list") } },
  stop_reply: { kind: "reply", fields: { stopping: f("bool") } },
  manifest_reply: {
    kind: "reply",
    fields: { state: f("str"), mode: f("str"), files: f("dict"), daemon_root: f("str") },
  },
  sync_reply: {
    kind: "reply",
    fields: { state: f("str"), mode: f("str"), applied: f("bool"), elapsed_ms: f("int", "float") },
  },
  release_reply: { kind: "reply", fields: { released: f("list") } },
  error: { kind: "reply", fields: { ename: f("str"), evalue: f("str"), hint: optional("str") } },
  // -- events -------------------------------------------------------------------
  run_started: {
    kind: "event",
    fields: {
      run_id: f("str"),
      entry: f("str"),
      worker: f("int"),
      worker_pid: f("int"),
      warm_keys: f("list"),
    },
  },
  stream: {
    kind: "event",
    fields: { run_id: f("str"), stream: f("str"), seq: f("int"), data: f("bytes") },
  },
  run_finished: {
    kind: "event",
    fields: {
      run_id: f("str"),
      exit_code: f("int"),
      duration: f("int", "float"),
      reason: f("str"),
      error: f("dict", "none"),
      message: f("str"),
      warm_reused: f("list"),
      warm_lost: f("bool"),
    },
  },
  worker_restarted: {
    kind: "event",
    fields: { worker: f("int"), pid: f("int"), reason: f("str"), warm_lost: f("list") },
  },
  warm_changed: { kind: "event", fields: { worker: f("int"), warm: f("list") } },
  debug_ready: {
    kind: "event",
    fields: {
      run_id: f("str", "none"),
      worker: f("int"),
      host: f("str"),
      port: f("int"),
      path_mappings: f("list"),
      just_my_code: f("bool"),
      wait: f("bool"),
      attached: optional("bool"),
    },
  },
  sync_progress: {
    kind: "event",
    fields: {
      transaction: f("str"),
      files_done: f("int"),
      files_total: f("int"),
      bytes_done: f("int"),
      bytes_total: f("int"),
    },
  },
} as const satisfies Record<string, MessageSpec>;

export type MessageType = keyof typeof MESSAGE_TYPES;

// -- bodies -------------------------------------------------------------------------

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
  /** "pristine" (put back before every run) or "keep". */
  reset?: string;
  /** Host memory held to put the object back. */
  snapshot_bytes?: number;
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

// -- validation ---------------------------------------------------------------------

export class ProtocolError extends Error {
  constructor(
    readonly ename: string,
    message: string,
    readonly hint = "",
  ) {
    super(message);
    this.name = "ProtocolError";
  }
}

/** The daemon's `.hotswap/connection.json` (docs/protocol.md). */
export interface ConnectionInfo {
  address: string;
  key: string;
  pid: number;
  protocol_version: string;
  signature_scheme?: string;
  workspace?: string;
  started?: number;
}

/** The daemon answered a request with an `error`. */
export class DaemonError extends Error {
  constructor(
    readonly ename: string,
    readonly evalue: string,
    readonly hint = "",
  ) {
    super(hint ? `${evalue} (${hint})` : evalue);
    this.name = "DaemonError";
  }
}

/** No answer came in time, or the connection was closed while waiting. */
export class DaemonUnavailable extends Error {
  constructor(message: string) {
    super(message);
    this.name = "DaemonUnavailable";
  }
}

/** Throw ProtocolError("version_mismatch") unless `version` has our major version. */
export function checkVersion(version: unknown): void {
  const major = typeof version === "string" ? version.split(".")[0] : "";
  if (!/^\d+$/.test(major)) {
    throw new ProtocolError("version_mismatch", `bad protocol version ${String(version)}`);
  }
  if (Number(major) !== PROTOCOL_MAJOR) {
    throw new ProtocolError(
      "version_mismatch",
      `protocol version mismatch: the daemon speaks ${String(version)}, this extension speaks ${PROTOCOL_VERSION}`,
      "install the same hotswap release as the extension, then restart the backend",
    );
  }
}

const ENVELOPE: Record<string, readonly WireType[]> = {
  v: ["str"],
  id: ["str"],
  type: ["str"],
  ts: ["int", "float"],
  parent: ["str", "none"],
  body: ["dict"],
};

/** Check an envelope and its body against MESSAGE_TYPES, as backend/protocol.py does. */
export function validate(msg: unknown): Message {
  if (!isMap(msg)) {
    throw new ProtocolError("malformed", "a message must be a map");
  }
  for (const [name, types] of Object.entries(ENVELOPE)) {
    if (!(name in msg)) {
      throw new ProtocolError("malformed", `message lacks the envelope field '${name}'`);
    }
    if (!isOfType(msg[name], types)) {
      throw new ProtocolError("malformed", `envelope field '${name}' has the wrong type`);
    }
  }
  checkVersion(msg.v);
  const spec: MessageSpec | undefined = (MESSAGE_TYPES as Record<string, MessageSpec>)[msg.type as string];
  if (spec === undefined) {
    throw new ProtocolError("unknown_type", `unknown message type '${String(msg.type)}'`);
  }
  const body = msg.body as Record<string, unknown>;
  for (const [name, field] of Object.entries(spec.fields)) {
    if (!(name in body)) {
      if (field.required) {
        throw new ProtocolError("malformed", `${String(msg.type)}: missing field '${name}'`);
      }
      continue;
    }
    if (!isOfType(body[name], field.types)) {
      throw new ProtocolError(
        "malformed",
        `${String(msg.type)}: field '${name}' must be ${field.types.join(" or ")}`,
      );
    }
  }
  return msg as unknown as Message;
}

function isMap(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value) && !(value instanceof Uint8Array);
}

function isOfType(value: unknown, types: readonly WireType[]): boolean {
  return types.some((type) => isWireType(value, type));
}

function isWireType(value: unknown, type: WireType): boolean {
  switch (type) {
    case "str":
      return typeof value === "string";
    case "int":
      return typeof value === "number" && Number.isInteger(value);
    case "float":
      return typeof value === "number";
    case "bool":
      return typeof value === "boolean";
    case "list":
      return Array.isArray(value);
    case "dict":
      return isMap(value);
    case "bytes":
      return value instanceof Uint8Array;
    case "none":
      return value === null;
  }
}
