/**
 * The extension's client modules against a real daemon over real ZeroMQ: start it detached the
 * way backend.ts does, hello, sync a workspace, run, stdin, cancel, debug, mirror mode.
 * Every message received is validated against the protocol on the way in (session.ts).
 */

import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, realpathSync, rmSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { after, before, describe, test } from "node:test";
import { ChildProcess, spawn } from "node:child_process";
import { BackgroundSync } from "../../src/node/backgroundSync";
import { DaemonStartError, logTail, startDaemon, waitForConnection, waitForExit } from "../../src/node/daemon";
import { TerminalText } from "../../src/node/format";
import { LaunchSpec, attachConfiguration, runRequest } from "../../src/node/launch";
import { localPath } from "../../src/node/links";
import { Bodies, DaemonError, EventType, PROTOCOL_VERSION, ProtocolError } from "../../src/node/protocol";
import { newRunId, syncThenRun } from "../../src/node/startRun";
import { digestOf, sha256Bytes, WorkspaceSync } from "../../src/node/sync";
import { Session, makeMessage } from "../../src/node/session";
import { Transport } from "../../src/node/transport";
import { Router } from "zeromq";
import { PYTHON, python, tempTree, writeTree } from "../helpers";
import { DapClient } from "./dap";

const PYPROJECT = '[project]\nname = "scratch"\nversion = "0"\n\n[tool.hotswap]\ncancel_timeout = 2\nmax_file_mb = 1\n';
const RUN_EVENTS: EventType[] = ["run_started", "stream", "run_finished", "debug_ready"];
type RunEvent = { type: EventType; body: Bodies[EventType] };

/** Every run event a transport receives, and waiting for the ones of one run. */
class Recorder {
  readonly events: RunEvent[] = [];
  private readonly waiters = new Set<() => void>();
  private readonly stops: Array<() => void>;

  constructor(transport: Transport) {
    this.stops = RUN_EVENTS.map((type) =>
      transport.on(type, (body) => {
        this.events.push({ type, body });
        this.waiters.forEach((check) => check());
      }),
    );
  }

  of(runId: string): RunEvent[] {
    return this.events.filter((e) => (e.body as { run_id?: string | null }).run_id === runId);
  }

  output(runId: string, stream?: string): string {
    return this.of(runId)
      .filter((e) => e.type === "stream" && (stream === undefined || (e.body as Bodies["stream"]).stream === stream))
      .map((e) => Buffer.from((e.body as Bodies["stream"]).data).toString("utf8"))
      .join("");
  }

  /** The first event of `runId` of this type (and matching `where`), once it has arrived. */
  next<E extends EventType>(runId: string, type: E, where: (body: Bodies[E]) => boolean = () => true): Promise<Bodies[E]> {
    return new Promise((resolve) => {
      const check = (): void => {
        const found = this.of(runId).find((e) => e.type === type && where(e.body as Bodies[E]));
        if (found !== undefined) {
          this.waiters.delete(check);
          resolve(found.body as Bodies[E]);
        }
      };
      this.waiters.add(check);
      check();
    });
  }

  close(): void {
    this.stops.forEach((stop) => stop());
  }
}

function killGroup(child: ChildProcess | undefined): void {
  if (child?.pid !== undefined) {
    try {
      process.kill(-child.pid, "SIGKILL"); // the daemon and its runner worker share the group
    } catch {
      // already gone
    }
  }
}

