/**
 * The Metrics view's data, without DOM or VS Code: the runs of one entry and their series as
 * the daemon sends them (full copies and live updates), and what one chart draws of them
 * (aligned steps, smoothing, log scale, labels). The extension and the webview both keep one.
 */

import type { MetricPoint, MetricSeries, RunRecord } from "../node/records";

/** What the daemon keeps of one series: points in the order logged, and how it thinned them. */
export interface SeriesData {
  points: MetricPoint[];
  count: number;
  stride: number;
  last: MetricPoint | null;
}

/** A live update (the daemon's metrics_update body). */
export interface MetricsUpdate {
  run_id: string;
  entry: string;
  series: MetricSeries[];
}

/** Messages from the extension to the webview. */
export type ToWebview =
  | { type: "runs"; entry: string; current: string | null; runs: RunRecord[] }
  | { type: "series"; run_id: string; series: MetricSeries[] }
  | { type: "updates"; updates: MetricsUpdate[] };

/** Messages from the webview to the extension. */
export type FromWebview = { type: "ready" };

export const SHOWN_BY_DEFAULT = 2; // the current run and the one before it
export const MAX_RUNS = 6; // of the entry, in the view

/** A series after `update`: replaced by a full copy or a thinned one, else extended. */
export function applySeries(held: SeriesData | undefined, update: MetricSeries): SeriesData {
  const points = update.reset || held === undefined ? update.points.slice() : held.points.concat(update.points);
  return { points, count: update.count, stride: update.stride, last: update.last };
}

export class MetricsModel {
  entry: string | null = null;
  current: string | null = null;
  /** Newest first. */
  runs: RunRecord[] = [];
  readonly series = new Map<string, Map<string, SeriesData>>();
  /** The user's choices; a run they did not touch is shown if it is among the newest two. */
  private readonly chosen = new Map<string, boolean>();

  apply(msg: ToWebview): void {
    if (msg.type === "runs") {
      this.setRuns(msg.entry, msg.current, msg.runs);
    } else if (msg.type === "series") {
      this.setSeries(msg.run_id, msg.series);
    } else {
      msg.updates.forEach((u) => this.update(u));
    }
  }

  /** The runs of `entry` the view shows (newest first); series of runs no longer listed go. */
  setRuns(entry: string, current: string | null, runs: RunRecord[]): void {
    this.entry = entry;
    this.current = current ?? runs[0]?.run_id ?? null;
    this.runs = runs.slice(0, MAX_RUNS);
    const kept = new Set(this.runs.map((r) => r.run_id));
    for (const id of [...this.series.keys()]) {
      if (!kept.has(id)) {
        this.series.delete(id);
      }
    }
  }

  setSeries(runId: string, series: MetricSeries[]): void {
    const held = new Map<string, SeriesData>();
    series.forEach((s) => held.set(s.name, applySeries(undefined, s)));
    this.series.set(runId, held);
  }

  /** A live update; false if it belongs to a run the model does not list (ask for `runs`). */
  update(update: MetricsUpdate): boolean {
    if (!this.runs.some((r) => r.run_id === update.run_id)) {
      return false;
    }
    const held = this.series.get(update.run_id) ?? new Map<string, SeriesData>();
    this.series.set(update.run_id, held);
    update.series.forEach((s) => held.set(s.name, applySeries(held.get(s.name), s)));
    return true;
  }

  isShown(runId: string): boolean {
    const i = this.runs.findIndex((r) => r.run_id === runId);
    return this.chosen.get(runId) ?? (i >= 0 && i < SHOWN_BY_DEFAULT);
  }

  toggle(runId: string): void {
    this.chosen.set(runId, !this.isShown(runId));
  }

  visibleRuns(): RunRecord[] {
    return this.runs.filter((r) => this.isShown(r.run_id));
  }

  /** Metric names of the listed runs, the current run's first, in the order logged. */
  metricNames(): string[] {
    const names = new Set<string>();
    for (const run of this.runs) {
      this.series.get(run.run_id)?.forEach((_, name) => names.add(name));
    }
    return [...names];
  }

