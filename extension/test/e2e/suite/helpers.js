// What the scenarios share: the workspace, the daemon's own account (`hotswap status --json`),
// and editors.
"use strict";

const assert = require("assert");
const path = require("path");
const { execFile } = require("child_process");
const vscode = require("vscode");

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

module.exports = {
  workspaceDir, python, status, lastRun, warmObject, runIds, waitForNewRun, openInEditor, lineOf, assertLines, after, STEPS,
  nextStop, sessionsEnded,
};

