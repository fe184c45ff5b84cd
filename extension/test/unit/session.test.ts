/** Signing and verifying envelopes interoperates with backend/session.py, both ways. */

import assert from "node:assert/strict";
import { test } from "node:test";
import { PROTOCOL_VERSION, ProtocolError } from "../../src/node/protocol";
import { Session, makeMessage } from "../../src/node/session";
import { python } from "../helpers";

const KEY = "k".repeat(16) + "0123456789abcdef0123456789abcdef";

/** Frames of one message packed by Python's Session (hex), with bytes that are not UTF-8. */
function pythonFrames(ts = "time.time()"): Buffer[] {
  const out = python(
    "import json, time; from hotswap.protocol import make_message; from hotswap.session import Session\n" +
      "msg = make_message('stream', {'run_id': 'r1', 'stream': 'stdout', 'seq': 3, 'data': b'\\xff\\x00hi\\n'})\n" +
      `msg['ts'] = ${ts}\n` +
      `print(json.dumps([f.hex() for f in Session(${JSON.stringify(KEY)}).pack(msg)]))`,
  );
  return (JSON.parse(out) as string[]).map((hex) => Buffer.from(hex, "hex"));
}

/** What Python's Session.unpack makes of our frames: the message, or the refusal's ename. */
function pythonUnpack(frames: Buffer[]): Record<string, unknown> {
  const out = python(
    "import json, sys; from hotswap.session import Session; from hotswap.protocol import ProtocolError\n" +
      "frames = [bytes.fromhex(h) for h in json.load(sys.stdin)]\n" +
      `try: msg = Session(${JSON.stringify(KEY)}).unpack(frames)\n` +
      "except ProtocolError as exc: print(json.dumps({'refused': exc.ename}))\n" +
      "else: print(json.dumps(msg, default=lambda b: {'hex': b.hex()}))",
    JSON.stringify(frames.map((f) => f.toString("hex"))),
  );
  return JSON.parse(out) as Record<string, unknown>;
}

test("a message signed by Python's Session verifies and decodes here, bytes intact", () => {
  const msg = new Session(KEY).unpack(pythonFrames());
  assert.equal(msg.type, "stream");
  assert.equal(msg.v, PROTOCOL_VERSION);
  assert.equal(msg.parent, null);
  assert.deepEqual({ ...msg.body, data: Buffer.from(msg.body.data as Uint8Array) }, {
    run_id: "r1",
    stream: "stdout",
    seq: 3,
    data: Buffer.from([0xff, 0x00, 0x68, 0x69, 0x0a]),
  });
});

test("a message signed here verifies in Python, optional fields left out, bytes as bytes", () => {
  const msg = makeMessage("stdin", { run_id: "r1", data: Buffer.from([0, 1, 255]), eof: undefined });
  const decoded = pythonUnpack(new Session(KEY).pack(msg));
  assert.equal(decoded.id, msg.id);
  assert.deepEqual(decoded.body, { run_id: "r1", data: { hex: "0001ff" } });
});

test("Python refuses our message when the key differs", () => {
  const frames = new Session("another key of enough length").pack(makeMessage("status", {}));
  assert.deepEqual(pythonUnpack(frames), { refused: "bad_signature" });
});

function refusal(frames: Buffer[], session = new Session(KEY)): string {
  try {
    session.unpack(frames);
  } catch (err) {
    assert.ok(err instanceof ProtocolError);
    return err.ename;
  }
  return "accepted";
}

test("a tampered payload, a wrong key, a replay and a stale timestamp are refused", () => {
  const frames = pythonFrames();
  const tampered = Buffer.from(frames[1]);
  tampered[tampered.length - 1] ^= 1;
  assert.equal(refusal([frames[0], tampered]), "bad_signature");
  assert.equal(refusal(frames, new Session("not the daemon's key at all")), "bad_signature");
  const session = new Session(KEY);
  assert.equal(refusal(frames, session), "accepted");
  assert.equal(refusal(frames, session), "replayed");
  assert.equal(refusal(pythonFrames("time.time() - 301")), "replayed");
  assert.equal(refusal([frames[0]]), "malformed");
});

test("a signed message of an unknown type or missing a field is refused after the signature", () => {
  const session = new Session(KEY);
  const unknown = session.pack({ ...makeMessage("status", {}), type: "no_such_type" });
  assert.equal(refusal(unknown), "unknown_type");
  const missing = session.pack(makeMessage("run_reply", { run_id: "x" }));
  assert.equal(refusal(missing), "malformed");
  const newer = session.pack({ ...makeMessage("status", {}), v: "2.0" });
  assert.equal(refusal(newer), "version_mismatch");
});
