// The end-to-end suite, run inside VS Code's extension host by run.mjs: a user's session with
// the tiny_gpt sample, checked through what the user sees (the terminal, the debugger's stop)
// and through the backend's own account (`hotswap status --json`).
"use strict";

const assert = require("assert");
const fs = require("fs");
const path = require("path");
const vscode = require("vscode");
const { runTests } = require("./runner");
const { metricsChartGrowsAndOverlaysTheRerun } = require("./metrics");
const ui = require("./ui");
const debugging = require("./debugging");
const remote = require("./remote");
const {
  workspaceDir, status, lastRun, warmObject, runIds, waitForNewRun, openInEditor, lineOf, assertLines, after, STEPS,
  nextStop, sessionsEnded,
} = require("./helpers");

const EXTENSION_ID = process.env.HOTSWAP_E2E_EXTENSION_ID || "hotswap.hotswap";
const WARM_KEY = "tiny_gpt/tiny";
const EDITED_LINE = 'print(f"e2e edit: {args.steps} steps, final loss {final:.4f}")';
const SLEEPY = 'import time\n\nprint("sleeping now", flush=True)\ntime.sleep(600)\nprint("woke up")\n';

// -- the scenarios ----------------------------------------------------------------------------

const state = { warm: null };

async function activates({ waitFor }) {
  const ext = await waitFor(`extension ${EXTENSION_ID}`, () => vscode.extensions.getExtension(EXTENSION_ID));
  await ext.activate();
  assert.ok(ext.isActive, "the extension is active");
  const commands = await vscode.commands.getCommands(true);
  for (const id of ["hotswap.run", "hotswap.debug", "hotswap.cancel"]) {
    assert.ok(commands.includes(id), `command ${id} is registered`);
  }
}

async function runOnWarmGpu(h) {
  const { waitFor, waitForTerminal, screenshot, log } = h;
  const seen = await runIds();
  await openInEditor("train.py");
  // Open where notifications show (the bell) first: the first-load one lasts only as long as the load.
  await vscode.commands.executeCommand("notifications.showList");
  await h.ui.palette("Hot Swap: Run on Warm GPU");
  log(`status bar while loading: ${await ui.firstLoadIsShown(h)}`);
  const text = await waitForTerminal(/done: 5 steps, final loss/, 240000);
  assertLines(text, ["model: 124,672 parameters", ...STEPS, "done: 5 steps"], "the first run");
  const { st, run } = await waitForNewRun(waitFor, seen);
  log(`first run: ${JSON.stringify(run)}`);
  assert.strictEqual(run.exit_code, 0, "the run exited with 0");
  assert.ok(run.entry.endsWith("train.py"), `the entry was train.py, not ${run.entry}`);
  const found = warmObject(st, WARM_KEY);
  assert.ok(found, `${WARM_KEY} is warm after the first run`);
  state.warm = { workerPid: found.worker.pid, build: found.warm.build_seconds, hits: found.warm.hits };
  log(`status bar after the run: ${await ui.idleWithWarmModel(h)}`);
  await screenshot("first-run-output");
}

async function editAndSaveReruns({ waitFor, waitForTerminal, screenshot, log }) {
  assert.ok(state.warm, "the first run left a warm model");
  const seen = await runIds();
  const doc = await openInEditor("train.py");
  const line = lineOf(doc, 'print(f"done: ');
  const edit = new vscode.WorkspaceEdit();
  const range = doc.lineAt(line).range;
  const indent = doc.lineAt(line).text.match(/^\s*/)[0];
  edit.replace(doc.uri, range, indent + EDITED_LINE);
  assert.ok(await vscode.workspace.applyEdit(edit), "the edit applied");
  assert.ok(await doc.save(), "the document saved");
  const text = await waitForTerminal(/e2e edit: 5 steps, final loss/, 120000);
  const rerun = after(text, "done: 5 steps, final loss"); // the first run's last line
  assertLines(rerun, ["model: 124,672 parameters", ...STEPS, "e2e edit: 5 steps"], "the rerun");
  assert.ok(rerun.includes(WARM_KEY), `the rerun's header or footer names the warm model it reused:\n${rerun}`);
  const { st, run } = await waitForNewRun(waitFor, seen);
  log(`rerun: ${JSON.stringify(run)}`);
  assert.strictEqual(run.exit_code, 0, "the rerun exited with 0");
  const found = warmObject(st, WARM_KEY);
  assert.ok(found, `${WARM_KEY} is still warm`);
  assert.strictEqual(found.worker.pid, state.warm.workerPid, "the same worker served the rerun");
  assert.strictEqual(found.warm.build_seconds, state.warm.build, "the model was not rebuilt");
  assert.ok(found.warm.hits > state.warm.hits, `the rerun took the warm model (hits ${found.warm.hits})`);
  state.warm.hits = found.warm.hits;
  await screenshot("rerun-after-save");
}

