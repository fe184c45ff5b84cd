/**
 * protocol.ts mirrors backend/protocol.py: the client-facing message types, every nested record,
 * every error name and the version are those of `spec_json()`; validation checks nested records.
 */

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as path from "node:path";
import { test } from "node:test";
import { ERRORS, MESSAGE_TYPES, PROTOCOL_VERSION, ProtocolError, RECORDS, validate } from "../../src/node/protocol";
import { PYTHON, REPO, python } from "../helpers";

interface PythonSpec {
  version: string;
  messages: Record<string, { kind: string; fields: Record<string, unknown> }>;
  records: Record<string, Record<string, unknown>>;
  errors: Record<string, string>;
}

const PY: PythonSpec = JSON.parse(python("import json; from hotswap.protocol import spec_json; print(json.dumps(spec_json()))"));
const plain = (value: unknown): unknown => JSON.parse(JSON.stringify(value));

test("protocolSpec.ts has the version and exactly the client-facing message types of spec_json()", () => {
  assert.equal(PROTOCOL_VERSION, PY.version);
  const clientFacing = Object.fromEntries(
    Object.entries(PY.messages).filter(([, spec]) => ["request", "reply", "event"].includes(spec.kind)),
  );
  assert.ok(Object.keys(clientFacing).length < Object.keys(PY.messages).length, "the worker link stays out");
  const ours = plain(MESSAGE_TYPES) as PythonSpec["messages"];
  assert.deepEqual(Object.keys(ours).sort(), Object.keys(clientFacing).sort());
  for (const [type, spec] of Object.entries(clientFacing)) {
    assert.deepEqual(ours[type], spec, `message type ${type} (run \`npm run protocol\`)`);
  }
});

test("protocolSpec.ts has every record and every error name of spec_json()", () => {
  assert.deepEqual(plain(RECORDS), PY.records, "records (run `npm run protocol`)");
  assert.deepEqual(plain(ERRORS), PY.errors, "error names (run `npm run protocol`)");
  for (const ename of ["internal", "not_a_request", "resync", "bad_run_id"]) {
    assert.ok(ename in ERRORS, ename);
  }
});

test("protocolSpec.ts is exactly what the generator writes from spec_json() (no hand edits)", () => {
  const script = path.join(REPO, "extension", "scripts", "protocol.mjs");
  const result = spawnSync(process.execPath, [script, "--check"], { encoding: "utf8", env: { ...process.env, HOTSWAP_PYTHON: PYTHON } });
  assert.equal(result.status, 0, result.stdout + result.stderr);
});

function envelope(type: string, body: Record<string, unknown>): Record<string, unknown> {
  return { v: PROTOCOL_VERSION, id: "0".repeat(32), type, ts: 1.5, parent: null, body };
}

function ename(msg: unknown): string {
  try {
    validate(msg);
    return "valid";
  } catch (err) {
    assert.ok(err instanceof ProtocolError);
    return err.ename;
  }
}

/** What Python's validate says of the same message: "valid" or its ename. */
function pythonEname(msg: Record<string, unknown>): string {
  return python(
    "import json, sys\nfrom hotswap.protocol import ProtocolError, validate\n" +
      "try:\n    validate(json.load(sys.stdin)); print('valid')\nexcept ProtocolError as e:\n    print(e.ename)",
    JSON.stringify(msg),
  ).trim();
}

test("validate checks bodies as Python does: a flag is not a count, a count is whole", () => {
  const started = { run_id: "r", entry: "a.py", worker: 0, worker_pid: 1, warm_keys: [], path_mappings: [] };
  assert.equal(ename(envelope("run_started", started)), "valid");
  assert.equal(ename(envelope("run_started", { ...started, worker: true })), "malformed");
  assert.equal(ename(envelope("run_started", { ...started, worker: 0.5 })), "malformed");
  assert.equal(ename(envelope("cancel", { run_id: null })), "valid");
  assert.equal(ename(envelope("stream", { run_id: "r", stream: "stdout", seq: 1, data: "text" })), "malformed");
  assert.equal(ename({ ...envelope("status", {}), ts: "now" }), "malformed");
  assert.equal(ename([1, 2]), "malformed");
});

