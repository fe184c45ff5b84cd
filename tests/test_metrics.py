"""Level 3: hotswap.log through the real CLI, daemon and worker: values and steps exact, runs
kept apart and across a daemon restart, bounded series, nothing at all under plain python."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import Workspace, base_env
from hotswap.client import DaemonClient
from hotswap.metrics_store import SERIES_LIMIT
from hotswap.protocol import PROTOCOL_VERSION
from hotswap.sync_client import sync_then_run

LOGGING = """\
import json, sys, threading
import torch
import hotswap

scale = float(sys.argv[1])
expected = {"loss": [], "lr": [], "worker": []}
for i in range(300):
    loss = torch.tensor(scale / (i + 1), dtype=torch.float32, requires_grad=True) * 1.5
    hotswap.log({"loss": loss, "lr": scale * 0.001 * i})  # steps counted per series
    expected["loss"].append([i, loss.item()])
    expected["lr"].append([i, scale * 0.001 * i])

def worker():
    for step in range(0, 1000, 7):
        hotswap.log({"worker": step * 0.5 + scale}, step=step)
        expected["worker"].append([step, step * 0.5 + scale])

threads = [threading.Thread(target=worker)]
for t in threads:
    t.start()
for t in threads:
    t.join()
with open(sys.argv[2], "w") as f:
    json.dump(expected, f)
print("done", scale)
"""


def metrics_json(ws: Workspace, *args: str) -> dict[str, Any]:
    proc = ws.hotswap("metrics", *args, "--json")
    assert proc.returncode == 0, proc.stderr
    return dict(json.loads(proc.stdout))


def runs_json(ws: Workspace) -> list[dict[str, Any]]:
    proc = ws.hotswap("runs", "--json")
    assert proc.returncode == 0, proc.stderr
    return list(json.loads(proc.stdout))


def steps_and_values(series: dict[str, list[list[float]]]) -> dict[str, list[list[float]]]:
    return {name: [[step, value] for step, value, _ in points] for name, points in series.items()}


def test_values_and_steps_are_exactly_what_the_script_logged_from_any_thread(
    workspace: Workspace,
) -> None:
    script = workspace.write("train.py", LOGGING)
    plain = workspace.python(str(script), "2", "plain.json")
    hot = workspace.run("train.py", "2", "hot.json")
    assert (hot.returncode, hot.stdout, hot.stderr) == (0, "done 2.0\n", "")
    assert (plain.returncode, plain.stdout, plain.stderr) == (0, "done 2.0\n", "")  # silent
    expected = json.loads((workspace.root / "hot.json").read_text())
    assert expected == json.loads((workspace.root / "plain.json").read_text())

    got = metrics_json(workspace, "last")
    assert steps_and_values(got["series"]) == expected
    assert got["downsampled"] == {}
    (run,) = runs_json(workspace)
    assert got["run_id"] == run["run_id"]
    assert run["last"] == {
        "loss": expected["loss"][-1][1],
        "lr": expected["lr"][-1][1],
        "worker": expected["worker"][-1][1],
    }
    times = [t for points in got["series"].values() for _, _, t in points]
    assert run["started"] <= min(times) <= max(times) <= run["started"] + run["duration"]


def test_two_runs_are_kept_apart_and_survive_a_daemon_restart(workspace: Workspace) -> None:
    workspace.write("train.py", LOGGING)
    assert workspace.run("train.py", "1", "one.json").returncode == 0
    workspace.write("train.py", LOGGING.replace("range(300)", "range(200)"))
    assert workspace.run("train.py", "3", "three.json").returncode == 0
    newest, oldest = runs_json(workspace)
    assert (newest["args"], oldest["args"]) == (["3", "three.json"], ["1", "one.json"])
    assert (newest["previous"], newest["changed"], newest["args_changed"]) == (
        oldest["run_id"],
        ["one.json", "train.py"],
        True,  # one.json: written by the first run
    )
    first = metrics_json(workspace, oldest["run_id"])
    second = metrics_json(workspace, "last")
    assert steps_and_values(first["series"]) == json.loads(
        (workspace.root / "one.json").read_text()
    )
    assert steps_and_values(second["series"]) == json.loads(
        (workspace.root / "three.json").read_text()
    )
    assert len(second["series"]["loss"]) == 200

    listed = workspace.hotswap("runs").stdout.splitlines()
    assert "train.py 3 three.json  exit 0" in listed[0]
    assert "[changed: one.json, train.py, args]" in listed[0]
    assert "train.py 1 one.json  exit 0" in listed[1]
    chart = workspace.hotswap("metrics").stdout.splitlines()
    assert chart[0] == listed[0]
    loss = next(line for line in chart if line.lstrip().startswith("loss "))
    smallest = f"{3 / 200 * 1.5:.4g}"
    assert loss.endswith(f"min {smallest}  max 4.5  last {smallest}  (200 points)"), loss
    assert any(bar in loss for bar in "▁▂▃▄▅▆▇█")

    assert workspace.hotswap("stop").returncode == 0
    assert metrics_json(workspace, "last") == second  # a new daemon reads what the last kept
    assert metrics_json(workspace, oldest["run_id"]) == first
    assert [r["run_id"] for r in runs_json(workspace)] == [newest["run_id"], oldest["run_id"]]
    assert workspace.run("train.py", "3", "three.json").returncode == 0
    again = runs_json(workspace)[0]
    assert (again["previous"], again["changed"], again["args_changed"]) == (
        newest["run_id"],
        ["three.json"],  # written by that run, after it started; train.py is as it was
        False,
    )


TEN_MILLION = """\
import hotswap
log = hotswap.log
for i in range(10_000_000):
    log({"x": i * 0.5})
