// The Metrics view end to end: a script that calls hotswap.log opens "Hot Swap: Metrics" by
// itself, its chart grows while the run logs, and a rerun after an edit draws a second curve.
// The charts are read from the webview's own DOM (the harness looks into its iframe).
"use strict";

const assert = require("assert");
const fs = require("fs");
const path = require("path");
const vscode = require("vscode");

const STEPS = 150;
const SCRIPT = (scale) => `import time
import hotswap

SCALE = ${scale}
for step in range(${STEPS}):
    hotswap.log({"loss": SCALE / (step + 1), "lr": 0.001 * (1 + step % 10)})
    time.sleep(0.06)
print("metrics done", SCALE)
`;

function workspaceDir() {
  return vscode.workspace.workspaceFolders[0].uri.fsPath;
}

async function lossChart(webviewElements) {
  const charts = await webviewElements("section.chart[data-metric]");
  return charts.find((c) => c.metric === "loss") || null;
}

async function metricsChartGrowsAndOverlaysTheRerun({ waitFor, waitForTerminal, screenshot, log, webviewElements, webviewAction }) {
  const file = path.join(workspaceDir(), "metrics_demo.py");
  fs.writeFileSync(file, SCRIPT("1.0"));
  const doc = await vscode.workspace.openTextDocument(file);
  await vscode.window.showTextDocument(doc, { preview: false });
  await vscode.commands.executeCommand("hotswap.run");

  const first = await waitFor("the Metrics view to open with a loss chart", async () => {
    const chart = await lossChart(webviewElements);
    return chart && Number(chart.points) > 0 ? chart : null;
  }, 120000, 200);
  log(`first look: ${JSON.stringify(first)}`);
  const grown = await waitFor("the loss chart to grow while the run logs", async () => {
    const chart = await lossChart(webviewElements);
    return chart && Number(chart.points) > Number(first.points) && Number(chart.points) < STEPS ? chart : null;
  }, 60000, 150);
  log(`while running: ${JSON.stringify(grown)}`);
  await screenshot("metrics-chart-growing");
  await waitForTerminal(/metrics done 1\.0/, 60000);
  await waitFor("every point of the first run drawn", async () => {
    const chart = await lossChart(webviewElements);
    return chart && Number(chart.points) === STEPS ? chart : null;
  }, 30000, 200);

  // Edit and save: rerun on save runs it again; the chart overlays the two runs.
  const edit = new vscode.WorkspaceEdit();
  const line = doc.getText().split("\n").findIndex((l) => l.startsWith("SCALE = "));
  edit.replace(doc.uri, doc.lineAt(line).range, "SCALE = 0.5");
  assert.ok(await vscode.workspace.applyEdit(edit), "the edit applied");
  assert.ok(await doc.save(), "the document saved");
  await waitForTerminal(/metrics done 0\.5/, 120000);
  const both = await waitFor("two curves, the rerun's complete", async () => {
    const chart = await lossChart(webviewElements);
    return chart && chart.curves === "2" && Number(chart.points) === STEPS ? chart : null;
  }, 30000, 200);
  log(`after the rerun: ${JSON.stringify(both)}`);
  const runs = await webviewElements("#runs input[data-run]");
  assert.strictEqual(runs.length, 2, "the view lists both runs of metrics_demo.py");
  await screenshot("metrics-two-runs");

  // Log scale, then a hover over the loss chart: the legend gives both runs' values there.
  await webviewAction("#log-scale", "click");
  await waitFor("log scale on", async () => (await webviewElements("#log-scale"))[0].checked, 10000);
  await webviewAction('section.chart[data-metric="loss"] .u-over', "hover", 0.3, 0.5);
  const values = await waitFor("the legend's values under the cursor", async () => {
    const shown = (await webviewElements('section.chart[data-metric="loss"] .u-legend .u-value')).map((v) => v.text);
    return shown.length === 3 && shown.every((t) => t && t !== "--" && t !== "–") ? shown : null;
  }, 10000, 200);
  log(`hover: ${JSON.stringify(values)}`);
  const [step, earlier, current] = values.map(Number);
  assert.ok(Math.abs(earlier - 1 / (step + 1)) < 1e-4 && Math.abs(current - 0.5 / (step + 1)) < 1e-4, `values at step ${step}: ${values}`);
  await screenshot("metrics-log-scale-hover");

  // Untick the earlier run: one curve left, the rerun's.
  await webviewAction("#runs label:nth-child(2) input", "click");
  await waitFor("the earlier run hidden", async () => {
    const chart = await lossChart(webviewElements);
    return chart && chart.curves === "1" && Number(chart.points) === STEPS ? chart : null;
  }, 10000, 200);
}

module.exports = { metricsChartGrowsAndOverlaysTheRerun };
