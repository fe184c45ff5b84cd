// `make bench`'s VS Code figure, run by run.mjs in code-server: Ctrl+S on a script that has run
// (rerun on save) to its first output line rendered in the Hot Swap terminal, backend warm.
"use strict";

const assert = require("assert");
const fs = require("fs");
const path = require("path");
const vscode = require("vscode");
const { runTests, request } = require("./runner");
const { runIds, waitForNewRun, openInEditor } = require("./helpers");
const { write, setText, focusEditor } = require("./ui");

const EXTENSION_ID = process.env.HOTSWAP_E2E_EXTENSION_ID || "hotswap.hotswap";
const WARMUP = 3;
const SAMPLES = 15;

async function activates({ waitFor }) {
  const ext = await waitFor(`extension ${EXTENSION_ID}`, () => vscode.extensions.getExtension(EXTENSION_ID));
  await ext.activate();
}

function percentile(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
}

async function saveToRenderedLine(h) {
  const { waitFor, waitForTerminal, log } = h;
  write("bench_save.py", 'print("bench-0-line", flush=True)\n');
  const doc = await openInEditor("bench_save.py");
  let seen = await runIds();
  await vscode.commands.executeCommand("hotswap.run");
  await waitForTerminal(/bench-0-line/, 120000);
  await waitForNewRun(waitFor, seen);
  const samples = [];
  for (let i = 1; i <= WARMUP + SAMPLES; i++) {
    await setText(doc, `print("bench-${i}-line", flush=True)\n`);
    await focusEditor();
    seen = await runIds();
    const { ms } = await request("saveToRender", { marker: `bench-${i}-line` }, 60000);
    const { run } = await waitForNewRun(waitFor, seen);
    assert.strictEqual(run.exit_code, 0);
    if (i > WARMUP) {
      samples.push(ms);
    }
    log(`save ${i}: ${ms.toFixed(1)} ms to the rendered line`);
  }
  const sorted = [...samples].sort((a, b) => a - b);
  const result = { samples, median_ms: percentile(sorted, 0.5), p90_ms: percentile(sorted, 0.9), min_ms: sorted[0] };
  fs.writeFileSync(path.join(process.env.HOTSWAP_E2E_CONTROL, "bench.json"), JSON.stringify(result, null, 2));
  log(`save → rendered line: median ${result.median_ms.toFixed(0)} ms, p90 ${result.p90_ms.toFixed(0)} ms`);
}

exports.run = () =>
  runTests([
    { name: "extension activates", required: true, timeout: 60000, fn: activates },
    { name: "save → first output line rendered in the terminal", timeout: 300000, fn: saveToRenderedLine },
  ]);