print("logged")
"""


def vm_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def test_ten_million_points_are_thinned_to_a_bounded_series_and_say_so(
    workspace: Workspace,
) -> None:
    workspace.write("small.py", "import hotswap\nhotswap.log({'x': 1.0})\n")
    assert workspace.run("small.py").returncode == 0
    pid = int(workspace.connection()["pid"])
    before = vm_rss(pid)
    workspace.write("big.py", TEN_MILLION)
    proc = workspace.run("big.py", timeout=600)
    assert (proc.returncode, proc.stdout) == (0, "logged\n"), proc.stderr
    grown = vm_rss(pid) - before
    assert grown < 40 * 1024 * 1024, f"the daemon grew by {grown / 2**20:.1f} MiB"

    got = metrics_json(workspace, "last")
    points = got["series"]["x"]
    assert len(points) <= SERIES_LIMIT + 3  # every stride-th point, then min, max, last
    stride = got["downsampled"]["x"]["stride"]
    assert got["downsampled"]["x"]["logged"] == 10_000_000
    assert points[0][:2] == [0, 0.0]  # the first and min
    assert points[-1][:2] == [9_999_999, 9_999_999 * 0.5]  # the last and max
    assert all(step % stride == 0 for step, _, _ in points[1:-1])
    assert all(value == step * 0.5 for step, value, _ in points)
    assert len(points) > SERIES_LIMIT // 2
    kept = sum(f.stat().st_size for f in (workspace.root / ".hotswap" / "runs").iterdir())
    assert kept < 2 * 10**6


def test_only_the_newest_keep_runs_are_kept(workspace: Workspace) -> None:
    workspace.write("pyproject.toml", "[tool.hotswap]\nkeep_runs = 3\n")
    workspace.write("count.py", "import sys, hotswap\nhotswap.log({'n': int(sys.argv[1])})\n")
    for n in range(5):
        assert workspace.run("count.py", str(n)).returncode == 0
    runs = runs_json(workspace)
    assert [r["last"] for r in runs] == [{"n": 4}, {"n": 3}, {"n": 2}]
    kept = sorted(p.name for p in (workspace.root / ".hotswap" / "runs").iterdir())
    assert [name for name in kept if name.startswith("files-")] != []  # count.py's last files
    kept = [name for name in kept if not name.startswith("files-")]
    assert kept == sorted(
        f"{r['run_id']}{suffix}" for r in runs for suffix in (".json", ".metrics.json")
    )
    gone = workspace.hotswap("metrics", "not-a-run")
    assert gone.returncode == 1
    assert "no run 'not-a-run' is kept" in gone.stderr and "hotswap runs" in gone.stderr


def test_a_rank_logs_under_its_own_name(workspace: Workspace) -> None:
    workspace.write("rank.py", "import hotswap\nhotswap.log({'loss': 0.5}, step=3)\n")
    assert workspace.run("rank.py", env=base_env(RANK="2")).returncode == 0
    assert metrics_json(workspace)["series"] == {
        "loss@rank2": [[3, 0.5, pytest.approx(0, abs=1e10)]]
    }


def test_a_value_that_is_not_a_number_is_refused_with_what_to_log(workspace: Workspace) -> None:
    workspace.write("bad.py", "import hotswap\nhotswap.log({'loss': 'low'})\n")
    proc = workspace.run("bad.py")
    assert proc.returncode == 1
    assert "TypeError: hotswap.log: 'loss' must be a number or a 0-d tensor, got str" in proc.stderr
    plain = workspace.python("bad.py")
    assert (plain.returncode, plain.stdout, plain.stderr) == (0, "", "")
    workspace.write("bad.py", "import hotswap\nhotswap.log([('loss', 1.0)])\n")
    assert "TypeError: hotswap.log takes a dict of metric name -> number, got list" in (
        workspace.run("bad.py").stderr
    )
    workspace.write("bad.py", "import hotswap\nhotswap.log({'loss': 1.0}, step='one')\n")
    assert (
        "TypeError: hotswap.log: step must be an int, got 'one'" in workspace.run("bad.py").stderr
    )


SLOW = """\
import time, hotswap
for i in range(20):
    hotswap.log({"loss": i / 4}, step=i)
    time.sleep(0.03)
