"""``hotswap runs`` and ``hotswap metrics``: the runs the daemon keeps, and their
``hotswap.log`` series as JSON or as a compact chart in the terminal."""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from typing import Any

from .client import DaemonClient, ensure_daemon, remote_client
from .workspace import find_workspace

BARS = "▁▂▃▄▅▆▇█"
CHART_WIDTH = 48


def _client(ns: argparse.Namespace) -> DaemonClient:
    """The workspace's daemon (started if none runs: the runs it kept are on disk), or
    ``--backend``'s."""
    if ns.backend:
        return remote_client(ns.backend)
    return ensure_daemon(find_workspace(ns.workspace))


def cmd_runs(ns: argparse.Namespace) -> int:
    runs = _client(ns).request("runs", {"limit": ns.limit})["body"]["runs"]
    if ns.json:
        print(json.dumps(runs, indent=2))
    elif not runs:
        print("no runs kept yet (`hotswap run SCRIPT` keeps them)")
    else:
        print("\n".join(format_run(r) for r in runs))
    return 0


def cmd_metrics(ns: argparse.Namespace) -> int:
    body = _client(ns).request("metrics", {"run_id": ns.run_id})["body"]
    run, series = body["run"], body["series"]
    if ns.json:
        out = {
            "run_id": run["run_id"],
            "series": {s["name"]: s["points"] for s in series},
            "downsampled": {
                s["name"]: {"logged": s["count"], "kept": len(s["points"]), "stride": s["stride"]}
                for s in series
                if s["stride"] > 1
            },
        }
        print(json.dumps(out))
        return 0
    print(format_run(run))
    if not series:
        print("  no metrics: call hotswap.log({...}) in the script")
    width = max((len(s["name"]) for s in series), default=0)
    for s in series:
        print("  " + format_series(s, width))
    return 0


def format_run(run: dict[str, Any]) -> str:
    when = time.strftime("%m-%d %H:%M:%S", time.localtime(run["started"]))
    entry = os.path.basename(run["entry"]) if run["entry_kind"] == "path" else run["entry"]
    args = " ".join(run["args"])
    if run["state"] == "running":
        result = "running"
    elif run["exit_code"] is None:
        result = run["reason"] or "?"
    else:
        result = f"exit {run['exit_code']} {run['duration']:.1f}s"
    last = "  ".join(f"{k}={_num(v)}" for k, v in run["last"].items())
    parts = (run["run_id"][:8], when, f"{entry} {args}".strip(), result, _changes(run), last)
    return "  ".join(p for p in parts if p)


def _changes(run: dict[str, Any]) -> str:
    """What changed since the previous run of the entry, in a few words."""
    if run["previous"] is None or run["changed"] is None:
        return ""
    names = [os.path.basename(p) for p in run["changed"][:3]]
    more = f" +{run['changed_count'] - len(names)}" if run["changed_count"] > len(names) else ""
    changed = f"changed: {', '.join(names)}{more}" if names else "no change"
    return f"[{changed}{', args' if run['args_changed'] else ''}]"


def format_series(series: dict[str, Any], width: int = 0) -> str:
    values = [p[1] for p in series["points"]]
    spark = sparkline(values)
    finite = [v for v in values if math.isfinite(v)]
    lo, hi = (min(finite), max(finite)) if finite else (math.nan, math.nan)
    last = series["last"][1] if series["last"] else math.nan
    thinned = f", every {series['stride']}th kept" if series["stride"] > 1 else ""
    return (
        f"{series['name']:<{width}}  {spark}  min {_num(lo)}  max {_num(hi)}  last {_num(last)}"
        f"  ({series['count']} points{thinned})"
    )


def sparkline(values: list[float], width: int = CHART_WIDTH) -> str:
    """One bar per column, each the mean of the points that fall in it."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return ""
    columns = min(width, len(values))
    lo, hi = min(finite), max(finite)
    bars = []
    for c in range(columns):
        chunk = [v for v in values[c * len(values) // columns : (c + 1) * len(values) // columns]]
        chunk = [v for v in chunk if math.isfinite(v)]
        if not chunk:
            bars.append(" ")
            continue
        level = (sum(chunk) / len(chunk) - lo) / (hi - lo) if hi > lo else 0.5
        bars.append(BARS[min(len(BARS) - 1, int(level * len(BARS)))])
    return "".join(bars)


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def add_commands(add: Any) -> None:
    """The parsers of ``runs`` and ``metrics`` (``add`` is cli.build_parser's)."""
    runs = add("runs", "list the runs kept, newest first, with the last value of each metric")
    runs.add_argument("--json", action="store_true", help="print JSON")
    runs.add_argument("--limit", type=int, default=50, help="at most this many runs")
    runs.set_defaults(func=cmd_runs)
    metrics = add("metrics", "show a run's hotswap.log series (a chart, or --json)")
    metrics.add_argument("run_id", nargs="?", default="last", help="RUN_ID or last (default)")
    metrics.add_argument("--json", action="store_true", help="print JSON")
    metrics.set_defaults(func=cmd_metrics)
