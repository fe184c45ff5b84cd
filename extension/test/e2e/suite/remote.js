// The hotswap.backend setting: a daemon "on another machine" (`hotswap serve --mirror`, its
// connection file copied as a user would with scp). A daemon of another protocol version is
// explained; with a good one, the run happens in the mirror and a traceback click opens the
// editor's own file.
"use strict";

const assert = require("assert");
const fs = require("fs");
const path = require("path");
const { spawn } = require("child_process");
const vscode = require("vscode");
const { workspaceDir, python, status, openInEditor } = require("./helpers");
const { write, notification } = require("./ui");

// This release with its protocol version changed before anything reads it: a daemon of another
// (future) release, which this machine does not have.
const OTHER_RELEASE = [
  "import sys",
  "import hotswap.protocol as p",
  "p.PROTOCOL_VERSION = '9.0'",
  "p.PROTOCOL_MAJOR = 9",
  "from hotswap.cli import main",
  "main(['serve', '--mirror', sys.argv[1]])",
].join("; ");

/** `hotswap serve --mirror` in its own process group; resolves once its connection file names it. */
async function serveMirror(waitFor, name, argv) {
  const box = path.join(path.dirname(workspaceDir()), name);
  const mirror = path.join(box, "mirror");
  fs.mkdirSync(mirror, { recursive: true });
  const log = fs.openSync(path.join(box, "serve.log"), "w");
  const child = spawn(python(), [...argv, mirror], { detached: true, stdio: ["ignore", log, log] });
  fs.closeSync(log);
  const source = path.join(mirror, ".hotswap", "connection.json");
  const stop = () => {
    try {
      process.kill(-child.pid, "SIGKILL");
    } catch {
      // gone already
    }
  };
  try {
    await waitFor(`${name}'s daemon to write its connection file`, () => {
      try {
        return JSON.parse(fs.readFileSync(source, "utf8")).pid === child.pid;
      } catch {
        return false;
      }
    }, 60000, 200);
  } catch (err) {
    stop();
    throw new Error(`${err.message}\n${fs.readFileSync(path.join(box, "serve.log"), "utf8")}`);
  }
  const copy = path.join(box, "copied-to-the-laptop.json");
  fs.copyFileSync(source, copy);
  return { pid: child.pid, mirror, copy, stop };
}

/**
 * Set (or remove) a setting in .vscode/settings.json, written as a file: a save of settings.json
 * in an editor is a workspace save, which would rerun the last script.
 */
async function setWorkspaceSetting(waitFor, key, value) {
  const settingsFile = path.join(workspaceDir(), ".vscode", "settings.json");
  const settings = JSON.parse(fs.readFileSync(settingsFile, "utf8"));
  if (value) {
    settings[key] = value;
  } else {
    delete settings[key];
  }
  fs.writeFileSync(settingsFile, JSON.stringify(settings, null, 2));
  const [section, name] = key.split(".");
  await waitFor(`VS Code to read ${key}`, () => vscode.workspace.getConfiguration(section).get(name) === (value || ""), 15000);
}

const useBackend = (waitFor, file) => setWorkspaceSetting(waitFor, "hotswap.backend", file);

async function otherProtocolVersionExplained(h) {
  const { ui, waitFor, screenshot } = h;
  const daemon = await serveMirror(waitFor, "old-box", ["-c", OTHER_RELEASE]);
  try {
    await useBackend(waitFor, daemon.copy);
    await ui.palette("Hot Swap: Restart Backend");
    const shown = await notification(ui, "speaks protocol 9\\.0", 60000);
    assert.match(shown, /Install the same hotswap release as the extension on the backend's host and restart it there/);
    await screenshot("other-protocol-version-explained");
    await vscode.commands.executeCommand("notifications.clearAll");
  } finally {
    daemon.stop();
    await useBackend(waitFor, undefined);
  }
}

async function mirrorRunTracebackOpensEditorsFile(h) {
  const { ui, waitFor, waitForTerminal, screenshot } = h;
  write("remote_lib.py", "def ratio(a, b):\n    return a / b\n");
  write("remote_crash.py", "import remote_lib\n\nprint('on the box', flush=True)\nremote_lib.ratio(1, 0)\n");
  const daemon = await serveMirror(waitFor, "gpu-box", ["-m", "hotswap", "serve", "--mirror"]);
  try {
    await useBackend(waitFor, daemon.copy);
    await vscode.commands.executeCommand("notifications.clearAll");
    await ui.palette("Hot Swap: Restart Backend");
    await notification(ui, `the backend restarted \\(pid ${daemon.pid}\\)`, 60000);
    await openInEditor("remote_crash.py");
    await ui.palette("Hot Swap: Run on Warm GPU");
    const text = await waitForTerminal(/on the box[^]*remote_lib\.py", line 2[^]*ZeroDivisionError/, 60000);
    assert.ok(fs.existsSync(path.join(daemon.mirror, "remote_lib.py")), "the run's files were synced to the mirror");
    assert.ok(!text.includes(daemon.mirror), "the terminal shows the editor's paths, not the mirror's");
    await ui.clickTerminalText('remote_lib.py", line 2');
    const editor = await waitFor("the editor's remote_lib.py to open", () => {
      const e = vscode.window.activeTextEditor;
      return e && e.document.fileName.endsWith("remote_lib.py") ? e : null;
    }, 15000);
    assert.strictEqual(editor.document.uri.fsPath, path.join(workspaceDir(), "remote_lib.py"), "the editor's file, not the mirror's");
    assert.strictEqual(editor.selection.active.line, 1, "at line 2");
    await screenshot("mirror-traceback-opened-editors-file");
  } finally {
    daemon.stop();
    await useBackend(waitFor, undefined);
  }
}

/** With no hotswap.python and no Python extension, the backend starts with python3 from PATH. */
async function python3WhenNoInterpreterIsSet(h) {
  const { ui, waitFor, waitForTerminal, screenshot } = h;
  assert.ok(!vscode.extensions.getExtension("ms-python.python"), "no Python extension here");
  // The user's PATH finds a python3 with hotswap (code-server gives the extension host the
  // login shell's PATH, so the harness's own PATH does not reach it).
  const bin = path.join(path.dirname(workspaceDir()), "bin");
  process.env.PATH = `${bin}:${process.env.PATH}`;
  await setWorkspaceSetting(waitFor, "hotswap.python", undefined);
  const before = await status();
  await ui.palette("Hot Swap: Restart Backend");
  const callsFile = path.join(bin, "python3-calls.log");
  await waitFor("python3 from PATH to start the daemon", () => {
    try {
      return /-m hotswap serve --workspace/.test(fs.readFileSync(callsFile, "utf8"));
    } catch {
      return false;
    }
  }, 90000, 300);
  const after = await waitFor("the new daemon", async () => {
    const st = await status();
    return st && st.daemon.pid !== before.daemon.pid ? st : null;
  }, 60000, 300);
  await notification(ui, `the backend restarted \\(pid ${after.daemon.pid}\\)`, 30000);
  write("which_python.py", "import sys\n\nprint('interpreter', sys.executable, flush=True)\n");
  await openInEditor("which_python.py");
  await ui.palette("Hot Swap: Run on Warm GPU");
  await waitForTerminal(/interpreter \S*python/, 60000);
  await screenshot("python3-from-path");
}

module.exports = { otherProtocolVersionExplained, mirrorRunTracebackOpensEditorsFile, python3WhenNoInterpreterIsSet };
