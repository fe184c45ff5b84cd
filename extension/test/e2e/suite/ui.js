// Scenarios driven through the workbench as a user drives it: the command palette, the status
// bar, keys in the editor and the terminal, clicks on terminal links, title buttons and
// notifications. What the user sees is read from the page; the daemon's account from
// `hotswap status --json`.
"use strict";

const assert = require("assert");
const fs = require("fs");
const path = require("path");
const vscode = require("vscode");
const { workspaceDir, status, lastRun, warmObject, runIds, waitForNewRun, openInEditor, after } = require("./helpers");

const STATUS = ".statusbar-item";
// With the smoke-test driver on (run.mjs needs it), the workbench shows no toasts: notifications
// are read where the bell in the status bar shows them all, the notification center.
const NOTIFICATION = ".notifications-center .notification-list-item";
const PICK = ".quick-input-widget .quick-input-list .monaco-list-row";
const WARM_KEY = "tiny_gpt/tiny";

function write(relative, text) {
  fs.writeFileSync(path.join(workspaceDir(), relative), text);
}

/** Replace the whole text of `doc` in its editor (unsaved, as typing leaves it). */
async function setText(doc, text) {
  const edit = new vscode.WorkspaceEdit();
  edit.replace(doc.uri, new vscode.Range(0, 0, doc.lineCount, 0), text);
  assert.ok(await vscode.workspace.applyEdit(edit), `edited ${doc.fileName}`);
}

/**
 * Wait for a notification matching `text` in the notification center (the bell), opened again
 * while waiting: the workbench hides it whenever it runs empty.
 */
async function notification(ui, text, timeout = 30000) {
  const pattern = new RegExp(text);
  const deadline = Date.now() + timeout;
  for (;;) {
    await vscode.commands.executeCommand("notifications.showList");
    const found = (await ui.texts(NOTIFICATION)).find((t) => pattern.test(t));
    if (found) {
      return found;
    }
    if (Date.now() > deadline) {
      throw new Error(`no notification matching ${pattern} within ${timeout / 1000} s`);
    }
    await new Promise((resolve) => setTimeout(resolve, 300));
  }
}

/** Keys go to the active editor, not to the terminal or a view that had the focus. */
async function focusEditor() {
  await vscode.commands.executeCommand("workbench.action.focusActiveEditorGroup");
}

/** Run the active editor's script from the palette, and wait for that run to finish. */
async function runFromPalette({ ui, waitFor }) {
  const seen = await runIds();
  await ui.palette("Hot Swap: Run on Warm GPU");
  return waitForNewRun(waitFor, seen);
}

/** The run of `entry` that is running now, per the daemon. */
function runningNow(waitFor, entry) {
  return waitFor(`${entry} to be running`, async () => {
    const run = lastRun(await status());
    return run && run.entry.endsWith(entry) && run.state === "running" ? run : null;
  }, 60000, 200);
}

// -- the first run: status bar states and the first-load notification ------------------------

/** While the first run of a script loads, the status bar says so and a notification tells why. */
async function firstLoadIsShown({ ui, screenshot }) {
  const toast = await notification(ui, "first run of train\\.py", 60000);
  const bar = await ui.see(STATUS, "Hot Swap: (loading|running)", 30000);
  assert.match(toast, /what it keeps warm is reused by the next runs/);
  await screenshot("first-load-notification");
  return bar;
}

async function idleWithWarmModel({ ui, waitFor }) {
  const bar = await waitFor("the status bar to show the warm model, idle", async () => {
    const text = await ui.statusBar();
    return /Hot Swap · 1 warm · /.test(text) && !/running|loading/.test(text) ? text : null;
  }, 30000, 300);
  const shown = await ui.texts(NOTIFICATION);
  assert.ok(!shown.some((t) => t.includes("first run of")), `the first-load notification closed: ${shown}`);
  await vscode.commands.executeCommand("notifications.hideList");
  return bar;
}

// -- rerun on save --------------------------------------------------------------------------

const SAVER = `import time

import knobs
import knobs2

print(f"knobs {knobs.WORD} {knobs2.WORD}", flush=True)
if knobs.WORD == "slow":
    time.sleep(600)
print("saver done", flush=True)
`;

/**
 * A save of any workspace file reruns the last script; Save All of two files is one rerun; a
 * save while the script runs cancels it and the newest state runs.
 */