describe("a real hotswap daemon", { timeout: 240_000 }, () => {
  let root: string;
  let daemon: ChildProcess | undefined;
  let transport: Transport;
  let recorder: Recorder;
  let sync: WorkspaceSync;
  const cleanup: string[] = [];

  before(async () => {
    root = realpathSync(
      tempTree({
        "pyproject.toml": PYPROJECT,
        ".gitignore": "outputs/\n",
        "hello.py":
          "import sys\nprint('hello from', __file__)\nprint('to stderr', file=sys.stderr)\n" +
          "name = input()\nprint('got', name)\nprint('rest', repr(sys.stdin.read()))\nsys.exit(3)\n",
        "sleeper.py": "import time\nprint('sleeping', flush=True)\ntime.sleep(120)\n",
        "debugme.py": "x = 41\nx += 1\nprint('debugged', x)\n",
        "logger.py": "import time, hotswap\nfor i in range(12):\n    hotswap.log({'loss': 1 / (i + 1)}, step=i)\n    time.sleep(0.05)\n",
        "ranks.py": "import os\nprint('rank', os.environ['RANK'], 'of', os.environ['WORLD_SIZE'])\n",
        "outputs/ignored.txt": "not synced\n",
      }),
    );
    cleanup.push(root);
    daemon = startDaemon(PYTHON, root);
    const info = await waitForConnection(root, daemon);
    assert.equal(info.pid, daemon.pid);
    transport = new Transport(info);
    recorder = new Recorder(transport);
    sync = new WorkspaceSync(transport, root, (await transport.hello("hotswap-ext-tests")).sync_policy);
  });

  after(() => {
    recorder?.close();
    transport?.close();
    killGroup(daemon);
    cleanup.forEach((dir) => rmSync(dir, { recursive: true, force: true }));
  });

  test("hello answers with the protocol version, the features and the daemon's pid", async () => {
    const hello = await transport.hello("hotswap-ext-tests");
    assert.equal(hello.protocol_version, PROTOCOL_VERSION);
    assert.equal(hello.daemon_pid, daemon?.pid);
    assert.equal(hello.workspace, root);
    for (const feature of ["run", "cancel", "stdin", "sync", "debug"]) {
      assert.ok(hello.features.includes(feature), `feature ${feature}`);
    }
    assert.equal(hello.version, python("import hotswap; print(hotswap.__version__)").trim());
  });

  test("the sync policy comes from the daemon: its max_file_mb = 1 skips a 2 MB file", async () => {
    const { sync_policy: policy } = await transport.hello("hotswap-ext-tests");
    assert.equal(policy.max_file_bytes, 1024 * 1024);
    const elsewhere = realpathSync(tempTree({ "small.py": "print(1)\n", "data/big.bin": "x".repeat(2 * 1024 * 1024) }));
    cleanup.push(elsewhere);
    const synced = await new WorkspaceSync(transport, elsewhere, policy).sync(); // mirrored: what travels
    assert.equal(synced.mode, "mirror");
    assert.deepEqual(synced.sent, ["small.py"]);
    assert.deepEqual(synced.skipped.map((s) => s.path), ["data/big.bin"]);
    assert.match(synced.skipped[0].reason, /2\.0 MB, over the 1 MB limit/);
  });

  test("a client of another major version is told so by name", async () => {
    await assert.rejects(transport.request("hello", { protocol_version: "2.0", client: "future" }), (err) => {
      assert.ok(err instanceof DaemonError);
      assert.equal(err.ename, "version_mismatch");
      assert.match(err.evalue, /2\.0/);
      return true;
    });
  });

  test("a client with the wrong key is refused", async () => {
    const stranger = new Transport({ ...transport.connection, key: "f".repeat(64) });
    try {
      await assert.rejects(stranger.hello("stranger"), (err) => err instanceof DaemonError && err.ename === "bad_signature");
    } finally {
      stranger.close();
    }
  });

  test("sync brings the daemon to the saved state, then sends only what changed", async () => {
    const first = await sync.sync();
    assert.equal(first.mode, "in_place");
    const expected = python(
      "import sys; from pathlib import Path; from hotswap.sync import scan, digest_of\n" +
        "files, _ = scan(Path(input()))\nprint(digest_of({p: e.sha256 for p, e in files.items()}))",
      root + "\n",
    ).trim();
    assert.equal(first.state, expected);
    assert.equal((await sync.sync()).sent.length, 0);
    writeFileSync(path.join(root, "extra.py"), "print('extra')\n");
    const second = await sync.sync();
    assert.deepEqual([second.sent, second.deleted], [["extra.py"], []]);
    unlinkSync(path.join(root, "extra.py"));
    const third = await sync.sync();
    assert.deepEqual([third.sent, third.deleted], [[], ["extra.py"]]);
    assert.equal(third.state, first.state);
  });

  test("a save is synced in the background, before any run: the run then has nothing to send", async () => {
    await sync.sync();
    const errors: unknown[] = [];
    const background = new BackgroundSync(() => sync, (err) => errors.push(err));
    writeFileSync(path.join(root, "saved.py"), "print('saved, then synced in the background')\n");
    background.saved();
    const synced = await background.settled;
    assert.deepEqual(errors, []);
    assert.deepEqual(synced?.sent, ["saved.py"], "only the saved file travelled");
    const manifest = await transport.request("manifest", { root });
    assert.equal(manifest.files["saved.py"], sha256(path.join(root, "saved.py")));
    assert.equal(manifest.state, synced?.state, "the daemon has the saved state before any run");
    const spec: LaunchSpec = { root, entry: path.join(root, "saved.py"), args: [], cwd: root, env: {}, debug: false, justMyCode: true };
    const runId = newRunId();
    const started = await syncThenRun({ transport, sync }, spec, process.env, runId);
    assert.deepEqual([started.synced.sent, started.synced.deleted], [[], []], "nothing left to send");
    await recorder.next(runId, "run_finished");
    assert.equal(recorder.output(runId, "stdout"), "saved, then synced in the background\n");
    background.dispose();
  });

  test("when another client moved the daemon's state, sync resyncs from the manifest", async () => {
    const other = new Transport(transport.connection);
    try {
      writeFileSync(path.join(root, "moved.py"), "print(1)\n");
      await new WorkspaceSync(other, root, sync.policy).sync(); // the daemon now holds moved.py; we don't know
      writeFileSync(path.join(root, "moved.py"), "print(2)\n");
      const result = await sync.sync();
      assert.ok(result.sent.includes("moved.py"));
      const files = Object.entries((await transport.request("manifest", { root })).files);
      assert.equal(result.state, digestOf(files));
    } finally {
      other.close();
      unlinkSync(path.join(root, "moved.py"));
      await sync.sync();
    }
  });

  /** Start `entry` as the extension does (syncThenRun), under a run id chosen here. */
  async function start(entry: string, extra: Partial<LaunchSpec> = {}): Promise<string> {
    const spec = { root, entry: path.join(root, entry), args: [], cwd: root, env: {}, debug: false, justMyCode: true, ...extra };
    const runId = newRunId();
    const { reply } = await syncThenRun({ transport, sync }, spec, process.env, runId);
    assert.equal(reply.run_id, runId);
    return runId;
  }

  test("the run id the client chose is the run's: in the reply and every event; a reused one is refused", async () => {
    const runId = newRunId();
    const spec = { root, entry: path.join(root, "debugme.py"), args: [], cwd: root, env: {}, debug: false, justMyCode: true };
    const finished = recorder.next(runId, "run_finished"); // listening before the request goes
    const { reply, synced } = await syncThenRun({ transport, sync }, spec, process.env, runId);
    assert.equal(reply.run_id, runId);
    assert.equal((await finished).exit_code, 0);
    assert.deepEqual(
      recorder.of(runId).map((e) => e.type).filter((t, i, all) => all.indexOf(t) === i),
      ["run_started", "stream", "run_finished"],
    );
    assert.equal(recorder.output(runId), "debugged 42\n");
    await assert.rejects(transport.request("run", runRequest(spec, synced.state, process.env, runId)), (err) => {
      assert.ok(err instanceof DaemonError);
      assert.equal(err.ename, "bad_run_id");
      return true;
    });
  });

  test("a run streams stdout and stderr, takes stdin, and finishes with the script's exit code", async () => {
    const runId = await start("hello.py");
    const started = await recorder.next(runId, "run_started");
    assert.equal(started.entry, path.join(root, "hello.py"));
    assert.deepEqual(started.path_mappings, []); // in place: the daemon's paths are ours
    await recorder.next(runId, "stream", (b) => b.stream === "stderr");
    await transport.request("stdin", { run_id: runId, data: Buffer.from("Ada\nmore") });
    await transport.request("stdin", { run_id: runId, data: Buffer.alloc(0), eof: true });
    const finished = await recorder.next(runId, "run_finished");
    assert.deepEqual([finished.exit_code, finished.reason], [3, "exited"]);
    assert.equal(recorder.output(runId, "stdout"), `hello from ${path.join(root, "hello.py")}\ngot Ada\nrest 'more'\n`);
    assert.equal(recorder.output(runId, "stderr"), "to stderr\n");
    const order = recorder.of(runId).map((e) => e.type);
    assert.equal(order[0], "run_started");
    assert.equal(order.at(-1), "run_finished");
    const seqs = recorder.of(runId).filter((e) => e.type === "stream").map((e) => (e.body as Bodies["stream"]).seq);
    assert.deepEqual(seqs, seqs.map((_, i) => i + 1));
  });

  test("cancel stops a sleeping run with exit code 130", async () => {
    const runId = await start("sleeper.py");
    await recorder.next(runId, "stream", (b) => Buffer.from(b.data).toString().includes("sleeping"));
    const reply = await transport.request("cancel", { run_id: runId });
    assert.deepEqual(reply.cancelled, [runId]);
    const finished = await recorder.next(runId, "run_finished");
    assert.deepEqual([finished.exit_code, finished.reason], [130, "cancelled"]);
  });

  test("a new run supersedes the one running, as a save during a run does", async () => {
    const sleeping = await start("sleeper.py");
    await recorder.next(sleeping, "stream");
    const next = await start("debugme.py");
    const old = await recorder.next(sleeping, "run_finished");
    assert.equal(old.exit_code, 130);
    assert.equal((await recorder.next(next, "run_finished")).exit_code, 0);
    assert.equal(recorder.output(next), "debugged 42\n");
  });

  test("a debug run announces debug_ready; attaching as debug.ts configures it lets it run", async () => {
    const runId = await start("debugme.py", { debug: true });
    const ready = await recorder.next(runId, "debug_ready");
    assert.ok(ready.port > 0);
    assert.equal(ready.wait, true);
    assert.deepEqual(ready.path_mappings, []);
    const config = attachConfiguration({ type: "hotswap", name: "Debug on Warm GPU", request: "launch", program: "debugme.py" }, ready);
    const dap = await DapClient.open(config.connect.host, config.connect.port);
    try {
      const attached = await dap.attach(config);
      assert.equal(attached.success, true, attached.message);
      const finished = await recorder.next(runId, "run_finished");
      assert.equal(finished.exit_code, 0);
      assert.equal(recorder.output(runId), "debugged 42\n");
    } finally {
      dap.close();
    }
  });

  test("a folder that is not the daemon's workspace is mirrored, with its path mappings", async () => {
    const elsewhere = realpathSync(tempTree({ "where.py": "import os\nprint(__file__)\nprint(os.getcwd())\n", "big/skip.txt": "x" }));
    cleanup.push(elsewhere);
    const mirror = new WorkspaceSync(transport, elsewhere, sync.policy);
    const synced = await mirror.sync();
    assert.equal(synced.mode, "mirror");
    assert.deepEqual(synced.sent.sort(), ["big/skip.txt", "where.py"]);
    const spec = { root: elsewhere, entry: path.join(elsewhere, "where.py"), args: [], cwd: elsewhere, env: {}, debug: false, justMyCode: true };
    const runId = (await transport.request("run", runRequest(spec, synced.state, process.env, newRunId()))).run_id;
    assert.equal((await recorder.next(runId, "run_finished")).exit_code, 0);
    const [file, cwd] = recorder.output(runId).trim().split("\n");
    const mirrorRoot = path.join(root, ".hotswap", "mirror");
    assert.deepEqual([file, cwd], [path.join(mirrorRoot, "where.py"), mirrorRoot]);
    const started = await recorder.next(runId, "run_started");
    assert.deepEqual(started.path_mappings, [{ localRoot: elsewhere, remoteRoot: mirrorRoot }]);
    assert.equal(localPath(file, started.path_mappings, cwd), path.join(elsewhere, "where.py"));
    writeTree(elsewhere, { "where.py": "print('edited')\n" });
    const debugRun = (await transport.request("run", runRequest({ ...spec, debug: true }, (await mirror.sync()).state, process.env, newRunId()))).run_id;
    const ready = await recorder.next(debugRun, "debug_ready");
    assert.deepEqual(ready.path_mappings, [{ localRoot: elsewhere, remoteRoot: mirrorRoot }]);
    await transport.request("cancel", { run_id: debugRun });
    assert.equal((await recorder.next(debugRun, "run_finished")).exit_code, 130);
  });

  test("a client that says subscribe_metrics sees a terminal's `hotswap run` log live, then asks for it whole", async () => {
    const watcher = new Transport(transport.connection);
    try {
      await watcher.hello("hotswap-ext-tests-metrics", undefined, { subscribe_metrics: true });
      const updates: Bodies["metrics_update"][] = [];
      watcher.on("metrics_update", (body) => updates.push(body));
      const cli = spawn(PYTHON, ["-m", "hotswap", "run", "--workspace", root, "logger.py"], { cwd: root, stdio: "ignore" });
      assert.equal(await new Promise((resolve) => cli.on("exit", resolve)), 0);
      const expected = Array.from({ length: 12 }, (_, i) => [i, 1 / (i + 1)]);
      const pointsOf = (): number[][] => updates.flatMap((u) => u.series.flatMap((s) => s.points.map((p) => [p[0], p[1]])));
      for (let waited = 0; pointsOf().length < expected.length && waited < 5000; waited += 50) {
        await new Promise((resolve) => setTimeout(resolve, 50)); // the CLI may exit before our socket has read all
      }
      const live = pointsOf();
      assert.deepEqual(live, expected);
      assert.equal(new Set(updates.map((u) => u.entry)).size, 1);
      const { run, series } = await watcher.request("metrics", { run_id: "last" });
      assert.equal(run.run_id, updates[0].run_id);
      assert.deepEqual([run.exit_code, run.entry, run.last], [0, path.join(root, "logger.py"), { loss: 1 / 12 }]);
      assert.deepEqual(series[0].points.map((p) => [p[0], p[1]]), expected);
      const { runs } = await watcher.request("runs", { entry: run.entry });
      assert.deepEqual(runs.map((r) => r.run_id), [run.run_id]);
    } finally {
      watcher.close();
    }
  });

  test("hotswap.nprocPerNode: the run goes to rank workers, its output tagged and shown by rank", async () => {
    const runId = await start("ranks.py", { nprocPerNode: 2 });
    const started = await recorder.next(runId, "run_started");
    assert.equal(started.ranks, 2);
    const finished = await recorder.next(runId, "run_finished");
    assert.equal(finished.exit_code, 0, finished.message);
    // stdout: the script's; stderr also holds the daemon's note that it started rank workers
    const streams = recorder
      .of(runId)
      .filter((e) => e.type === "stream")
      .map((e) => e.body as Bodies["stream"])
      .filter((b) => b.stream === "stdout");
    assert.deepEqual([...new Set(streams.map((b) => b.rank))].sort(), [0, 1]);
    const text = new TerminalText();
    const shown = streams.map((b) => text.write(b.stream, b.data, b.rank)).join("") + text.flush();
    assert.deepEqual(shown.split("\r\n").filter(Boolean).sort(), ["[rank1]: rank 1 of 2", "rank 0 of 2"]);
  });

  test("stopping the daemon is seen as a disconnect, and its process exits", async () => {
    const pid = daemon?.pid as number;
    const disconnected = new Promise<void>((resolve) => transport.onDisconnect(resolve));
    assert.equal((await transport.request("stop", {})).stopping, true);
    await disconnected;
    assert.equal(await waitForExit(pid, 30_000), true);
  });
});