const WARM = { key: "m", type: "GPT2", parameters: 10, bytes: 40, device: null, dtype: null, build_seconds: 1.5, hits: 2, reset: "pristine", snapshot_bytes: 0 };
const FINISHED = {
  run_id: "r",
  exit_code: 1,
  duration: 0.5,
  reason: "exited",
  error: { type: "ValueError", message: "bad", frames: [{ file: "a.py", line: 3, function: "main" }] },
  message: "",
  warm_reused: [],
  warm_lost: false,
};

/** Nested records, each with one field of each kind made wrong. */
const NESTED_CASES: Array<[string, Record<string, unknown>]> = [
  ["warm_changed", { worker: 0, warm: [WARM] }],
  ["warm_changed", { worker: 0, warm: [{ ...WARM, bytes: "40" }] }],
  ["warm_changed", { worker: 0, warm: [{ ...WARM, hits: true }] }],
  ["warm_changed", { worker: 0, warm: [{ ...WARM, device: 0 }] }],
  ["warm_changed", { worker: 0, warm: [(({ key: _key, ...rest }) => rest)(WARM)] }],
  ["warm_changed", { worker: 0, warm: ["m"] }],
  ["warm_changed", { worker: 0, warm: [WARM, { ...WARM, parameters: 1.5 }] }],
  ["run_finished", FINISHED],
  ["run_finished", { ...FINISHED, error: null }],
  ["run_finished", { ...FINISHED, error: { ...FINISHED.error, type: 1 } }],
  ["run_finished", { ...FINISHED, error: { ...FINISHED.error, frames: [{ file: "a.py", line: "3", function: "main" }] } }],
  ["run_finished", { ...FINISHED, error: { ...FINISHED.error, frames: [{ file: "a.py", function: "main" }] } }],
  ["run_finished", { ...FINISHED, error: { ...FINISHED.error, frames: "a.py:3" } }],
  ["run_started", { run_id: "r", entry: "a.py", worker: 0, worker_pid: 1, warm_keys: [], path_mappings: [{ localRoot: "/l", remoteRoot: "/r" }] }],
  ["run_started", { run_id: "r", entry: "a.py", worker: 0, worker_pid: 1, warm_keys: [], path_mappings: [{ localRoot: "/l" }] }],
  ["run_started", { run_id: "r", entry: "a.py", worker: 0, worker_pid: 1, warm_keys: [], path_mappings: [{ localRoot: "/l", remoteRoot: null }] }],
];

test("validate checks nested records and list items, and rejects each wrong one as Python does", () => {
  const ours = NESTED_CASES.map(([type, body]) => ename(envelope(type, body)));
  assert.deepEqual(ours, ["valid", ...Array(6).fill("malformed"), "valid", "valid", ...Array(4).fill("malformed"), "valid", "malformed", "malformed"]);
  const theirs = NESTED_CASES.map(([type, body]) => pythonEname(envelope(type, body)));
  assert.deepEqual(ours, theirs);
});

test("the sync policy of hello_reply is a record: each of its fields is checked", () => {
  const policy = JSON.parse(python("import json; from hotswap.sync import sync_policy; print(json.dumps(sync_policy(1024)))"));
  const hello = { protocol_version: PROTOCOL_VERSION, version: "0", features: [], daemon_pid: 1, workspace: "/w", sync_policy: policy };
  assert.equal(ename(envelope("hello_reply", hello)), "valid");
  for (const [name, value] of Object.entries(policy)) {
    const wrong = typeof value === "number" ? "1" : typeof value === "boolean" ? 0 : "not a list";
    const msg = envelope("hello_reply", { ...hello, sync_policy: { ...policy, [name]: wrong } });
    assert.equal(ename(msg), "malformed", `sync_policy.${name} = ${JSON.stringify(wrong)}`);
  }
  const { max_file_bytes: _dropped, ...partial } = policy;
  assert.equal(ename(envelope("hello_reply", { ...hello, sync_policy: partial })), "malformed");
});
