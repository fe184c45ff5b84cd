/**
 * The client-facing message types of backend/protocol.py: kinds, fields and their wire types,
 * and the version (a unit test compares them with Python's). No vscode, no zeromq.
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