async function debugStopsAtBreakpoint({ waitFor, within, screenshot, log }, round) {
  const seen = await runIds();
  const doc = await openInEditor("train.py");
  const line = lineOf(doc, "final = train(args, model)");
  const breakpoint = new vscode.SourceBreakpoint(new vscode.Location(doc.uri, new vscode.Position(line, 0)));
  vscode.debug.addBreakpoints([breakpoint]);
  try {
    const stopped = nextStop();
    const ended = sessionsEnded();
    await vscode.commands.executeCommand("workbench.action.debug.start"); // what F5 does
    const stop = await within(stopped, 180000, "the debugger to stop at the breakpoint");
    log(`debug round ${round} stopped at ${stop.file}:${stop.line}`);
    await screenshot(`debug-stopped-round-${round}`);
    assert.strictEqual(stop.line, line + 1, "stopped on the breakpoint's line");
    assert.ok(stop.file && stop.file.endsWith("train.py"), `stopped in train.py, not ${stop.file}`);
    await stop.session.customRequest("continue", { threadId: stop.threadId });
    await within(ended, 120000, "the debug session to end");
    const { run } = await waitForNewRun(waitFor, seen);
    log(`debug run: ${JSON.stringify(run)}`);
    assert.strictEqual(run.exit_code, 0, "the debugged run exited with 0 after continuing");
  } finally {
    vscode.debug.removeBreakpoints([breakpoint]);
    if (vscode.debug.activeDebugSession) {
      await vscode.debug.stopDebugging(); // a failed round must not block the next one
    }
  }
}

/** The breakpoint VS Code holds on `line` of `doc`, if any. */
function breakpointAt(doc, line) {
  return vscode.debug.breakpoints.find((b) => b instanceof vscode.SourceBreakpoint
    && b.location.uri.fsPath === doc.uri.fsPath && b.location.range.start.line === line);
}

// A user without the Python extension: F9 on a line (the keyboard, not the API) sets a breakpoint
// because the extension contributes breakpoints for Python, and "Debug on Warm GPU" stops there.
async function f9BreakpointStopsDebugOnWarmGpu({ waitFor, within, screenshot, log, press }) {
  const seen = await runIds();
  const doc = await openInEditor("train.py");
  const line = lineOf(doc, "final = train(args, model)");
  const editor = vscode.window.activeTextEditor;
  editor.selection = new vscode.Selection(line, 0, line, 0);
  editor.revealRange(new vscode.Range(line, 0, line, 0), vscode.TextEditorRevealType.InCenter);
  assert.ok(!breakpointAt(doc, line), "no breakpoint there before F9");
  await vscode.commands.executeCommand("workbench.action.focusActiveEditorGroup");
  await press("F9");
  const breakpoint = await waitFor("F9 to set a breakpoint", () => breakpointAt(doc, line), 15000);
  await screenshot("f9-breakpoint-set");
  try {
    const stopped = nextStop();
    const ended = sessionsEnded();
    await vscode.commands.executeCommand("hotswap.debug"); // "Debug on Warm GPU"
    const stop = await within(stopped, 180000, "Debug on Warm GPU to stop at the F9 breakpoint");
    log(`Debug on Warm GPU stopped at ${stop.file}:${stop.line}`);
    await screenshot("debug-on-warm-gpu-stopped-at-f9-breakpoint");
    assert.strictEqual(stop.line, line + 1, "stopped on the line F9 marked");
    assert.ok(stop.file && stop.file.endsWith("train.py"), `stopped in train.py, not ${stop.file}`);
    await stop.session.customRequest("continue", { threadId: stop.threadId });
    await within(ended, 120000, "the debug session to end");
    const { run } = await waitForNewRun(waitFor, seen);
    assert.strictEqual(run.exit_code, 0, "the debugged run exited with 0 after continuing");
  } finally {
    vscode.debug.removeBreakpoints([breakpoint]);
    if (vscode.debug.activeDebugSession) {
      await vscode.debug.stopDebugging();
    }
  }
}