"""


def received(client: DaemonClient) -> list[dict[str, Any]]:
    """Every message the client has been sent (each validated against the protocol)."""
    messages = []
    while (msg := client.recv(timeout=1.0)) is not None:
        messages.append(msg)
    return messages


def test_a_client_that_subscribes_to_metrics_gets_every_runs_live_updates(
    workspace: Workspace,
) -> None:
    workspace.write("slow.py", SLOW)
    assert workspace.run("-c", "pass").returncode == 0  # the daemon is up
    watcher = DaemonClient(workspace.connection(), "watcher")
    bystander = DaemonClient(workspace.connection(), "bystander")
    try:
        hello = {"protocol_version": PROTOCOL_VERSION, "client": "test"}
        watcher.request("hello", {**hello, "subscribe_metrics": True})
        bystander.request("hello", {**hello, "subscribe": True})
        assert workspace.run("slow.py").returncode == 0
        updates = [m["body"] for m in received(watcher) if m["type"] == "metrics_update"]
        points = [p for u in updates for s in u["series"] for p in s["points"]]
        assert [p[:2] for p in points] == [[i, i / 4] for i in range(20)]
        assert len(updates) > 1, "sent while the run logged, not once at its end"
        assert {u["entry"] for u in updates} == {str(workspace.root / "slow.py")}
        seen = [m["type"] for m in received(bystander)]
        assert "run_finished" in seen and "metrics_update" not in seen
    finally:
        watcher.close()
        bystander.close()


def test_a_runs_own_client_gets_its_metrics_only_if_it_asked(workspace: Workspace) -> None:
    """The CLI draws no charts: a run logging in a tight loop must not queue every point up
    for it (the daemon's memory would hold them until it read them)."""
    workspace.write("slow.py", SLOW)
    assert workspace.run("-c", "pass").returncode == 0  # the daemon is up
    seen: dict[bool, list[str]] = {}
    for asked in (False, True):
        client = DaemonClient(workspace.connection(), "runner")
        try:
            hello = {"protocol_version": PROTOCOL_VERSION, "client": "test"}
            # kept as the handshake: a second hello (sync_then_run's) would replace its options
            client.daemon = client.request("hello", {**hello, "subscribe_metrics": asked})["body"]
            run = {"entry": "slow.py", "args": [], "cwd": str(workspace.root), "env": base_env()}
            run_id = sync_then_run(client, workspace.root, run)["run_id"]
            types: list[str] = []
            while "run_finished" not in types:
                msg = client.recv(timeout=60)
                assert msg is not None, "the run never finished"
                if msg["body"].get("run_id") == run_id:
                    types.append(msg["type"])
            seen[asked] = types
        finally:
            client.close()
    assert "metrics_update" not in seen[False], seen[False]
    assert "metrics_update" in seen[True], seen[True]


def test_a_run_keeps_at_most_a_thousand_metric_names_and_says_so(workspace: Workspace) -> None:
    script = "import time, hotswap\nfor i in range(1005):\n    hotswap.log({f'l{i}': i})\n"
    workspace.write("names.py", script + "time.sleep(0.5)\nhotswap.log({'l1003': 1})\n")
    proc = workspace.run("names.py")
    assert proc.returncode == 0
    note = "hotswap: hotswap.log: not recorded: l1000, l1001, l1002: a run keeps at most 1000"
    assert proc.stderr.count(note) == 1, proc.stderr  # said once, though a second batch came
    assert len(metrics_json(workspace)["series"]) == 1000
