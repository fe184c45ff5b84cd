// The end-to-end suite, run inside VS Code's extension host by run.mjs: a user's session with
// the tiny_gpt sample, checked through what the user sees (the terminal, the debugger's stop)
// and through the backend's own account (`hotswap status --json`).
"use strict";

const assert = require("assert");
const fs = require("fs");
const path = require("path");
const { execFile } = require("child_process");
const vscode = require("vscode");
const { runTests } = require("./runner");
const { metricsChartGrowsAndOverlaysTheRerun } = require("./metrics");

const EXTENSION_ID = process.env.HOTSWAP_E2E_EXTENSION_ID || "hotswap.hotswap";
const WARM_KEY = "tiny_gpt/tiny";
const EDITED_LINE = 'print(f"e2e edit: {args.steps} steps, final loss {final:.4f}")';
const SLEEPY = 'import time\n\nprint("sleeping now", flush=True)\ntime.sleep(600)\nprint("woke up")\n';

function workspaceDir() {
  const folder = vscode.workspace.workspaceFolders && vscode.workspace.workspaceFolders[0];
  assert.ok(folder, "a workspace folder is open");
  return folder.uri.fsPath;
}

function python() {
  return vscode.workspace.getConfiguration("hotswap").get("python") || "python3";
}

/** The daemon's account of itself: workers, warm objects, recent runs (null when not running). */
function status() {
  const args = ["-m", "hotswap", "status", "--json", "--workspace", workspaceDir()];
  return new Promise((resolve) => {
    execFile(python(), args, { timeout: 30000 }, (err, stdout) => {
      try {
        const parsed = JSON.parse(stdout);
        resolve(parsed.running ? parsed : null);
      } catch {
        resolve(null);
      }
    });
  });
}

function lastRun(st) {
  return st && st.runs.length ? st.runs[st.runs.length - 1] : null;
}

function warmObject(st, key) {
  for (const worker of (st && st.workers) || []) {
    const warm = (worker.warm || []).find((w) => w.key === key);
    if (warm) {
      return { worker, warm };
    }
  }
  return null;
}

/** The ids of the runs the daemon knows about now. */
async function runIds() {
  const st = await status();
  return new Set(st ? st.runs.map((r) => r.run_id) : []);
}

/**
 * Wait until the daemon has run something not in `seen` and has nothing new still going;
 * return the status then and the newest of those runs.
 */
async function waitForNewRun(waitFor, seen, timeoutMs = 120000) {
  return waitFor("a new run to finish in hotswap status", async () => {
    const st = await status();
    const fresh = st ? st.runs.filter((r) => !seen.has(r.run_id)) : [];
    if (fresh.length && fresh.every((r) => r.state === "finished")) {
      return { st, run: fresh[fresh.length - 1] };
    }
    return null;
  }, timeoutMs, 300);
}

async function openInEditor(relative) {
  const doc = await vscode.workspace.openTextDocument(path.join(workspaceDir(), relative));
  await vscode.window.showTextDocument(doc, { preview: false });
  return doc;
}

function lineOf(doc, text) {
  for (let i = 0; i < doc.lineCount; i++) {
    if (doc.lineAt(i).text.includes(text)) {
      return i;
    }
  }
  throw new Error(`${text} not found in ${doc.fileName}`);
}

const STEPS = [1, 2, 3, 4, 5].map((i) => `step ${i}/5 loss `);

/** `text` has a line starting with each of `starts`, in that order: no output went missing. */
function assertLines(text, starts, what) {
  const lines = text.split("\n").map((line) => line.trim());
  let at = 0;
  for (const start of starts) {
    const found = lines.findIndex((line, i) => i >= at && line.startsWith(start));
    assert.ok(found >= 0, `${what}: no line "${start}…" (in order) in the terminal:\n${text}`);
    at = found + 1;
  }
}

/** What the terminal shows after the last `marker` (the latest run's part), or "". */
function after(text, marker) {
  const at = text.lastIndexOf(marker);
  return at < 0 ? "" : text.slice(at + marker.length);
}

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

async function runOnWarmGpu({ waitFor, waitForTerminal, screenshot, log }) {
  const seen = await runIds();
  await openInEditor("train.py");
  await vscode.commands.executeCommand("hotswap.run");
  const text = await waitForTerminal(/done: 5 steps, final loss/, 240000);
  assertLines(text, ["model: 124,672 parameters", ...STEPS, "done: 5 steps"], "the first run");
  const { st, run } = await waitForNewRun(waitFor, seen);
  log(`first run: ${JSON.stringify(run)}`);
  assert.strictEqual(run.exit_code, 0, "the run exited with 0");
  assert.ok(run.entry.endsWith("train.py"), `the entry was train.py, not ${run.entry}`);
  const found = warmObject(st, WARM_KEY);
  assert.ok(found, `${WARM_KEY} is warm after the first run`);
  state.warm = { workerPid: found.worker.pid, build: found.warm.build_seconds, hits: found.warm.hits };
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

/** Resolve with the first stop's top frame (its file and line), via the active stack item. */
function nextStop() {
  return new Promise((resolve, reject) => {
    const sub = vscode.debug.onDidChangeActiveStackItem(async (item) => {
      if (!item || item.frameId === undefined) {
        return;
      }
      sub.dispose();
      try {
        const trace = await item.session.customRequest("stackTrace", { threadId: item.threadId, levels: 1 });
        const frame = trace.stackFrames[0];
        resolve({ session: item.session, threadId: item.threadId, file: frame.source && frame.source.path, line: frame.line });
      } catch (err) {
        reject(err);
      }
    });
  });
}

function sessionsEnded() {
  return new Promise((resolve) => {
    const sub = vscode.debug.onDidTerminateDebugSession(() => {
      if (!vscode.debug.activeDebugSession) {
        sub.dispose();
        resolve();
      }
    });
  });
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

async function cancelLongRun({ waitFor, waitForTerminal, screenshot, log }) {
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
  await vscode.commands.executeCommand("hotswap.cancel");
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
  ]);
