/**
 * The extension's client against real daemons where it matters for who may connect: the
 * default unix socket, a daemon under CURVE (key pairs made by `hotswap keys`), and a stale
 * connection file whose pid now belongs to another process.
 */

import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { realpathSync, rmSync } from "node:fs";
import { test } from "node:test";
import { connectionPath, daemonAlive, readConnection, startDaemon, waitForConnection } from "../../src/node/daemon";
import { DaemonUnavailable } from "../../src/node/protocol";
import { Transport } from "../../src/node/transport";
import { PYTHON, tempTree } from "../helpers";

function killGroup(pid: number | undefined): void {
  try {
    process.kill(-(pid ?? 0), "SIGKILL"); // the daemon and its worker share the group
  } catch {
    // already gone
  }
}

/** Wait until `file` names a daemon of pid `pid`. */
async function connectionOf(root: string, pid: number): Promise<ReturnType<typeof readConnection>> {
  for (let i = 0; i < 600; i++) {
    try {
      const info = readConnection(connectionPath(root));
      if (info.pid === pid) {
        return info;
      }
    } catch {
      // not written yet
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error("the daemon wrote no connection file");
}

test("the default daemon listens on a unix socket the transport reaches", { timeout: 90_000 }, async () => {
  const root = realpathSync(tempTree({ "pyproject.toml": "[project]\nname = 'x'\nversion = '0'\n" }));
  const child = startDaemon(PYTHON, root);
  const info = await waitForConnection(root, child);
  const transport = new Transport(info);
  try {
    assert.match(info.address, /^ipc:\/\//);
    assert.equal((await transport.hello("hotswap-ext-tests")).daemon_pid, child.pid);
    assert.ok(daemonAlive(info.pid), "a live daemon is alive");
  } finally {
    transport.close();
    killGroup(child.pid);
    rmSync(root, { recursive: true, force: true });
  }
});

test("a stale connection file whose pid is another process is seen as dead at once", () => {
  const other = spawn("sleep", ["60"]);
  try {
    assert.ok(other.pid !== undefined);
    const started = Date.now();
    assert.equal(daemonAlive(other.pid), false, "a `sleep` is no hotswap daemon");
    assert.ok(Date.now() - started < 1000);
    assert.equal(daemonAlive(2 ** 22 + 17), false, "no such pid");
  } finally {
    other.kill("SIGKILL");
  }
});

test("the transport speaks CURVE to a daemon that requires it, with the pair `hotswap keys` made", { timeout: 120_000 }, async () => {
  const config = tempTree({});
  const root = realpathSync(tempTree({ "pyproject.toml": "[project]\nname = 'x'\nversion = '0'\n", "hi.py": "print('hi')\n" }));
  const env = { ...process.env, XDG_CONFIG_HOME: config };
  const hotswap = (...args: string[]): string => execFileSync(PYTHON, ["-m", "hotswap", ...args], { env, encoding: "utf8" });
  hotswap("keys", "new", "server");
  hotswap("keys", "new", "client");
  hotswap("keys", "new", "stranger");
  const port = 20000 + Math.floor(Math.random() * 20000);
  const serve = ["-m", "hotswap", "serve", "--workspace", root, "--bind", `tcp://127.0.0.1:${port}`, "--curve", "server", "--allow", "client"];
  const daemon = spawn(PYTHON, serve, { env, detached: true, stdio: "ignore" });
  const saved = { config: process.env.XDG_CONFIG_HOME, key: process.env.HOTSWAP_CURVE_KEY };
  const transports: Transport[] = [];
  try {
    const info = await connectionOf(root, daemon.pid as number);
    assert.ok(info.curve_server_key, "the connection file names the server's key");
    process.env.XDG_CONFIG_HOME = config;
    const allowed = new Transport(info);
    transports.push(allowed);
    assert.equal((await allowed.hello("hotswap-ext-tests", 30_000)).daemon_pid, daemon.pid);

    process.env.HOTSWAP_CURVE_KEY = "stranger"; // a pair the daemon was not told to allow
    const stranger = new Transport(info);
    transports.push(stranger);
    await assert.rejects(stranger.hello("stranger", 3_000), (err) => err instanceof DaemonUnavailable);

    process.env.HOTSWAP_CURVE_KEY = "nobody"; // no such pair: said before any connection
    assert.throws(() => new Transport(info), /no key pair 'nobody'.*hotswap keys new nobody/);
  } finally {
    process.env.XDG_CONFIG_HOME = saved.config;
    process.env.HOTSWAP_CURVE_KEY = saved.key;
    if (saved.config === undefined) {
      delete process.env.XDG_CONFIG_HOME;
    }
    if (saved.key === undefined) {
      delete process.env.HOTSWAP_CURVE_KEY;
    }
    transports.forEach((t) => t.close());
    killGroup(daemon.pid);
    rmSync(root, { recursive: true, force: true });
    rmSync(config, { recursive: true, force: true });
  }
});
