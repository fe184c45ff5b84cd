"""Warm objects through the real CLI: identity across runs, rebuilds, forget, status, memory."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import SAMPLES, Workspace, compare_runs, without_footer

BOX_SCRIPT = """\
import os
import hotswap


class Box:
    def __init__(self, size):
        self.token = os.urandom(8).hex()
        self.size = size


def build():
    print("{build_says}")
    return Box(0)


def closed_over(n):
    return hotswap.warm("closure", lambda: Box(n))


size = {size}
box = hotswap.warm("box", build)
sized = hotswap.warm("sized", lambda: Box(size))
closure = closed_over({size})
print("box", id(box), box.token)
print("sized", sized.size, sized.token)
print("closure", closure.size, closure.token)
print("unrelated {unrelated}")
"""


def write_box(
    ws: Workspace, build_says: str = "building", size: int = 3, unrelated: int = 1
) -> None:
    ws.write("box.py", BOX_SCRIPT.format(build_says=build_says, size=size, unrelated=unrelated))


def fields(stdout: str) -> dict[str, list[str]]:
    """``name value...`` lines of the box script, by name."""
    return {line.split()[0]: line.split()[1:] for line in stdout.splitlines() if line}


REBUILT = "its factory, or a function of yours it calls, changed"


def hot(ws: Workspace, *args: str, notes: tuple[str, ...] = ()) -> dict[str, list[str]]:
    """Run under hotswap --verbose; its stderr holds exactly ``notes`` (hotswap's own lines)
    and the memory footer."""
    proc = ws.run("-v", *args)
    assert proc.returncode == 0, proc.stderr
    assert without_footer(proc.stderr) == [f"hotswap: {note}" for note in notes]
    return fields(proc.stdout)


def test_warm_object_is_the_same_object_run_after_run(workspace: Workspace) -> None:
    write_box(workspace)
    plain = [fields(workspace.python("box.py").stdout) for _ in range(2)]
    assert all("building" in p for p in plain), "plain python calls the factory every time"
    assert plain[0]["box"][1] != plain[1]["box"][1]

    first, second = hot(workspace, "box.py"), hot(workspace, "box.py")
    assert "building" in first
    assert "building" not in second
    assert second["box"] == first["box"], "same object (id and token) on the second run"
    assert second["sized"] == first["sized"] and second["closure"] == first["closure"]


def test_warm_object_is_rebuilt_when_its_factory_changes(workspace: Workspace) -> None:
    write_box(workspace)
    first = hot(workspace, "box.py")

    write_box(workspace, unrelated=2)
    unrelated = hot(workspace, "box.py")
    assert unrelated["unrelated"] == ["2"]
    assert "building" not in unrelated and unrelated["box"] == first["box"]

    write_box(workspace, build_says="building again", unrelated=2)
    edited = hot(workspace, "box.py", notes=(f"warm 'box' rebuilt: {REBUILT}",))
    assert edited["building"] == ["again"]
    assert edited["box"][1] != first["box"][1], "edited factory body: a new object"
    assert edited["sized"] == first["sized"], "other keys keep their objects"
    assert "building" not in hot(workspace, "box.py"), "and the new object is kept"


def test_warm_object_is_rebuilt_when_a_captured_value_changes(workspace: Workspace) -> None:
    write_box(workspace, size=3)
    first = hot(workspace, "box.py")
    write_box(workspace, size=4)
    resized = hot(
        workspace,
        "box.py",
        notes=(f"warm 'sized' rebuilt: {REBUILT}", f"warm 'closure' rebuilt: {REBUILT}"),
    )
    assert resized["closure"][0] == "4" and resized["closure"][1] != first["closure"][1]
    assert resized["sized"][0] == "4", "a module-level value the lambda reads changed"
    assert resized["sized"][1] != first["sized"][1]
    assert resized["box"] == first["box"]


KEYS_SCRIPT = """\
import hotswap

calls = []


def factory(name):
    def build():
        calls.append(name)
        return [name]
    return build


hotswap.warm("a", factory("a"))
hotswap.warm("b", factory("b"))
hotswap.warm("a", factory("a"))
print("calls", calls)
print("keys", sorted(hotswap.warm_keys()))
print("forget", hotswap.forget("a"), hotswap.forget("missing"))
print("after", sorted(hotswap.warm_keys()))
"""


def test_forget_and_warm_keys_inside_runs_and_under_plain_python(workspace: Workspace) -> None:
    workspace.write("keys.py", KEYS_SCRIPT)
    plain = workspace.python("keys.py")
    assert plain.returncode == 0, plain.stderr
    assert plain.stdout.splitlines() == [
        "calls ['a', 'b', 'a']",
        "keys []",
        "forget False False",
        "after []",
    ]

    first = workspace.run("keys.py")
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines() == [
        "calls ['a', 'b']",
        "keys ['a', 'b']",
        "forget True False",
        "after ['b']",
    ]
    assert [e["key"] for e in warm_entries(workspace)] == ["b"]
    second = workspace.run("keys.py")
    assert second.stdout.splitlines()[0] == "calls ['a']", "'a' was forgotten, 'b' was kept"


def warm_entries(ws: Workspace) -> list[dict[str, Any]]:
    [worker] = ws.status()["workers"]
    return list(worker["warm"])


def test_status_describes_a_warm_torch_module(workspace: Workspace) -> None:
    workspace.write(
        "linear.py",
        """\
        import hotswap
        import torch

        layer = hotswap.warm("layer", lambda: torch.nn.Linear(100, 10))
        table = hotswap.warm("table", lambda: torch.zeros(3, 4, dtype=torch.float64))
        print(sum(p.numel() for p in layer.parameters()))
        """,
    )
    proc = workspace.run("linear.py")
    assert (proc.returncode, proc.stdout) == (0, "1010\n"), proc.stderr
    status = workspace.status()
    [worker] = status["workers"]
    assert worker["memory"]["rss"] > 0
    entries = {e["key"]: e for e in worker["warm"]}
    assert entries["layer"]["type"] == "torch.nn.modules.linear.Linear"
    assert entries["layer"]["parameters"] == 100 * 10 + 10
    assert entries["layer"]["bytes"] == 1010 * 4
    assert entries["layer"]["device"] == "cpu"
    assert entries["table"]["type"] == "torch.Tensor"
    assert (entries["table"]["parameters"], entries["table"]["bytes"]) == (12, 12 * 8)

    text = workspace.hotswap("status").stdout
    assert re.search(r"warm 'layer'\s+torch\.nn\.modules\.linear\.Linear\s+1,010 params", text)


@pytest.mark.slow
def test_tiny_gpt_sample_prints_the_same_losses_and_keeps_its_model(
    workspace: Workspace,
) -> None:
    train = str(SAMPLES / "tiny_gpt" / "train.py")  # its model cache is the gitignored .cache/
    plain, _ = compare_runs(workspace, train, "--size", "tiny")
    assert plain.returncode == 0, plain.stderr
    losses = re.findall(r"^step \d+/5 loss \d+\.\d{4}$", plain.stdout, re.MULTILINE)
    assert len(losses) == 5
    counted = re.search(r"^model: ([\d,]+) parameters$", plain.stdout, re.MULTILINE)
    assert counted is not None, plain.stdout
    parameters = int(counted.group(1).replace(",", ""))
    [entry] = warm_entries(workspace)
    assert entry["key"] == "tiny_gpt/tiny"
    assert entry["type"].endswith("GPT2LMHeadModel")
    assert entry["parameters"] == parameters
    assert entry["hits"] == 1, "the second hotswap run reused the model the first one loaded"


BIG_SCRIPT = """\
import weakref
from pathlib import Path

import torch


def rss():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024


class Thing:
    pass


big = torch.ones(50_000_000)  # 200 MB, in a global and nowhere else
thing = Thing()
weakref.finalize(thing, Path("{marker}").touch).atexit = False
print("rss", rss())
"""

MB = 1 << 20


def test_a_run_namespace_is_dropped_after_the_run(workspace: Workspace, tmp_path: Path) -> None:
    workspace.write("warmup.py", "import torch\nprint(torch.ones(1).sum().item())\n")
    assert workspace.run("warmup.py").returncode == 0
    before = worker_rss(workspace)
    marker = tmp_path / "thing-collected"
    workspace.write("big.py", BIG_SCRIPT.format(marker=marker))

    proc = workspace.run("big.py")
    assert proc.returncode == 0, proc.stderr
    during = int(proc.stdout.split()[1])
    assert during > before + 150 * MB, "the run really held its 200 MB tensor"
    wait_until(marker.exists, "the object only the script's globals held was never collected")
    wait_until(
        lambda: worker_rss(workspace) < before + 100 * MB,
        "the worker kept the run's 200 MB tensor",
    )


def worker_rss(ws: Workspace) -> int:
    [worker] = ws.status()["workers"]
    return int(worker["memory"]["rss"])


def wait_until(condition: Any, failure: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, failure
        time.sleep(0.1)