async function cancelLongRun(h) {
  const { waitFor, waitForTerminal, screenshot, log } = h;
  fs.writeFileSync(path.join(workspaceDir(), "sleepy.py"), SLEEPY);
  const seen = await runIds();
  await openInEditor("sleepy.py");
  await vscode.commands.executeCommand("hotswap.run");
  await waitFor("sleepy.py to be running", async () => {
    const run = lastRun(await status());
    return run && run.entry.endsWith("sleepy.py") && run.state === "running";
  }, 120000);
  await waitForTerminal(/sleeping now/, 30000); // printed (and flushed) as it starts
  await screenshot("long-run-running");
  await ui.clickStopButton(h); // the editor title's stop button
  const { st, run } = await waitForNewRun(waitFor, seen, 60000);
  log(`cancelled run: ${JSON.stringify(run)}`);
  assert.ok(run.entry.endsWith("sleepy.py"));
  assert.strictEqual(run.exit_code, 130, "a cancelled run exits with 130, as after Ctrl+C");
  const shown = await waitForTerminal(/sleeping now[^]*130/, 30000);
  assert.ok(!after(shown, "sleeping now").includes("woke up"), "the script did not run to its end");
  const found = warmObject(st, WARM_KEY);
  assert.ok(found, `${WARM_KEY} is still warm after the cancel`);
  assert.strictEqual(found.worker.pid, state.warm.workerPid, "cancelling did not cost the worker");
  await screenshot("long-run-cancelled");
}

const BROKEN = 'def check(x):\n    raise ValueError(f"bad value {x}")\n\n\nif __name__ == "__main__":\n    check(3)\n';

// The extension starts `hotswap lsp` (vscode-languageclient): a failed run shows in the Problems
// panel at its failing line, and the entry script gets the server's lenses with the result.
async function failedRunInProblems({ waitFor, screenshot, log }) {
  fs.writeFileSync(path.join(workspaceDir(), "broken.py"), BROKEN);
  const seen = await runIds();
  const doc = await openInEditor("broken.py");
  await vscode.commands.executeCommand("hotswap.run");
  const { run } = await waitForNewRun(waitFor, seen);
  assert.strictEqual(run.exit_code, 1, "the script failed");
  const found = await waitFor("the failed run in the Problems panel", () => {
    const diagnostics = vscode.languages.getDiagnostics(doc.uri).filter((d) => d.source === "hotswap");
    return diagnostics.length ? diagnostics : null;
  }, 60000);
  log(`diagnostics: ${JSON.stringify(found.map((d) => [d.message, d.range.start.line]))}`);
  assert.strictEqual(found[0].message, "ValueError: bad value 3");
  assert.strictEqual(found[0].range.start.line, 1, "at the raise, the deepest frame");
  await vscode.commands.executeCommand("workbench.actions.view.problems");
  const lenses = await waitFor("the result lens", async () => {
    const all = await vscode.commands.executeCommand("vscode.executeCodeLensProvider", doc.uri);
    const titles = (all || []).map((l) => l.command && l.command.title);
    return titles.includes("✗ ValueError · line 2") ? titles : null;
  }, 30000);
  log(`lenses: ${JSON.stringify(lenses)}`);
  assert.ok(lenses.includes("Run on warm GPU") && lenses.includes("Debug"), "run and debug lenses");
  await screenshot("failed-run-in-problems-panel");
}

// -- a window reload keeps the warm model ---------------------------------------------------

const BEFORE_RELOAD = () => path.join(process.env.HOTSWAP_E2E_CONTROL, "before-reload.json");

/** Developer: Reload Window from the palette; the suite goes on in the reloaded window. */
async function reloadWindow({ ui: page, sleep }) {
  const st = await status();
  const found = warmObject(st, WARM_KEY);
  assert.ok(found, `${WARM_KEY} is warm before the reload`);
  const before = { daemon: st.daemon.pid, worker: found.worker.pid, build: found.warm.build_seconds, hits: found.warm.hits };
  fs.writeFileSync(BEFORE_RELOAD(), JSON.stringify(before));
  await page.palette("Developer: Reload Window");
  await sleep(60000); // the window reloads under us; this host ends
}