async function saveDuringRunRunsNewestState(h) {
  const { ui, waitFor, waitForTerminal, screenshot, log } = h;
  write("knobs.py", 'WORD = "slow"\n');
  write("knobs2.py", 'WORD = "a"\n');
  write("saver.py", SAVER);
  await openInEditor("saver.py");
  await ui.palette("Hot Swap: Run on Warm GPU");
  const slow = await runningNow(waitFor, "saver.py");
  await waitForTerminal(/knobs slow a/, 60000);
  const knobs = await openInEditor("knobs.py");
  await setText(knobs, 'WORD = "fast"\n');
  const knobs2 = await openInEditor("knobs2.py");
  await setText(knobs2, 'WORD = "b"\n');
  const seen = await runIds();
  await ui.palette("File: Save All"); // both files at once
  await waitFor("both files saved", () => !knobs.isDirty && !knobs2.isDirty, 15000);
  const shown = await waitForTerminal(/knobs fast b[^]*saver done/, 90000);
  const { st } = await waitForNewRun(waitFor, seen);
  const fresh = st.runs.filter((r) => !seen.has(r.run_id));
  const old = st.runs.find((r) => r.run_id === slow.run_id);
  log(`slow run: ${JSON.stringify(old)}; after Save All: ${JSON.stringify(fresh)}`);
  assert.strictEqual(fresh.length, 1, "Save All of two files is one rerun (debounced)");
  assert.strictEqual(fresh[0].exit_code, 0);
  assert.ok(fresh[0].entry.endsWith("saver.py"), "the rerun is the last script, not the saved file");
  assert.notStrictEqual(old.exit_code, 0, "the run the save interrupted did not finish normally");
  assert.ok(!after(shown, "knobs slow a").split("knobs fast b")[0].includes("saver done"), "the slow run did not reach its end");
  await screenshot("save-during-run-reran-newest");
}

/** The status bar's menu turns rerun on save off (a save runs nothing) and on again. */
async function statusBarTogglesRunOnSave(h) {
  const { ui, press, waitFor, waitForTerminal, screenshot, sleep } = h;
  await ui.click(STATUS, "Hot Swap");
  await ui.see(PICK, "Turn Rerun on Save Off");
  await screenshot("status-bar-menu");
  await ui.click(PICK, "Turn Rerun on Save Off");
  await waitFor("the status bar to say save: off", async () => (await ui.statusBar()).includes("save: off"), 15000, 300);
  assert.strictEqual(vscode.workspace.getConfiguration("hotswap").get("runOnSave"), "off", "the workspace setting changed");
  const seen = await runIds();
  const doc = await openInEditor("knobs2.py");
  await setText(doc, 'WORD = "c"\n');
  await focusEditor();
  await press("Control+S");
  await waitFor("knobs2.py saved", () => !doc.isDirty, 15000);
  await sleep(3000);
  const fresh = [...(await runIds())].filter((id) => !seen.has(id));
  assert.deepStrictEqual(fresh, [], "a save with rerun on save off runs nothing");
  await screenshot("saved-with-rerun-on-save-off");
  await ui.click(STATUS, "Hot Swap");
  await ui.click(PICK, "Turn Rerun on Save On");
  await waitFor("the status bar to drop save: off", async () => !(await ui.statusBar()).includes("save: off"), 15000, 300);
  await sleep(3000);
  const afterToggle = [...(await runIds())].filter((id) => !seen.has(id));
  assert.deepStrictEqual(afterToggle, [], "the toggle saved .vscode/settings.json, which reruns nothing");
  await setText(doc, 'WORD = "d"\n');
  await focusEditor();
  await press("Control+S");
  await waitForTerminal(/knobs fast d[^]*saver done/, 90000);
  const { run } = await waitForNewRun(h.waitFor, seen);
  assert.strictEqual(run.exit_code, 0);
}

