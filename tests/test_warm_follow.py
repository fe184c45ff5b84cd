"""Warm objects follow code edits, through the real CLI, each run compared with plain python
running the edited script: methods are swapped in place, construction changes rebuild."""

from __future__ import annotations

import subprocess
import time

import pytest
from conftest import Workspace, without_footer

pytestmark = pytest.mark.slow

BLOCKS = """\
import torch


class Block(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(4, 4)

    def forward(self, x):
        return self.lin(x) * {block_scale}
"""

MODEL = """\
import torch
from blocks import Block


def double(self, x):
    return x * {bound_scale}


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.block = Block(){extra_layer}
        self.inner = torch.nn.Identity()
        self.inner.forward = double.__get__(self.inner)
        self.act = lambda t: t  # made in __init__: stays as built

    def forward(self, x):
        return self.act(self.inner(self.block(x))) + {net_offset}
"""

RUN = """\
import hotswap
import torch
import model


def build():
    print("factory called")
    torch.manual_seed(0)
    return model.Net()


net = hotswap.warm("net", build)
print("output", round(net(torch.ones(1, 4)).sum().item(), 4))
print("weight", id(net.block.lin.weight))
"""

DEFAULTS = {"block_scale": 1, "bound_scale": 2, "net_offset": 0, "extra_layer": ""}


def write_project(ws: Workspace, **edits: object) -> None:
    values = {**DEFAULTS, **edits}
    ws.write("blocks.py", BLOCKS.format(**values))
    ws.write("model.py", MODEL.format(**values))
    ws.write("run.py", RUN)


def lines(text: str, prefix: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(prefix)]


def same_as_python(ws: Workspace, script: str = "run.py") -> subprocess.CompletedProcess[str]:
    """Run under hotswap; everything but the weight's id and hotswap's own lines is what
    plain python prints for the same (edited) files."""
    plain, hot = ws.python(script), ws.run("-v", script)
    assert hot.returncode == plain.returncode, hot.stderr
    assert lines(hot.stdout, "output") == lines(plain.stdout, "output")
    ours = "".join(line for line in hot.stderr.splitlines(True) if not line.startswith("hotswap: "))
    if plain.returncode == 0:
        assert ours == plain.stderr
    else:  # python's traceback also shows hotswap.warm's frame (test_parity covers that)
        assert ours.splitlines()[-1] == plain.stderr.splitlines()[-1]
    return hot


def notes(proc: subprocess.CompletedProcess[str]) -> list[str]:
    return lines("\n".join(without_footer(proc.stderr)), "hotswap: ")


@pytest.fixture
def first(workspace: Workspace) -> subprocess.CompletedProcess[str]:
    write_project(workspace)
    proc = same_as_python(workspace)
    assert "factory called" in proc.stdout
    return proc


@pytest.mark.parametrize(
    ("edit", "note"),
    [
        ({"net_offset": 1}, "hotswap: warm 'net': Net.forward updated in place"),
        ({"block_scale": 3}, "hotswap: warm 'net': Block.forward updated in place"),
        ({"bound_scale": 5}, "hotswap: warm 'net': Identity.forward now runs the new double"),
    ],
    ids=["forward", "submodule-in-a-second-module", "bound-method"],
)
def test_a_method_edit_is_applied_to_the_warm_object_in_place(
    workspace: Workspace,
    first: subprocess.CompletedProcess[str],
    edit: dict[str, object],
    note: str,
) -> None:
    write_project(workspace, **edit)
    edited = same_as_python(workspace)
    assert lines(edited.stdout, "output") != lines(first.stdout, "output"), "the edit shows"
    assert "factory called" not in edited.stdout
    assert lines(edited.stdout, "weight") == lines(first.stdout, "weight"), "same parameters"
    assert notes(edited) == [note]
    again = same_as_python(workspace)
    assert notes(again) == [] and "factory called" not in again.stdout


def test_an_init_edit_rebuilds_with_a_message(
    workspace: Workspace, first: subprocess.CompletedProcess[str]
) -> None:
    write_project(workspace, extra_layer="\n        self.extra = torch.nn.Linear(4, 4)")
    edited = same_as_python(workspace)
    assert "factory called" in edited.stdout
    assert notes(edited) == ["hotswap: warm 'net' rebuilt: Net.__init__ changed"]


def test_a_deleted_class_rebuilds_and_fails_as_python_does(
    workspace: Workspace, first: subprocess.CompletedProcess[str]
) -> None:
    source = (workspace.root / "model.py").read_text()
    workspace.write("model.py", source.replace("class Net(", "class Renamed("))
    edited = same_as_python(workspace)
    assert edited.returncode == 1
    assert "AttributeError: module 'model' has no attribute 'Net'" in edited.stderr
    assert notes(edited) == ["hotswap: warm 'net' rebuilt: class Net is gone from model.py"]


ENTRY = """\
import hotswap
import torch


class Scale(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(3))

    def forward(self, x):
        return x * self.weight * {scale}


def build():
    print("factory called")
    return Scale()


net = hotswap.warm("scale", build)
print("output", net(torch.ones(3)).sum().item())
"""


def test_a_class_defined_in_the_entry_script_follows_its_edits(workspace: Workspace) -> None:
    workspace.write("entry.py", ENTRY.format(scale=2))
    assert "factory called" in same_as_python(workspace, "entry.py").stdout
    workspace.write("entry.py", ENTRY.format(scale=5))
    edited = same_as_python(workspace, "entry.py")
    assert lines(edited.stdout, "output") == ["output 15.0"]
    assert "factory called" not in edited.stdout
    assert notes(edited) == ["hotswap: warm 'scale': Scale.forward updated in place"]


HELPERS = """\
import os
from pathlib import Path


def helper():
    return [0.5] * {size}


def build():
    with open(Path(__file__).with_name("built.log"), "a") as log:
        log.write(f"{{os.getpid()}}\\n")
    return helper()
"""


def test_a_prewarmed_factory_is_reused_until_a_function_it_calls_changes(
    workspace: Workspace,
) -> None:
    workspace.write("pyproject.toml", '[tool.hotswap]\nprewarm = "prewarm.py"\n')
    workspace.write("models.py", HELPERS.format(size=1000))
    workspace.write("prewarm.py", "import hotswap, models\nhotswap.warm('model', models.build)\n")
    workspace.write(
        "use.py", "import hotswap, models\nprint(len(hotswap.warm('model', models.build)))\n"
    )
    built = workspace.root / "built.log"
    workspace.run("models.py")  # starts the daemon, whose worker runs the prewarm
    deadline = time.monotonic() + 60
    while not built.exists():
        assert time.monotonic() < deadline, "prewarm never built 'model'"
        time.sleep(0.05)
    reused = workspace.run("use.py")
    assert (reused.stdout, reused.stderr) == ("1000\n", "")
    assert len(built.read_text().split()) == 1, "the run reused what prewarm built"

    workspace.write("models.py", HELPERS.format(size=7))
    rebuilt = workspace.run("-v", "use.py")
    assert rebuilt.stdout == "7\n"
    assert without_footer(rebuilt.stderr) == [
        "hotswap: warm 'model' rebuilt: its factory, or a function of yours it calls, changed"
    ]
    assert len(built.read_text().split()) == 2
