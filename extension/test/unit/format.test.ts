/** What the terminal shows around a run, and stream bytes turned into terminal text. */

import assert from "node:assert/strict";
import { test } from "node:test";
import { TerminalText, describeWarm, footer, formatBytes, header, notice } from "../../src/node/format";
import { attachConfiguration, runEnvironment, runRequest } from "../../src/node/launch";

const plain = (text: string) => text.replace(/\x1b\[[0-9;]*m/g, "");

test("the header names the entry, its arguments, the warm objects and the time to start", () => {
  const text = plain(
    header({ entry: "train.py", args: ["--size", "tiny model"], warmKeys: ["gpt2"], startSeconds: 0.042, debug: false }),
  );
  assert.equal(text, "▶ running train.py --size 'tiny model' · warm: gpt2 · started in 42 ms\r\n");
});

test("the header ends with the words the terminal links to the Metrics view", () => {
  const info = { entry: "train.py", args: [], warmKeys: [], startSeconds: 0.5, debug: false, metricsLink: "show metrics" };
  assert.equal(plain(header(info)), "▶ running train.py · nothing warm yet · started in 500 ms · show metrics\r\n");
});

test("the footer gives the exit code, the duration, what was reused, and why a run stopped", () => {
  const ok = { exitCode: 0, duration: 1.5, reason: "exited", message: "", warmReused: ["gpt2"], warmLost: false };
  assert.equal(plain(footer(ok)), "■ exit code 0 · 1.50 s · reused: gpt2\r\n\r\n");
  const crashed = { ...ok, exitCode: 137, reason: "crashed", message: "the worker was killed; restarted", warmReused: [] };
  assert.equal(plain(footer(crashed)), "■ crashed (exit code 137) · 1.50 s\r\nthe worker was killed; restarted\r\n\r\n");
});

test("the footer's memory line: the run's peak, what it left held, and the largest survivors", () => {
  const ok = { exitCode: 0, duration: 1.5, reason: "exited", message: "", warmReused: [], warmLost: false };
  const memory = { run_peak_rss: 3 * 1024 ** 3, rss_beyond_warm: 300 * 1024 ** 2 };
  const survivor = { type: "torch.Tensor", bytes: 32 * 1024 ** 2, detail: "float32[8388608] cpu", held_by: "lib.CACHE['x']" };
  assert.equal(
    plain(footer({ ...ok, memory, survivors: [survivor, { ...survivor, held_by: null }] })),
    "■ exit code 0 · 1.50 s\r\nmemory: peak 3.0 GiB · 300.0 MiB held beyond warm objects\r\n" +
      "left alive: torch.Tensor float32[8388608] cpu, 32.0 MiB, held by lib.CACHE['x']\r\n" +
      "left alive: torch.Tensor float32[8388608] cpu, 32.0 MiB\r\n\r\n",
  );
  const grew = { ...memory, rss_left: 1.5 * 1024 ** 2 };
  assert.match(plain(footer({ ...ok, memory: grew })), /· 300\.0 MiB held beyond warm objects \(\+1\.5 MiB by this run\)\r\n/);
  const shrank = { ...memory, rss_left: -(30 * 1024 ** 2) };
  assert.match(plain(footer({ ...ok, memory: shrank })), /\(-30\.0 MiB by this run\)\r\n/);
  const cuda = { ...memory, run_peak_cuda_allocated: 2 * 1024 ** 3, cuda_beyond_warm: 0, cuda_reserved: 1024 ** 3 };
  assert.match(plain(footer({ ...ok, memory: cuda })), /· cuda peak 2\.0 GiB, 0 B beyond warm, 1\.0 GiB reserved\r\n/);
});

test("a notice is a header line of its own colour, never glued to the script's output", () => {
  const updated = notice("updated", "warm 'net': Net.forward updated in place");
  assert.equal(plain(updated), "↻ warm 'net': Net.forward updated in place\r\n");
  assert.notEqual(updated, plain(updated), "coloured");
  assert.equal(plain(notice("rebuilt", "warm 'net' rebuilt: Net.__init__ changed", true)), "\r\n↻ warm 'net' rebuilt: Net.__init__ changed\r\n");
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

test("rank output: rank 0 as it comes, other ranks' lines prefixed at line starts, once", () => {
  const text = new TerminalText();
  const bytes = (s: string) => Buffer.from(s, "utf8");
  assert.equal(text.write("stdout", bytes("step 1"), 0), "step 1");
  assert.equal(text.write("stdout", bytes("lo"), 1), "");
  assert.equal(text.write("stdout", bytes("ss 2\nnext"), 1), "[rank1]: loss 2\r\n");
  // stderr in red, as for a plain run; torch's own [rank2]: prefix is not doubled
  assert.equal(text.write("stderr", bytes("[rank2]: ValueError: x\n"), 2), "\x1b[31m[rank2]: ValueError: x\x1b[39m\r\n");
  assert.equal(text.write("stdout", bytes(" done\n"), undefined), " done\r\n");
  assert.equal(text.flush(), "[rank1]: next\r\n");
});

test("rank output filtered to one rank drops the others", () => {
  const text = new TerminalText(1);
  assert.equal(text.write("stdout", Buffer.from("zero\n"), 0), "");
  assert.equal(text.write("stdout", Buffer.from("one\n"), 1), "[rank1]: one\r\n");
  assert.equal(text.write("stdout", Buffer.from("plain\n")), "plain\r\n");
});

test("the run request carries nproc_per_node only when the user chose a number of ranks", () => {
  const spec = { root: "/w", entry: "/w/t.py", args: [], cwd: "/w", env: {}, debug: false, justMyCode: true };
  assert.equal(runRequest(spec, "s", {}, "r").nproc_per_node, undefined);
  assert.equal(runRequest({ ...spec, nprocPerNode: 2 }, "s", {}, "r").nproc_per_node, 2);
});