/** The saved files run, not an editor's unsaved text, and the terminal says so. */
async function unsavedTextIsNotRun(h) {
  const { waitForTerminal, screenshot } = h;
  const doc = await openInEditor("knobs2.py");
  await setText(doc, 'WORD = "unsaved"\n');
  await openInEditor("saver.py");
  const { run } = await runFromPalette(h);
  assert.strictEqual(run.exit_code, 0);
  const text = await waitForTerminal(/note: unsaved changes in knobs2\.py are not sent[^]*saver done/, 30000);
  const latest = after(text, "note: unsaved changes in knobs2.py");
  assert.match(latest, /the saved files run \(save to include them\)/);
  assert.match(latest, /knobs fast d/, "the saved value ran");
  assert.ok(!latest.includes("unsaved\n") && !latest.includes("knobs fast unsaved"), "the unsaved text did not run");
  await screenshot("unsaved-changes-not-run");
  await vscode.commands.executeCommand("workbench.action.files.revert");
  await openInEditor("knobs2.py");
  await vscode.commands.executeCommand("workbench.action.files.revert");
  assert.ok(!doc.isDirty, "reverted");
}

// -- the terminal ----------------------------------------------------------------------------

/** What the user types in the Hot Swap terminal is the script's stdin. */
async function typingReachesInput(h) {
  const { ui, press, waitFor, waitForTerminal, screenshot } = h;
  write("ask.py", 'name = input("name? ")\nprint(f"hello {name}!", flush=True)\n');
  await openInEditor("ask.py");
  const seen = await runIds();
  await ui.palette("Hot Swap: Run on Warm GPU");
  await runningNow(waitFor, "ask.py");
  await waitForTerminal(/name\?\s*$/, 30000);
  await ui.click(".terminal-wrapper", "name\\?");
  await ui.type("Ada Lovelace");
  await press("Enter");
  await waitForTerminal(/hello Ada Lovelace!/, 30000);
  const { run } = await waitForNewRun(waitFor, seen);
  assert.strictEqual(run.exit_code, 0, "input() got its line and the script ended");
  await screenshot("typed-into-input");
}

const CRASHLIB = "def divide(a, b):\n    scale = 10\n    return a * scale / b\n";