describe("a daemon started with `serve --mirror DIR`, as on a GPU box", { timeout: 120_000 }, () => {
  let base: string;
  let local: string;
  let mirror: string;
  let daemon: ChildProcess | undefined;
  let transport: Transport;

  before(async () => {
    base = realpathSync(mkdtempSync(path.join(tmpdir(), "hotswap-ext-mirror-")));
    mirror = path.join(base, "mirror");
    local = realpathSync(tempTree({ "pkg/boom.py": "import os\nprint(__file__)\nprint(os.getcwd())\nraise ValueError('boom')\n" }));
    daemon = spawn(PYTHON, ["-m", "hotswap", "serve", "--mirror", mirror], { cwd: base, detached: true, stdio: "ignore" });
    transport = new Transport(await waitForConnection(mirror, daemon));
  });

  after(() => {
    transport?.close();
    killGroup(daemon);
    [base, local].forEach((dir) => rmSync(dir, { recursive: true, force: true }));
  });

  test("run_started carries the daemon's path mappings, and they map its paths back to ours", async () => {
    const sync = new WorkspaceSync(transport, local, (await transport.hello("hotswap-ext-tests")).sync_policy);
    const recorder = new Recorder(transport);
    try {
      const runId = newRunId();
      const spec = { root: local, entry: path.join(local, "pkg", "boom.py"), args: [], cwd: local, env: {}, debug: false, justMyCode: true };
      const { synced } = await syncThenRun({ transport, sync }, spec, process.env, runId);
      assert.equal(synced.mode, "mirror");
      const started = await recorder.next(runId, "run_started");
      const mirrorRoot = realpathSync(mirror);
      assert.deepEqual(started.path_mappings, [{ localRoot: local, remoteRoot: mirrorRoot }]);
      const finished = await recorder.next(runId, "run_finished");
      assert.equal(finished.exit_code, 1);
      const [file, cwd] = recorder.output(runId, "stdout").trim().split("\n");
      assert.deepEqual([file, cwd], [path.join(mirrorRoot, "pkg", "boom.py"), mirrorRoot]);
      // What the terminal's links do with a traceback line: the run's mappings, nothing computed here.
      assert.equal(localPath(file, started.path_mappings, spec.cwd), path.join(local, "pkg", "boom.py"));
      assert.equal(localPath(mirrorRoot, started.path_mappings, spec.cwd), local);
    } finally {
      recorder.close();
    }
  });
});