/** The reloaded window reconnects to the same daemon: the model is warm, no factory call. */
async function warmAfterReload(h) {
  const { waitFor, waitForTerminal, screenshot, log } = h;
  const before = JSON.parse(fs.readFileSync(BEFORE_RELOAD(), "utf8"));
  const bar = await waitFor("the status bar to show the warm model, with no run yet", async () => {
    const text = await h.ui.statusBar();
    return /1 warm/.test(text) ? text : null;
  }, 60000, 500);
  log(`status bar after the reload: ${bar}`);
  await screenshot("reloaded-window-reconnected");
  await openInEditor("train.py");
  const { st, run } = await ui.runFromPalette(h);
  await waitForTerminal(/(done|e2e edit): 5 steps, final loss/, 60000); // the edit of the rerun test
  assert.strictEqual(run.exit_code, 0);
  assert.strictEqual(st.daemon.pid, before.daemon, "the same daemon");
  const found = warmObject(st, WARM_KEY);
  assert.ok(found, `${WARM_KEY} is still warm`);
  assert.strictEqual(found.worker.pid, before.worker, "the same worker");
  assert.strictEqual(found.warm.build_seconds, before.build, "the factory did not run again");
  assert.ok(found.warm.hits > before.hits, "the run after the reload took the warm model");
  await screenshot("run-after-reload");
}

exports.run = () =>
  runTests([
    { name: "extension activates", required: true, timeout: 60000, fn: activates },
    { name: "Run on Warm GPU shows the output", required: true, timeout: 300000, fn: runOnWarmGpu },
    { name: "edit and save reruns without reloading the model", timeout: 180000, fn: editAndSaveReruns },
    { name: "F5 stops at a breakpoint", timeout: 240000, fn: (h) => debugStopsAtBreakpoint(h, 1) },
    { name: "F5 stops at a breakpoint again", timeout: 240000, fn: (h) => debugStopsAtBreakpoint(h, 2) },
    { name: "F9 sets a breakpoint that Debug on Warm GPU stops at", timeout: 240000, fn: f9BreakpointStopsDebugOnWarmGpu },
    { name: "cancel stops a long run with 130", timeout: 180000, fn: cancelLongRun },
    { name: "a failed run shows in the Problems panel", timeout: 180000, fn: failedRunInProblems },
    { name: "metrics chart grows and overlays the rerun", timeout: 300000, fn: metricsChartGrowsAndOverlaysTheRerun },
    { name: "F5 without launch.json stops at an F9 breakpoint in a workspace module", timeout: 180000, fn: debugging.f5WithoutLaunchJson },
    { name: "Debug: Add Configuration... offers the Hot Swap snippet, and F5 uses launch.json", timeout: 180000, fn: debugging.launchJsonFromTheSnippet },
    { name: "a debug start the daemon refuses is reported", timeout: 120000, fn: debugging.failedDebugStartReported },
    { name: "Save All during a run: one rerun, of the newest state", timeout: 240000, fn: ui.saveDuringRunRunsNewestState },
    { name: "the status bar menu turns rerun on save off and on", timeout: 180000, fn: ui.statusBarTogglesRunOnSave },
    { name: "an editor's unsaved text is not run, and the terminal says so", timeout: 120000, fn: ui.unsavedTextIsNotRun },
    { name: "typing in the terminal reaches input()", timeout: 120000, fn: ui.typingReachesInput },
    { name: "Ctrl+click on a traceback line opens the file at that line", timeout: 120000, fn: ui.tracebackLineOpensFile },
    { name: "stderr shows in its own colour", timeout: 120000, fn: ui.stderrIsDistinct },
    { name: "Show Warm Objects from the palette", timeout: 60000, fn: ui.showWarmObjects },
    { name: "Show Backend Log from the palette", timeout: 60000, fn: ui.showBackendLog },
    { name: "Developer: Reload Window", timeout: 120000, fn: reloadWindow, reloads: true },
    { name: "the reloaded window reconnects: the model is still warm", timeout: 180000, fn: warmAfterReload },
    { name: "Show Warm Objects, pick the model, release it", timeout: 120000, fn: ui.releaseAWarmObject },
    { name: "a dead worker is explained, with the backend's log a click away", timeout: 180000, fn: ui.deadWorkerExplained },
    { name: "Restart Backend from the palette", timeout: 120000, fn: ui.restartBackend },
    { name: "hotswap.backend: a daemon of another protocol version is explained", timeout: 120000, fn: remote.otherProtocolVersionExplained },
    { name: "hotswap.backend: a run in serve --mirror; its traceback opens the editor's file", timeout: 180000, fn: remote.mirrorRunTracebackOpensEditorsFile },
    { name: "no hotswap.python, no Python extension: the backend runs on python3 from PATH", timeout: 180000, fn: remote.python3WhenNoInterpreterIsSet },
  ]);
