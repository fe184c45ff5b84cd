/** The Metrics view's data: live updates from the daemon's own series store (Python), curves
 * aligned across runs, smoothing, log scale, and how runs are labelled and shown. */

import assert from "node:assert/strict";
import { test } from "node:test";
import type { MetricSeries, RunRecord } from "../../src/node/records";
import { MetricsModel, align, changeSummary, curvePoints, smooth, thinned } from "../../src/webview/metricsData";
import { python } from "../helpers";

/** The daemon's Series fed `total` points in batches of `batch`: every live update it makes,
 * then its full copy. */
function daemonSeries(total: number, batch: number): { updates: MetricSeries[]; full: MetricSeries } {
  const code = `
import json
from array import array
from hotswap import metrics_store
from hotswap.metrics_store import Series
metrics_store.SERIES_LIMIT = 1000  # thin often, in a few points
s, updates = Series("loss"), []
for start in range(0, ${total}, ${batch}):
    steps = array("q", range(start, min(start + ${batch}, ${total})))
    s.extend(steps, array("d", [1000.0 / (i + 1) for i in steps]), array("d", [float(i) for i in steps]))
    updates.append(s.record(full=False))
print(json.dumps({"updates": updates, "full": s.record(full=True)}))
`;
  return JSON.parse(python(code)) as { updates: MetricSeries[]; full: MetricSeries };
}

function record(runId: string, started: number, extra: Partial<RunRecord> = {}): RunRecord {
  return {
    run_id: runId, entry: "/ws/train.py", entry_kind: "path", args: [], cwd: "/ws", path_mappings: [], started,
    state: "finished", duration: 1, exit_code: 0, reason: "exited", error: null, warm_reused: [], previous: null,
    changed: null, changed_count: 0, args_changed: false, last: {}, ...extra,
  };
}

test("live updates, thinned as the daemon thins them, add up to the daemon's own series", () => {
  const { updates, full } = daemonSeries(25_000, 700);
  assert.ok(updates.some((u) => u.reset), "the daemon thinned the series on the way");
  const model = new MetricsModel();
  model.setRuns("/ws/train.py", "r1", [record("r1", 1)]);
  updates.forEach((u) => assert.ok(model.update({ run_id: "r1", entry: "/ws/train.py", series: [u] })));
  const held = model.series.get("r1")!.get("loss")!;
  const expected = full.points.filter((p) => p[0] % full.stride === 0); // the full copy adds min, max, last
  assert.deepEqual(held.points, expected);
  assert.equal(held.count, 25_000);
  assert.deepEqual(held.last, [24_999, 1000 / 25_000, 24_999]);
  assert.equal(thinned(held), `every ${full.stride}th of 25,000 points`);
  assert.deepEqual(curvePoints(held).at(-1), [24_999, 1000 / 25_000, 24_999]); // the last drawn too
});

test("an update of a run the model does not list is refused, so the view asks for the runs", () => {
  const model = new MetricsModel();
  model.setRuns("/ws/train.py", "r1", [record("r1", 1)]);
  const series = { name: "loss", points: [[0, 1, 0]], count: 1, stride: 1, reset: false, last: [0, 1, 0] } as MetricSeries;
  assert.equal(model.update({ run_id: "r2", entry: "/ws/train.py", series: [series] }), false);
  assert.equal(model.series.has("r2"), false);
});

test("runs with different steps share one x axis; gaps are null, non-finite values too", () => {
  const { x, ys } = align([
    [[0, 1, 0], [2, 3, 0], [4, Number.NaN, 0]],
    [[1, 10, 0], [2, 20, 0]],
  ]);
  assert.deepEqual(x, [0, 1, 2, 4]);
  assert.deepEqual(ys, [[1, null, 3, null], [null, 10, 20, null]]);
});

test("smoothing is TensorBoard's debiased moving average; weight 0 leaves values alone", () => {
  assert.deepEqual(smooth([1, 2, null, 3], 0), [1, 2, null, 3]);
  const out = smooth([2, 2, null, 4], 0.5);
  assert.deepEqual(out.slice(0, 3), [2, 2, null]); // a constant start stays constant
  const ema = 0.5 * (0.5 * (0.5 * 2) + 0.5 * 2) + 0.5 * 4; // from 0, three values in
  assert.ok(Math.abs((out[3] as number) - ema / (1 - 0.5 ** 3)) < 1e-12);
});

test("a chart draws the shown runs; log scale drops values it cannot draw; toggles stick", () => {
  const model = new MetricsModel();
  const runs = [record("r3", 3), record("r2", 2), record("r1", 1)];
  model.setRuns("/ws/train.py", "r3", runs);
  for (const [id, values] of [["r3", [0.5, 0]], ["r2", [1, 2]], ["r1", [4, 8]]] as const) {
    const points = values.map((v, i) => [i, v, i] as [number, number, number]);
    model.setSeries(id, [{ name: "loss", points, count: 2, stride: 1, reset: true, last: points[1] }]);
  }
  const chart = model.chart("loss", { smoothing: 0, logScale: true });
  assert.deepEqual(chart.runs.map((r) => r.run_id), ["r2", "r3"]); // the newest two, newest on top
  assert.deepEqual(chart.ys, [[1, 2], [0.5, null]]);
  model.toggle("r1");
  model.toggle("r3");
  assert.deepEqual(model.chart("loss", { smoothing: 0, logScale: false }).runs.map((r) => r.run_id), ["r1", "r2"]);
  model.setRuns("/ws/train.py", "r4", [record("r4", 4), ...runs]); // a new run: shown; choices kept
  assert.deepEqual(model.visibleRuns().map((r) => r.run_id), ["r4", "r1"]); // r2 is third now
});

test("a run is labelled with what changed since the one before", () => {
  assert.equal(changeSummary(record("a", 1)), "first run");
  const next = record("b", 2, { previous: "a", changed: [], changed_count: 0 });
  assert.equal(changeSummary(next), "no change");
  const edited = { ...next, changed: ["src/model.py", "train.py", "a.py", "b.py"], changed_count: 5, args_changed: true, args: ["--lr", "3e-4"] };
  assert.equal(changeSummary(edited), "model.py, train.py, a.py +2 changed · args: --lr 3e-4");
});
