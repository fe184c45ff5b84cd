/**
 * The Metrics webview: one uPlot chart per metric, a curve per shown run of the entry, a run
 * toggle with labels, log scale and smoothing. It keeps a MetricsModel fed by the extension's
 * messages and draws at most once per animation frame. Colours are VS Code's theme variables.
 */

import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { type ChartData, type FromWebview, MetricsModel, type ToWebview, runLabel, thinned } from "./metricsData";

declare function acquireVsCodeApi(): { postMessage(msg: FromWebview): void };

const vscodeApi = acquireVsCodeApi();
const model = new MetricsModel();
const charts = new Map<string, { plot: uPlot; key: string; box: HTMLElement }>();
const options = { smoothing: 0, logScale: false };
const PALETTE = ["--vscode-charts-blue", "--vscode-charts-orange", "--vscode-charts-green", "--vscode-charts-purple", "--vscode-charts-yellow", "--vscode-charts-red"];
let drawQueued = false;

function themeColor(name: string, fallback: string): string {
  return getComputedStyle(document.body).getPropertyValue(name).trim() || fallback;
}

function el<K extends keyof HTMLElementTagNameMap>(tag: K, cls?: string, text?: string): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (cls) {
    node.className = cls;
  }
  if (text !== undefined) {
    node.textContent = text;
  }
  return node;
}

function byId(id: string): HTMLElement {
  const node = document.getElementById(id);
  if (node === null) {
    throw new Error(`the page lacks #${id}`);
  }
  return node;
}

/** The run colour: by position among the entry's runs, so a run keeps its colour as it ages. */
function runColor(runId: string): string {
  const i = Math.max(0, model.runs.findIndex((r) => r.run_id === runId));
  return themeColor(PALETTE[i % PALETTE.length], "#3794ff");
}

function renderRuns(): void {
  const list = byId("runs");
  list.replaceChildren();
  for (const run of model.runs) {
    const label = el("label", "run");
    const box = el("input");
    box.type = "checkbox";
    box.checked = model.isShown(run.run_id);
    box.dataset.run = run.run_id;
    box.addEventListener("change", () => {
      model.toggle(run.run_id);
      scheduleDraw(true);
    });
    const swatch = el("span", "swatch");
    swatch.style.background = runColor(run.run_id);
    label.append(box, swatch, el("span", "", runLabel(run, model.current)));
    list.append(label);
  }
  byId("empty").hidden = model.metricNames().length > 0;
}

function chartOptions(name: string, data: ChartData, width: number): uPlot.Options {
  const fg = themeColor("--vscode-foreground", "#ccc");
  const grid = themeColor("--vscode-editorWidget-border", "rgba(128,128,128,0.25)");
  const axis = { stroke: fg, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 } };
  return {
    width,
    height: 220,
    scales: { x: { time: false }, y: options.logScale ? { distr: 3 } : {} },
    axes: [axis, { ...axis, size: 60 }],
    legend: { live: true },
    cursor: { drag: { x: true, y: false } },
    series: [
      { label: "step" },
      ...data.runs.map((run) => ({
        label: runLabel(run, model.current),
        stroke: runColor(run.run_id),
        width: run.run_id === model.current ? 2 : 1.25,
        spanGaps: true,
        points: { show: false },
        value: (_u: uPlot, v: number | null) => (v === null ? "–" : v.toPrecision(5)),
      })),
    ],
  };
}

/** Draw every metric: a chart is rebuilt when its curves change (runs, scale), else fed. */
function draw(): void {
  drawQueued = false;
  const container = byId("charts");
  const names = model.metricNames();
  for (const [name, chart] of charts) {
    if (!names.includes(name)) {
      chart.plot.destroy();
      chart.box.remove();
      charts.delete(name);
    }
  }
  for (const name of names) {
    const data = model.chart(name, options);
    const key = `${data.runs.map((r) => r.run_id).join(",")}|${options.logScale}|${document.body.className}`;
    let chart = charts.get(name);
    const aligned: uPlot.AlignedData = [data.x, ...data.ys] as unknown as uPlot.AlignedData;
    if (chart === undefined || chart.key !== key) {
      chart?.plot.destroy();
      const box = chart?.box ?? el("section", "chart");
      box.replaceChildren();
      box.dataset.metric = name;
      const title = el("h2", "", name);
      const note = el("span", "thinned");
      title.append(note);
      box.append(title);
      if (chart === undefined) {
        container.append(box);
      }
      const plot = new uPlot(chartOptions(name, data, Math.max(300, container.clientWidth - 8)), aligned, box);
      chart = { plot, key, box };
      charts.set(name, chart);
    } else {
      chart.plot.setData(aligned);
    }
    const current = model.current ? model.series.get(model.current)?.get(name) : undefined;
    chart.box.querySelector(".thinned")!.textContent = thinned(current) ? ` (${thinned(current)})` : "";
    chart.box.dataset.curves = String(data.runs.length);
    chart.box.dataset.points = String(data.counts[data.runs.findIndex((r) => r.run_id === model.current)] ?? 0);
  }
}

function scheduleDraw(runsChanged = false): void {
  if (runsChanged) {
    renderRuns();
  }
  if (!drawQueued) {
    drawQueued = true;
    requestAnimationFrame(draw);
  }
}

function wireControls(): void {
  const smoothing = byId("smoothing") as HTMLInputElement;
  const value = byId("smoothing-value");
  smoothing.addEventListener("input", () => {
    options.smoothing = Number(smoothing.value) / 100;
    value.textContent = options.smoothing.toFixed(2);
    scheduleDraw();
  });
  const log = byId("log-scale") as HTMLInputElement;
  log.addEventListener("change", () => {
    options.logScale = log.checked;
    scheduleDraw();
  });
  // A theme switch changes the body's class: rebuild the charts in the new colours.
  new MutationObserver(() => scheduleDraw(true)).observe(document.body, { attributes: true, attributeFilter: ["class"] });
  window.addEventListener("resize", () => {
    charts.forEach((c) => c.plot.setSize({ width: Math.max(300, byId("charts").clientWidth - 8), height: 220 }));
  });
}

window.addEventListener("message", (event: MessageEvent<ToWebview>) => {
  const msg = event.data;
  model.apply(msg);
  scheduleDraw(msg.type !== "updates" || byId("runs").childElementCount !== model.runs.length);
});

wireControls();
vscodeApi.postMessage({ type: "ready" });