/** Ctrl+click on a traceback line opens the workspace file at that line. */
async function tracebackLineOpensFile(h) {
  const { ui, waitFor, waitForTerminal, screenshot } = h;
  write("crashlib.py", CRASHLIB);
  write("crash.py", "import crashlib\n\nprint(crashlib.divide(1, 0))\n");
  await openInEditor("crash.py");
  const { run } = await runFromPalette(h);
  assert.strictEqual(run.exit_code, 1);
  await waitForTerminal(/crashlib\.py", line 3[^]*ZeroDivisionError/, 30000);
  await ui.clickTerminalText('crashlib.py", line 3');
  const editor = await waitFor("crashlib.py to open from the traceback", () => {
    const e = vscode.window.activeTextEditor;
    return e && e.document.fileName.endsWith("crashlib.py") ? e : null;
  }, 15000);
  assert.strictEqual(editor.selection.active.line, 2, "the cursor is on line 3");
  await screenshot("traceback-link-opened-file");
}

/** stderr shows in a colour of its own; stdout in the terminal's. */
async function stderrIsDistinct(h) {
  const { ui, waitForTerminal, screenshot, log } = h;
  write("colours.py", 'import sys\n\nprint("to stdout", flush=True)\nprint("to stderr", file=sys.stderr, flush=True)\n');
  await openInEditor("colours.py");
  await runFromPalette(h);
  await waitForTerminal(/to stdout[^]*to stderr/, 30000);
  const [out, err] = await ui.terminalColours(["to stdout", "to stderr"]);
  log(`colours: ${JSON.stringify([out, err])}`);
  assert.ok(out && err, "both lines are in the terminal");
  assert.ok(out.isDefault, "stdout has the terminal's own colour");
  assert.ok(!err.isDefault, "stderr has a colour of its own");
  await screenshot("stderr-in-its-own-colour");
}

// -- palette commands --------------------------------------------------------------------------

async function showWarmObjects({ ui, press, screenshot }) {
  await ui.palette("Hot Swap: Show Warm Objects");
  const row = await ui.see(PICK, WARM_KEY, 30000);
  assert.match(row, /tiny_gpt\/tiny/);
  assert.match(row, /reused \d+×/, "the pick says how often it was reused");
  await screenshot("show-warm-objects");
  await press("Escape");
}

async function showBackendLog({ ui, waitFor, screenshot }) {
  await ui.palette("Hot Swap: Show Backend Log");
  const editor = await waitFor("daemon.log in an editor", () => {
    const e = vscode.window.activeTextEditor;
    return e && e.document.fileName.endsWith(path.join(".hotswap", "daemon.log")) ? e : null;
  }, 15000);
  assert.match(editor.document.getText(), /\S/, "the log has something in it");
  await screenshot("show-backend-log");
}

/**
 * Show Warm Objects, pick the model, confirm in the notification: it is released. (Release Warm
 * Objects asks in a modal dialog, which VS Code refuses to show while extension tests run.)
 */
async function releaseAWarmObject({ ui, waitFor, screenshot }) {
  assert.ok(warmObject(await status(), WARM_KEY), "something is warm to release");
  await ui.palette("Hot Swap: Show Warm Objects");
  await ui.click(PICK, WARM_KEY);
  const key = WARM_KEY.replace("/", "\\/");
  await notification(ui, `Release the warm object ${key}\\?`);
  await screenshot("release-asks");
  await ui.click(`${NOTIFICATION} .monaco-button`, `Release ${key}`);
  await notification(ui, `released ${key}`);
  // The worker drops it and then reports what it holds: status follows a moment later.
  await waitFor("the daemon to hold it no more", async () => !warmObject(await status(), WARM_KEY), 15000, 300);
  await waitFor("the status bar to show nothing warm", async () => !(await ui.statusBar()).includes("warm"), 15000, 300);
  await vscode.commands.executeCommand("notifications.clearAll");
  await screenshot("warm-object-released");
}

async function restartBackend({ ui, waitFor, screenshot }) {
  const before = await status();
  assert.ok(before, "a daemon runs");
  await ui.palette("Hot Swap: Restart Backend");
  const toast = await notification(ui, "the backend restarted", 60000);
  const after = await waitFor("a new daemon", async () => {
    const st = await status();
    return st && st.daemon.pid !== before.daemon.pid ? st : null;
  }, 30000, 300);
  assert.ok(toast.includes(`pid ${after.daemon.pid}`), `the notification names the new daemon: ${toast}`);
  let alive = true;
  try {
    process.kill(before.daemon.pid, 0);
  } catch {
    alive = false;
  }
  assert.ok(!alive, "the old daemon stopped");
  await screenshot("backend-restarted");
}

// -- the stop button and a dead worker -------------------------------------------------------------

/** The editor title's stop button cancels the run. */
async function clickStopButton({ ui }) {
  await ui.click(".editor-actions [aria-label*='Cancel the Run']");
}

/** The worker dies under a script: the user is told, with a button to the backend's log. */
async function deadWorkerExplained(h) {
  const { ui, waitFor, waitForTerminal, screenshot } = h;
  write("die.py", 'import os\nimport signal\n\nprint("about to die", flush=True)\nos.kill(os.getpid(), signal.SIGKILL)\n');
  await openInEditor("die.py");
  const before = await status();
  const { run } = await runFromPalette(h);
  assert.strictEqual(run.exit_code, 137, "killed by SIGKILL, as python would report it");
  await waitForTerminal(/about to die[^]*137/, 30000);
  const toast = await notification(ui, "the worker was restarted");
  assert.match(toast, /died from SIGKILL/, "the notification says why");
  await screenshot("dead-worker-explained");
  await ui.click(`${NOTIFICATION} .monaco-button`, "Show Backend Log");
  await waitFor("daemon.log opened from the notification", () => {
    const e = vscode.window.activeTextEditor;
    return e && e.document.fileName.endsWith("daemon.log");
  }, 15000);
  const after = await waitFor("a new worker", async () => {
    const st = await status();
    const pid = st && st.workers[0] && st.workers[0].pid;
    return pid && pid !== before.workers[0].pid ? st : null;
  }, 60000, 300);
  assert.strictEqual(after.daemon.pid, before.daemon.pid, "the daemon lived on");
}

module.exports = {
  STATUS, NOTIFICATION, PICK, notification, write, setText, focusEditor, runFromPalette, runningNow,
  firstLoadIsShown, idleWithWarmModel, saveDuringRunRunsNewestState, statusBarTogglesRunOnSave, unsavedTextIsNotRun,
  typingReachesInput, tracebackLineOpensFile, stderrIsDistinct, showWarmObjects, showBackendLog,
  releaseAWarmObject, restartBackend, clickStopButton, deadWorkerExplained,
};