test("a reply of another release (a 1.0 hello_reply, no sync_policy) fails the request at once, saying why", { timeout: 30_000 }, async () => {
  // Stands in for a daemon of the previous release, which this machine does not have installed.
  const key = "k".repeat(32);
  const router = new Router();
  await router.bind("tcp://127.0.0.1:*");
  const session = new Session(key);
  const answer = (async () => {
    const [identity, ...frames] = await router.receive();
    const hello = session.unpack(frames);
    const body = { protocol_version: "1.0", features: ["run"], daemon_pid: 1, workspace: "/w" };
    await router.send([identity, ...session.pack({ ...makeMessage("hello_reply", body, hello.id), v: "1.0" })]);
  })();
  const address = router.lastEndpoint as string;
  const transport = new Transport({ address, key, pid: 1, protocol_version: "1.0" });
  try {
    const started = Date.now();
    await assert.rejects(transport.hello("hotswap-ext-tests", 8_000), (err) => {
      assert.ok(err instanceof ProtocolError, String(err));
      assert.equal(err.ename, "malformed");
      assert.match(err.message, /hello_reply: missing field/);
      return true;
    });
    assert.ok(Date.now() - started < 4_000, "failed at once, not at the request's timeout");
    await answer;
  } finally {
    transport.close();
    router.close();
  }
});

