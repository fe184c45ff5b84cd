/** protocol.ts mirrors backend/protocol.py: the same types, kinds, fields and flags. */

import assert from "node:assert/strict";
import { test } from "node:test";
import { MESSAGE_TYPES, PROTOCOL_VERSION, ProtocolError, validate } from "../../src/node/protocol";
import { python } from "../helpers";

interface PythonSpec {
  kind: string;
  fields: Record<string, { types: string[]; required: boolean }>;
}

function pythonProtocol(): { version: string; types: Record<string, PythonSpec> } {
  return JSON.parse(
    python(
      "import json; from hotswap import protocol as p\n" +
        "names = {str: 'str', int: 'int', float: 'float', bool: 'bool', list: 'list', dict: 'dict', bytes: 'bytes', type(None): 'none'}\n" +
        "types = {t: {'kind': s.kind, 'fields': {n: {'types': [names[x] for x in f.types], 'required': f.required} for n, f in s.fields.items()}} for t, s in p.MESSAGE_TYPES.items()}\n" +
        "print(json.dumps({'version': p.PROTOCOL_VERSION, 'types': types}))",
    ),
  );
}

test("protocol.ts declares exactly the client-facing message types of backend/protocol.py", () => {
  const py = pythonProtocol();
  assert.equal(PROTOCOL_VERSION, py.version);
  const clientFacing = Object.fromEntries(Object.entries(py.types).filter(([, spec]) => spec.kind !== "worker"));
  const ours = JSON.parse(JSON.stringify(MESSAGE_TYPES)) as Record<string, PythonSpec>;
  assert.deepEqual(Object.keys(ours).sort(), Object.keys(clientFacing).sort());
  for (const [type, spec] of Object.entries(clientFacing)) {
    assert.deepEqual(ours[type], spec, `message type ${type}`);
  }
});

function envelope(type: string, body: Record<string, unknown>): Record<string, unknown> {
  return { v: "1.0", id: "0".repeat(32), type, ts: 1.5, parent: null, body };
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

test("validate checks bodies as Python does: a flag is not a count, a count is whole", () => {
  const started = { run_id: "r", entry: "a.py", worker: 0, worker_pid: 1, warm_keys: [] };
  assert.equal(ename(envelope("run_started", started)), "valid");
  assert.equal(ename(envelope("run_started", { ...started, worker: true })), "malformed");
  assert.equal(ename(envelope("run_started", { ...started, worker: 0.5 })), "malformed");
  assert.equal(ename(envelope("cancel", { run_id: null })), "valid");
  assert.equal(ename(envelope("stream", { run_id: "r", stream: "stdout", seq: 1, data: "text" })), "malformed");
  assert.equal(ename({ ...envelope("status", {}), ts: "now" }), "malformed");
  assert.equal(ename([1, 2]), "malformed");
});
