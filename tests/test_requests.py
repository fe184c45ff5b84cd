"""Level 3: requests and events a client meets, against a real daemon: a run naming a stale
state, warm_changed reaching a client, release, and the CUDA figures of status."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import Workspace
from hotswap.client import DaemonClient, DaemonError
from hotswap.protocol import validate

WARM = """\
import hotswap

def build():
    print("factory called", flush=True)
    return [1, 2, 3]

hotswap.warm("numbers", build)
print("ok")
"""


@contextlib.contextmanager
def client_of(ws: Workspace) -> Iterator[DaemonClient]:
    """A client of the workspace's running daemon, as the extension is: hello, then requests."""
    client = DaemonClient(ws.connection(), "test-requests")
    try:
        client.hello()
        yield client
    finally:
        client.close()


def next_event(client: DaemonClient, msg_type: str, timeout: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        msg = client.recv(timeout=left)
        if msg is not None and msg["type"] == msg_type:
            validate(msg)
            return dict(msg["body"])
    raise AssertionError(f"no {msg_type} within {timeout} s")


def warm_keys(ws: Workspace) -> list[str]:
    return [w["key"] for worker in ws.status()["workers"] for w in worker["warm"]]


def test_a_client_receives_warm_changed_and_release_drops_what_it_names(
    workspace: Workspace,
) -> None:
    workspace.write("warm.py", WARM)
    workspace.write("hello.py", "print('hi')\n")
    assert workspace.run("hello.py").returncode == 0  # the daemon runs, nothing warm yet
    with client_of(workspace) as client:
        built = workspace.run("warm.py")  # another client's run
        assert built.stdout == "factory called\nok\n", built.stderr
        body = next_event(client, "warm_changed")
        assert [w["key"] for w in body["warm"]] == ["numbers"]
        reply = client.request("release", {"keys": ["not-warm", "numbers"]})
        validate(reply)
        assert reply["body"]["released"] == ["numbers"]
        assert next_event(client, "warm_changed")["warm"] == []
    assert warm_keys(workspace) == []
    assert workspace.run("warm.py").stdout == "factory called\nok\n", "built again after release"


def test_release_of_everything_and_of_nothing(workspace: Workspace) -> None:
    workspace.write("warm.py", WARM)
    assert workspace.run("warm.py").returncode == 0
    with client_of(workspace) as client:
        assert client.request("release", {"keys": []})["body"]["released"] == []
        assert warm_keys(workspace) == ["numbers"]
        assert client.request("release", {"keys": None})["body"]["released"] == ["numbers"]
    assert warm_keys(workspace) == []
    assert workspace.run("warm.py").stdout == "factory called\nok\n"


def test_a_run_naming_a_state_the_workspace_is_not_in_is_refused(workspace: Workspace) -> None:
    workspace.write("main.py", "print('ran')\n")
    assert workspace.run("main.py").stdout == "ran\n"
    runs_before = len(workspace.status()["runs"])
    root = str(workspace.root)
    run = {"entry": str(workspace.root / "main.py"), "args": [], "cwd": root, "env": {}}
    with client_of(workspace) as client:
        state = client.request("manifest", {"root": root})["body"]["state"]
        for stale in ("0" * 64, "f" * 64):
            with pytest.raises(DaemonError) as info:
                client.request("run", {**run, "root": root, "state": stale})
            assert info.value.ename == "resync", info.value
            assert "sync" in info.value.hint, "the refusal says what to do"
        assert len(workspace.status()["runs"]) == runs_before, "nothing ran"
        accepted = client.request("run", {**run, "root": root, "state": state})
        assert accepted["type"] == "run_reply"
        assert next_event(client, "run_finished")["exit_code"] == 0


def test_status_reports_cuda_memory_of_a_worker_holding_a_gpu_tensor(
    workspace: Workspace,
) -> None:
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device on this machine: the CUDA fields of status are not sent")
    workspace.write(
        "gpu.py",
        """\
        import hotswap, torch
        hotswap.warm("gpu", lambda: torch.ones(1024, 1024, device="cuda"))
        """,
    )
    assert workspace.run("gpu.py").returncode == 0
    worker = workspace.status()["workers"][0]
    memory = worker["memory"]
    assert memory["cuda_allocated"] >= 4 * 1024 * 1024, memory
    assert memory["cuda_reserved"] >= memory["cuda_allocated"], memory
    assert memory["run_peak_cuda_allocated"] >= 4 * 1024 * 1024, memory
    assert [w["device"] for w in worker["warm"]] == ["cuda:0"]