test("a daemon of the next major version refusing our hello (no parent id) fails it at once, by name", { timeout: 30_000 }, async () => {
  // Stands in for a daemon of a later release: it cannot read our envelope, so it refuses it
  // before knowing the request's id, in its own protocol version (backend/server.py does so).
  const key = "k".repeat(32);
  const router = new Router();
  await router.bind("tcp://127.0.0.1:*");
  const session = new Session(key);
  const answer = (async () => {
    const [identity] = await router.receive();
    const body = { status: "error", ename: "version_mismatch", evalue: "protocol version mismatch: peer speaks 1.0, this side speaks 2.0" };
    await router.send([identity, ...session.pack({ ...makeMessage("error", body, null), v: "2.0" })]);
  })();
  const transport = new Transport({ address: router.lastEndpoint as string, key, pid: 1, protocol_version: "2.0" });
  try {
    const started = Date.now();
    await assert.rejects(transport.hello("hotswap-ext-tests", 8_000), (err) => {
      assert.ok(err instanceof ProtocolError, String(err));
      assert.equal(err.ename, "version_mismatch");
      return true;
    });
    assert.ok(Date.now() - started < 4_000, "failed at once, not at the request's timeout");
    await answer;
  } finally {
    transport.close();
    router.close();
  }
});

test("a daemon that cannot start is reported with the tail of its log", { timeout: 60_000 }, async () => {
  const root = tempTree({ "pyproject.toml": "[tool.hotswap]\nno_such_setting = 1\n" });
  const child = startDaemon(PYTHON, root);
  try {
    await assert.rejects(waitForConnection(root, child), (err) => {
      assert.ok(err instanceof DaemonStartError);
      assert.match(err.message, /exited with code 2/);
      assert.match(err.logTail, /no_such_setting/);
      return true;
    });
    assert.match(logTail(root), /daemon\.log/);
  } finally {
    killGroup(child);
    rmSync(root, { recursive: true, force: true });
  }
});

function sha256(file: string): string {
  return sha256Bytes(readFileSync(file));
}
