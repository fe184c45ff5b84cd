/** What the terminal shows around a run, and stream bytes turned into terminal text. */

import assert from "node:assert/strict";
import { test } from "node:test";
import { TerminalText, describeWarm, footer, formatBytes, header } from "../../src/node/format";
import { attachConfiguration, runEnvironment, runRequest } from "../../src/node/launch";

const plain = (text: string) => text.replace(/\x1b\[[0-9;]*m/g, "");

test("the header names the entry, its arguments, the warm objects and the time to start", () => {
  const text = plain(
    header({ entry: "train.py", args: ["--size", "tiny model"], warmKeys: ["gpt2"], startSeconds: 0.042, debug: false }),
  );
  assert.equal(text, "▶ running train.py --size 'tiny model' · warm: gpt2 · started in 42 ms\r\n");
});

test("the footer gives the exit code, the duration, what was reused, and why a run stopped", () => {
  const ok = { exitCode: 0, duration: 1.5, reason: "exited", message: "", warmReused: ["gpt2"], warmLost: false };
  assert.equal(plain(footer(ok)), "■ exit code 0 · 1.50 s · reused: gpt2\r\n\r\n");
  const crashed = { ...ok, exitCode: 137, reason: "crashed", message: "the worker was killed; restarted", warmReused: [] };
  assert.equal(plain(footer(crashed)), "■ crashed (exit code 137) · 1.50 s\r\nthe worker was killed; restarted\r\n\r\n");
});

test("stream bytes become terminal text: newlines as CRLF, characters split across chunks kept", () => {
  const text = new TerminalText();
  const euro = Buffer.from("€\n", "utf8");
  assert.equal(text.write("stdout", euro.subarray(0, 1)), "");
  assert.equal(plain(text.write("stderr", Buffer.from("err\r\n"))), "err\r\n");
  assert.equal(text.write("stdout", euro.subarray(1)), "€\r\n");
  assert.equal(text.flush(), "");
});

test("stderr is red, line by line, and stdout keeps the terminal's colour", () => {
  const text = new TerminalText();
  assert.equal(text.write("stderr", Buffer.from("one\ntwo\n")), "\x1b[31mone\x1b[39m\r\n\x1b[31mtwo\x1b[39m\r\n");
  assert.equal(text.write("stdout", Buffer.from("out\n")), "out\r\n");
  // An escape sequence of the script split across two chunks is kept whole, inside the red.
  assert.equal(text.write("stderr", Buffer.from("a\x1b[1")), "\x1b[31ma\x1b[39m");
  assert.equal(text.write("stderr", Buffer.from(";32mgreen\n")), "\x1b[31m\x1b[1;32mgreen\x1b[39m\r\n");
  assert.equal(text.flush(), "");
});

test("warm objects are summed for the status bar", () => {
  const entry = { key: "m", type: "GPT2", parameters: 1, device: "cpu", dtype: "torch.float32", bytes: 1536 * 1024 * 1024, build_seconds: 1, hits: 0, reset: "pristine", snapshot_bytes: 0 };
  assert.equal(describeWarm([entry, { ...entry, key: "n", bytes: 512 * 1024 * 1024 }]), "2 warm · 2.0 GiB");
  assert.equal(describeWarm([]), "");
  assert.equal(formatBytes(512), "512 B");
});

test("the run's environment drops the extension host's own variables and says it is a terminal", () => {
  const env = runEnvironment({ PATH: "/bin", ELECTRON_RUN_AS_NODE: "1", VSCODE_PID: "9", VSCODE_GIT_IPC_HANDLE: "h", X: undefined }, { SEED: "1" });
  assert.deepEqual(env, { PATH: "/bin", VSCODE_GIT_IPC_HANDLE: "h", TERM: "xterm-256color", COLORTERM: "truecolor", SEED: "1" });
  const spec = { root: "/w", entry: "/w/a.py", args: ["x"], cwd: "/w", env: {}, debug: true, justMyCode: false };
  const body = runRequest(spec, "s".repeat(64), {}, "r1");
  assert.deepEqual([body.debug, body.wait, body.just_my_code, body.state, body.root, body.run_id], [true, true, false, "s".repeat(64), "/w", "r1"]);
  assert.equal("queue" in runRequest({ ...spec, debug: false }, undefined, {}, "r2"), false);
});

test("a launch configuration becomes a debugpy attach to the announced port, with its mappings", () => {
  const ready = {
    run_id: "r1",
    worker: 0,
    host: "127.0.0.1",
    port: 5678,
    path_mappings: [{ localRoot: "/home/me/p", remoteRoot: "/srv/m" }],
    just_my_code: false,
    wait: true,
  };
  const launch = { type: "hotswap", name: "Debug", request: "launch", program: "a.py", args: [], preLaunchTask: "build" };
  const attach = attachConfiguration(launch, ready);
  assert.equal(attach.request, "attach");
  assert.deepEqual(attach.connect, { host: "127.0.0.1", port: 5678 });
  assert.equal(attach.justMyCode, false);
  assert.deepEqual(attach.pathMappings, ready.path_mappings);
  assert.equal(attach.preLaunchTask, "build");
  assert.equal("program" in attach, false);
  assert.equal(attach.hotswapRunId, "r1");
});