  /** Every series of a run as full metric_series records (to hand a fresh webview). */
  fullSeries(runId: string): MetricSeries[] {
    const held = this.series.get(runId) ?? new Map<string, SeriesData>();
    return [...held].map(([name, s]) => ({ name, points: s.points, count: s.count, stride: s.stride, reset: true, last: s.last }));
  }

  /** What a chart of `name` draws: one curve per visible run that logged it, oldest first so
   * the newest is drawn on top. */
  chart(name: string, options: ChartOptions): ChartData {
    const runs = this.visibleRuns()
      .filter((r) => this.series.get(r.run_id)?.has(name))
      .reverse();
    const curves = runs.map((r) => curvePoints(this.series.get(r.run_id)!.get(name)!));
    const { x, ys } = align(curves);
    const shaped = ys.map((y) => (options.logScale ? positiveOnly(y) : y)).map((y) => smooth(y, options.smoothing));
    return { x, ys: shaped, runs, counts: curves.map((c) => c.length) };
  }
}

export interface ChartOptions {
  /** 0 (none) to 0.99: the weight of the previous smoothed value (TensorBoard's slider). */
  smoothing: number;
  logScale: boolean;
}

export interface ChartData {
  x: number[];
  ys: (number | null)[][];
  runs: RunRecord[];
  /** Points each curve has. */
  counts: number[];
}

/** A series' points by step (the newest value of a step wins), with its last point. */
export function curvePoints(series: SeriesData): MetricPoint[] {
  const byStep = new Map<number, MetricPoint>();
  for (const p of series.points) {
    byStep.set(p[0], p);
  }
  if (series.last !== null) {
    byStep.set(series.last[0], series.last);
  }
  return [...byStep.values()].sort((a, b) => a[0] - b[0]);
}

/** Curves on one x axis (the union of their steps); a curve without a step has null there. */
export function align(curves: MetricPoint[][]): { x: number[]; ys: (number | null)[][] } {
  const x = [...new Set(curves.flatMap((c) => c.map((p) => p[0])))].sort((a, b) => a - b);
  const index = new Map(x.map((step, i) => [step, i]));
  const ys = curves.map((curve) => {
    const y: (number | null)[] = new Array<number | null>(x.length).fill(null);
    curve.forEach((p) => (y[index.get(p[0])!] = Number.isFinite(p[1]) ? p[1] : null));
    return y;
  });
  return { x, ys };
}

/** An exponential moving average, debiased at the start as TensorBoard's; gaps stay gaps. */
export function smooth(y: (number | null)[], weight: number): (number | null)[] {
  if (weight <= 0) {
    return y;
  }
  let last = 0;
  let n = 0;
  return y.map((v) => {
    if (v === null) {
      return null;
    }
    last = last * weight + (1 - weight) * v;
    n += 1;
    return last / (1 - Math.pow(weight, n));
  });
}

function positiveOnly(y: (number | null)[]): (number | null)[] {
  return y.map((v) => (v !== null && v > 0 ? v : null));
}

/** A run as its legend names it: when it started and what changed since the one before. */
export function runLabel(run: RunRecord, current: string | null): string {
  const when = new Date(run.started * 1000).toTimeString().slice(0, 8);
  const who = run.run_id === current ? "this run" : run.state === "running" ? "running" : "earlier";
  return `${who} ${when} · ${changeSummary(run)}`;
}

export function changeSummary(run: RunRecord): string {
  if (run.previous === null) {
    return "first run";
  }
  if (run.changed === null) {
    return "changes unknown";
  }
  const parts: string[] = [];
  if (run.changed_count > 0) {
    const names = run.changed.slice(0, 3).map((p) => p.split("/").pop() ?? p);
    const more = run.changed_count - names.length;
    parts.push(`${names.join(", ")}${more > 0 ? ` +${more}` : ""} changed`);
  }
  if (run.args_changed) {
    parts.push(`args: ${run.args.join(" ") || "none"}`);
  }
  return parts.length ? parts.join(" · ") : "no change";
}

/** How a thinned series says so ("every 8th of 80,000 points"), or "". */
export function thinned(series: SeriesData | undefined): string {
  if (series === undefined || series.stride <= 1) {
    return "";
  }
  return `every ${series.stride}th of ${series.count.toLocaleString("en-US")} points`;
}
