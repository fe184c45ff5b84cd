// F5 as a user without launch.json meets it, a launch.json made by VS Code from the extension's
// initial configuration, a breakpoint set with F9 in a workspace module (not the entry), and a
// debug start that fails, reported.
"use strict";

const assert = require("assert");
const fs = require("fs");
const path = require("path");
const vscode = require("vscode");
const { workspaceDir, runIds, waitForNewRun, openInEditor, nextStop, sessionsEnded } = require("./helpers");
const { PICK, write, focusEditor, notification } = require("./ui");

const LAUNCH_JSON = () => path.join(workspaceDir(), ".vscode", "launch.json");
const MATHLIB = "def double(x):\n    y = x * 2\n    return y\n";
const USES_MATH = 'import mathlib\n\nprint("double:", mathlib.double(21), flush=True)\n';

function launchConfigurations() {
  return vscode.workspace.getConfiguration("launch").get("configurations") || [];
}

/** F9 on line `line` (1-based) of `relative`, pressed on the keyboard. */
async function f9(h, relative, line) {
  const doc = await openInEditor(relative);
  const editor = vscode.window.activeTextEditor;
  editor.selection = new vscode.Selection(line - 1, 0, line - 1, 0);
  await focusEditor();
  await h.press("F9");
  return h.waitFor(`a breakpoint on ${relative}:${line}`, () => vscode.debug.breakpoints.find((b) => b instanceof vscode.SourceBreakpoint
    && b.location.uri.fsPath === doc.uri.fsPath && b.location.range.start.line === line - 1), 15000);
}

/** F5 (the key) with `relative` in the editor stops in mathlib.py at line 2; continue to the end. */
async function f5StopsInModule(h, relative, shot) {
  const { press, within, waitFor, screenshot, log, ui } = h;
  const seen = await runIds();
  await openInEditor(relative);
  await focusEditor();
  const stopped = nextStop();
  const ended = sessionsEnded();
  await press("F5");
  // Without launch.json VS Code may ask which debugger: the user picks ours.
  if ((await Promise.race([stopped.then(() => "stopped"), h.sleep(5000)])) !== "stopped") {
    const offered = (await ui.texts(PICK)).some((t) => t.includes("Hot Swap"));
    log(`F5: ${offered ? "picking Hot Swap as the debugger" : "no debugger to pick"}`);
    if (offered) {
      await ui.click(PICK, "Hot Swap");
    }
  }
  const stop = await within(stopped, 120000, "F5 to stop at the breakpoint in mathlib.py");
  log(`F5 stopped at ${stop.file}:${stop.line}`);
  await screenshot(shot);
  assert.ok(stop.file && stop.file.endsWith("mathlib.py"), `stopped in the module, not in ${stop.file}`);
  assert.strictEqual(stop.line, 2);
  await stop.session.customRequest("continue", { threadId: stop.threadId });
  await within(ended, 60000, "the debug session to end");
  const { run } = await waitForNewRun(waitFor, seen);
  assert.strictEqual(run.exit_code, 0);
  assert.ok(run.entry.endsWith(relative), `F5 ran the active file, not ${run.entry}`);
}

async function f5WithoutLaunchJson(h) {
  fs.rmSync(LAUNCH_JSON(), { force: true });
  await h.waitFor("VS Code to see no launch configuration", () => launchConfigurations().length === 0, 15000);
  write("mathlib.py", MATHLIB);
  write("usesmath.py", USES_MATH);
  const breakpoint = await f9(h, "mathlib.py", 2);
  try {
    await f5StopsInModule(h, "usesmath.py", "f5-without-launch-json-stopped-in-module");
  } finally {
    if (vscode.debug.activeDebugSession) {
      await vscode.debug.stopDebugging();
    }
  }
  state.breakpoint = breakpoint;
}

const state = { breakpoint: null };

/**
 * Debug: Add Configuration... with no launch.json: VS Code writes the extension's initial
 * configuration and offers its snippet, which the user picks; F5 then runs from launch.json.
 */
async function launchJsonFromTheSnippet(h) {
  const { ui, press, waitFor, screenshot, log } = h;
  assert.ok(!fs.existsSync(LAUNCH_JSON()), "no launch.json yet");
  await openInEditor("usesmath.py");
  await ui.palette("Debug: Add Configuration...");
  await h.sleep(1500);
  if ((await ui.texts(PICK)).some((t) => t.includes("Hot Swap"))) {
    await ui.click(PICK, "Hot Swap"); // VS Code asked which debugger
  }
  await waitFor("launch.json to be written", () => fs.existsSync(LAUNCH_JSON()), 20000);
  const initial = await waitFor("the initial configuration", () => launchConfigurations().length > 0 && launchConfigurations(), 15000);
  assert.strictEqual(initial.length, 1, `one initial configuration, not ${JSON.stringify(initial)}`);
  await ui.palette("Debug: Add Configuration..."); // again, now with launch.json open: the snippets
  await ui.see(".suggest-widget .monaco-list-row", "Hot Swap: Debug on Warm GPU", 20000);
  await screenshot("launch-json-snippet-offered");
  await ui.click(".suggest-widget .monaco-list-row", "Hot Swap: Debug on Warm GPU");
  await focusEditor();
  await press("Control+S");
  const configs = await waitFor("the snippet's configuration in launch.json", () => {
    const all = launchConfigurations();
    return all.length === 2 ? all : null;
  }, 15000);
  log(`launch.json:\n${fs.readFileSync(LAUNCH_JSON(), "utf8")}`);
  await screenshot("launch-json-from-snippet");
  for (const config of configs) {
    assert.deepStrictEqual([config.type, config.request, config.program], ["hotswap", "launch", "${file}"]);
  }
  try {
    await f5StopsInModule(h, "usesmath.py", "f5-with-launch-json-stopped-in-module");
  } finally {
    if (vscode.debug.activeDebugSession) {
      await vscode.debug.stopDebugging();
    }
  }
}

/** A debug start the daemon refuses (its cwd does not exist) is told, and no session starts. */
async function failedDebugStartReported(h) {
  const { press, waitFor, screenshot, log, ui } = h;
  const cwd = "${workspaceFolder}/no-such-folder";
  const launch = { version: "0.2.0", configurations: [{ ...launchConfigurations()[0], cwd }] };
  fs.writeFileSync(LAUNCH_JSON(), JSON.stringify(launch, null, 2));
  await waitFor("VS Code to read the edited launch.json", () => (launchConfigurations()[0] || {}).cwd === cwd, 15000);
  await openInEditor("usesmath.py");
  await focusEditor();
  const seen = await runIds();
  await press("F5");
  const shown = await notification(ui, "Hot Swap: .*no-such-folder does not exist", 60000);
  log(`reported: ${shown}`);
  await screenshot("failed-debug-start-reported");
  assert.match(shown, /run from a folder that exists/, "the daemon's hint is passed on");
  await waitFor("no debug session", () => !vscode.debug.activeDebugSession, 15000);
  assert.deepStrictEqual([...(await runIds())].filter((id) => !seen.has(id)), [], "nothing ran");
  await vscode.commands.executeCommand("notifications.clearAll");
  if (state.breakpoint) {
    vscode.debug.removeBreakpoints([state.breakpoint]);
  }
}

module.exports = { f5WithoutLaunchJson, launchJsonFromTheSnippet, failedDebugStartReported };
