"""A run's header notices and its memory footer, through the real CLI and a real client.

hotswap's notices (a warm object updated in place, rebuilt, served warm) travel as
``run_notice`` events, never in the script's stderr bytes; ``run_finished`` carries the memory
line and the largest survivors. ``hotswap run`` prints both only with --verbose (or a terminal).
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

from conftest import FOOTER, Workspace, base_env, without_footer
from hotswap.client import live_client
from hotswap.protocol import PROTOCOL_VERSION, validate
from hotswap.sync_client import sync_then_run

MODEL = """\
class Net:
    def __init__(self):
        self.weight = 2

    def forward(self, x):
        return x * self.weight + {offset}
"""

RUN = """\
import sys
import hotswap
import model

net = hotswap.warm("net", model.Net)
print("output", net.forward(1))
print("a line of the script's own stderr", file=sys.stderr)
"""


def test_notices_are_the_headers_not_the_scripts_stderr(workspace: Workspace) -> None:
    workspace.write("model.py", MODEL.format(offset=0))
    workspace.write("run.py", RUN)
    assert workspace.run("run.py").returncode == 0
    workspace.write("model.py", MODEL.format(offset=1))
    plain, quiet = workspace.python("run.py"), workspace.run("run.py")
    assert (quiet.stdout, quiet.stderr) == (plain.stdout, plain.stderr), "python's bytes"
    workspace.write("model.py", MODEL.format(offset=5))
    loud = workspace.run("--verbose", "run.py")
    assert loud.stdout == "output 7\n"
    assert sorted(without_footer(loud.stderr)) == [  # the notice and the output may interleave
        "a line of the script's own stderr",
        "hotswap: warm 'net': Net.forward updated in place",
    ]
    footer = [line for line in loud.stderr.splitlines() if line.startswith(FOOTER)]
    assert len(footer) == 1 and footer[0].startswith("hotswap: memory: peak "), loud.stderr


def events_of_a_run(ws: Workspace, entry: str, notices: bool = True) -> list[dict[str, Any]]:
    """Every event of one run started by a real client (as the extension starts its runs);
    without ``notices``, the client's hello does not say it shows notices (an older client)."""
    client = live_client(ws.root)
    assert client is not None
    try:
        if not notices:
            hello = {"protocol_version": PROTOCOL_VERSION, "client": "an-older-client"}
            client.daemon = client.request("hello", hello)["body"]
        run = {"entry": entry, "args": [], "cwd": str(ws.root), "env": base_env()}
        run_id = sync_then_run(client, ws.root, {**run, "run_id": f"t{time.time_ns()}"})["run_id"]
        events: list[dict[str, Any]] = []
        while not events or events[-1]["type"] != "run_finished":
            msg = client.recv(timeout=60)
            assert msg is not None, "the run never finished"
            if msg["body"].get("run_id") == run_id:
                events.append(validate(msg))
        return events
    finally:
        client.close()


def test_a_notice_is_an_event_before_run_finished_with_its_memory(workspace: Workspace) -> None:
    workspace.write("model.py", MODEL.format(offset=0))
    workspace.write("run.py", RUN)
    assert workspace.run("run.py").returncode == 0
    workspace.write("model.py", MODEL.format(offset=3))
    events = events_of_a_run(workspace, "run.py")
    notices = [e["body"] for e in events if e["type"] == "run_notice"]
    assert [(n["kind"], n["text"]) for n in notices] == [
        ("updated", "warm 'net': Net.forward updated in place")
    ]
    streams = b"".join(e["body"]["data"] for e in events if e["type"] == "stream")
    assert b"hotswap" not in streams
    finished = events[-1]["body"]
    assert finished["memory"]["run_peak_rss"] > 0 and "rss_beyond_warm" in finished["memory"]
    assert finished["survivors"] == []


def test_a_client_that_does_not_show_notices_gets_them_on_stderr(workspace: Workspace) -> None:
    workspace.write("model.py", MODEL.format(offset=0))
    workspace.write("run.py", RUN)
    assert workspace.run("run.py").returncode == 0
    workspace.write("model.py", MODEL.format(offset=4))
    events = events_of_a_run(workspace, "run.py", notices=False)
    assert [e for e in events if e["type"] == "run_notice"] == []
    stderr = [e["body"]["data"] for e in events if e["type"] == "stream"]
    assert b"hotswap: warm 'net': Net.forward updated in place\n" in stderr, stderr


LEAK = """\
import sys
import torch
import leaky

if sys.argv[1] == "leak":
    leaky.CACHE["activations"] = torch.ones(8_000_000)  # 30.5 MiB a library keeps
else:
    leaky.CACHE.clear()
print("done")
"""

RAISES = """\
import torch


def step():
    big = torch.ones(8_000_000)
    raise ValueError(f"failed with {big.numel()} values alive in this frame")


step()
"""


def test_the_footer_names_what_a_run_left_alive(workspace: Workspace, tmp_path: Path) -> None:
    library = tmp_path / "site"  # outside the workspace: a library, kept across runs
    library.mkdir()
    (library / "leaky.py").write_text("CACHE = {}\n")
    env = base_env(PYTHONPATH=str(library))
    workspace.write("leak.py", LEAK)
    workspace.write("raises.py", RAISES)
    assert workspace.run("leak.py", "clear", env=env).returncode == 0  # torch imported
    quiet = workspace.run("leak.py", "leak", env=env)
    assert (quiet.stdout, quiet.stderr) == ("done\n", ""), "no footer without --verbose"

    leaked = workspace.run("-v", "leak.py", "leak", env=env)
    footer = leaked.stderr.splitlines()
    assert footer[0].startswith("hotswap: memory: peak ") and len(footer) == 2, leaked.stderr
    assert footer[1] == (
        "hotswap: left alive: torch.Tensor float32[8000000] cpu, 30.5 MiB, "
        "held by leaky.CACHE['activations']"
    )

    cleared = workspace.run("-v", "leak.py", "clear", env=env)
    assert [line.split(":")[1] for line in cleared.stderr.splitlines()] == [" memory"]
    # what the run changed, apart from the interpreter's and the libraries' own memory
    given_back = re.search(r"\(-([\d.]+) MiB by this run\)$", cleared.stderr.strip())
    assert given_back and float(given_back[1]) > 25, cleared.stderr
    failed = workspace.run("-v", "raises.py", env=env)
    assert failed.returncode == 1 and "ValueError: failed with 8000000" in failed.stderr
    assert "left alive" not in failed.stderr, "a traceback keeps no tensor of the run alive"
    assert failed.stderr.splitlines()[-1].startswith("hotswap: memory: peak ")
