"""Processes, cancel, crashes and concurrency through the real CLI against real daemons.

Where a test needs the protocol's view (events, run ids, sequence numbers) it connects a
``DaemonClient`` to the daemon the CLI started and validates every message it receives.
"""

from __future__ import annotations

import contextlib
import os
import signal
import stat
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import (
    HOTSWAP,
    PYTHON,
    Follow,
    Workspace,
    base_env,
    following,
    kill_group,
    wait_until,
)
from hotswap.client import DaemonClient
from hotswap.protocol import PROTOCOL_VERSION, validate

# -- helpers ---------------------------------------------------------------------------


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def serve_pids(root: Path) -> list[int]:
    """Pids of every ``hotswap serve`` process serving ``root``."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"serve" in argv and str(root).encode() in argv and alive(int(entry.name)):
            pids.append(int(entry.name))
    return pids


def worker_pid(ws: Workspace) -> int:
    [worker] = ws.status()["workers"]
    return int(worker["pid"])


def idle_worker(ws: Workspace, not_pid: int | None = None) -> dict[str, Any]:
    """The worker once it is idle (and, if given, not the process ``not_pid``)."""

    def ready() -> dict[str, Any] | None:
        [worker] = ws.status()["workers"]
        fresh = worker["state"] == "idle" and worker["pid"] != not_pid
        return dict(worker) if fresh else None

    return dict(wait_until(ready, "the worker did not become idle"))


@contextlib.contextmanager
def connected(ws: Workspace) -> Iterator[DaemonClient]:
    """A protocol client of the workspace's daemon that has said hello."""
    client = DaemonClient(ws.connection(), name="test-lifecycle")
    try:
        client.hello()
        yield client
    finally:
        client.close()


def receive(client: DaemonClient, timeout: float = 30.0) -> dict[str, Any] | None:
    msg = client.recv(timeout=timeout)
    return None if msg is None else validate(msg)


def collect(
    client: DaemonClient, until: Callable[[dict[str, Any]], bool], timeout: float = 60.0
) -> list[dict[str, Any]]:
    """Every message received up to and including the first one ``until`` accepts."""
    deadline = time.monotonic() + timeout
    messages: list[dict[str, Any]] = []
    while (left := deadline - time.monotonic()) > 0:
        msg = receive(client, left)
        if msg is None:
            break
        messages.append(msg)
        if until(msg):
            return messages
    raise AssertionError(f"no awaited message within {timeout:g}s; got {messages}")


def run_request(ws: Workspace, entry: str, *args: str, queue: bool = False) -> dict[str, Any]:
    return {
        "entry": entry,
        "args": list(args),
        "cwd": str(ws.root),
        "env": base_env(),
        "queue": queue,
    }


def finished(run_id: str) -> Callable[[dict[str, Any]], bool]:
    return lambda msg: msg["type"] == "run_finished" and msg["body"]["run_id"] == run_id


# -- starting, finding and stopping the daemon -----------------------------------------


def test_run_starts_a_detached_daemon_once_and_reuses_it(workspace: Workspace) -> None:
    workspace.write("hello.py", "import os\nprint('hello', os.getpid())\n")
    first = workspace.run("hello.py")
    assert first.returncode == 0, first.stderr
    path = workspace.root / ".hotswap" / "connection.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    connection = workspace.connection()
    assert connection["protocol_version"] == PROTOCOL_VERSION
    assert connection["address"].startswith(("tcp://127.0.0.1:", "ipc://"))
    assert len(connection["key"]) >= 32
    pid = connection["pid"]
    assert alive(pid) and os.getsid(pid) == pid, "the daemon leads its own session"
    assert (workspace.root / ".hotswap" / "daemon.log").is_file()

    second = workspace.run("hello.py")
    assert second.returncode == 0, second.stderr
    assert workspace.connection()["pid"] == pid
    assert workspace.status()["daemon"]["pid"] == pid
    assert first.stdout == second.stdout, "the same worker ran both"
    assert serve_pids(workspace.root) == [pid]


def write_stale_connection(ws: Workspace, pid: int) -> None:
    ws.write(
        ".hotswap/connection.json",
        f'{{"address": "tcp://127.0.0.1:9", "key": "{"ab" * 32}", "pid": {pid}, '
        f'"protocol_version": "{PROTOCOL_VERSION}"}}',
    )


@pytest.mark.parametrize("owner", ["dead process", "live process that is no daemon"])
def test_a_stale_connection_file_is_replaced(workspace: Workspace, owner: str) -> None:
    # its own session: the fixture may take it for the daemon and kill its group
    other = subprocess.Popen(["sleep", "120"], start_new_session=True)
    if owner == "dead process":
        other.kill()
        other.wait()
    try:
        write_stale_connection(workspace, other.pid)
        workspace.write("hello.py", "print('hello')\n")
        proc = workspace.run("hello.py")
        assert (proc.returncode, proc.stdout) == (0, "hello\n"), proc.stderr
        connection = workspace.connection()
        assert connection["pid"] != other.pid and alive(connection["pid"])
        assert connection["address"] != "tcp://127.0.0.1:9"
    finally:
        other.kill()
        other.wait()


def test_two_runs_racing_on_a_fresh_workspace_share_one_daemon(workspace: Workspace) -> None:
    workspace.write("hello.py", "import sys\nprint('hello', sys.argv[1])\n")
    with (
        following(workspace, "--queue", "hello.py", "a") as a,
        following(workspace, "--queue", "hello.py", "b") as b,
    ):
        assert (a.finish(), b.finish()) == (0, 0), a.stderr + b.stderr
    assert (a.stdout, b.stdout) == ("hello a\n", "hello b\n")
    assert serve_pids(workspace.root) == [workspace.connection()["pid"]]


def test_workspace_is_found_from_a_subdirectory(workspace: Workspace, tmp_path: Path) -> None:
    """With no --workspace, the nearest ancestor with pyproject.toml or .git is served."""
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    cases = [(workspace.root, workspace.root / "src" / "deep"), (repo, repo / "pkg")]
    try:
        for root, subdir in cases:
            subdir.mkdir(parents=True)
            (subdir / "where.py").write_text("import os\nprint(os.getcwd())\n")
            proc = subprocess.run(
                [HOTSWAP, "run", "where.py"],
                cwd=subdir,
                env=base_env(),
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert (proc.returncode, proc.stdout) == (0, f"{subdir}\n"), proc.stderr
            assert (root / ".hotswap" / "connection.json").is_file()
            assert not (subdir / ".hotswap").exists()
            workspace.note_daemon()
            status = subprocess.run(
                [HOTSWAP, "status"], cwd=subdir, env=base_env(), capture_output=True, text=True
            )
            assert f"workspace {root}" in status.stdout
    finally:
        for pid in serve_pids(repo):
            kill_group(pid)


def test_status_lists_pids_and_runs_and_stop_ends_every_process(workspace: Workspace) -> None:
    workspace.write("ok.py", "print('ok')\n")
    workspace.write("fails.py", "import sys\nsys.exit(3)\n")
    assert workspace.run("ok.py").returncode == 0
    assert workspace.run("fails.py").returncode == 3
    status = workspace.status()
    daemon = status["daemon"]["pid"]
    [worker] = [w["pid"] for w in status["workers"]]
    assert alive(daemon) and alive(worker)
    assert [(r["entry"], r["exit_code"]) for r in status["runs"]] == [("ok.py", 0), ("fails.py", 3)]

    stop = workspace.hotswap("stop")
    assert stop.returncode == 0, stop.stderr
    wait_until(lambda: not alive(daemon) and not alive(worker), "daemon or worker still runs")
    assert not (workspace.root / ".hotswap" / "connection.json").exists()

    text = workspace.hotswap("status")
    assert text.returncode == 1
    assert text.stdout == f"no hotswap daemon serves {workspace.root}\n"
    as_json = workspace.hotswap("status", "--json")
    assert as_json.returncode == 1 and '"running": false' in as_json.stdout


# -- cancel ----------------------------------------------------------------------------

FACTORIES = """\
def small():
    print("building small", flush=True)
    return [1, 2, 3]
"""

SLEEPER = """\
import time

import factories
import hotswap

hotswap.warm("small", factories.small)
print("sleeping", flush=True)
time.sleep(60)
"""

STUBBORN = """\
import time

import factories
import hotswap

hotswap.warm("small", factories.small)
print("looping", flush=True)
while True:
    try:
        time.sleep(60)
    except KeyboardInterrupt:
        print("swallowed", flush=True)
"""


def interrupt_plain_python(ws: Workspace, script: str) -> tuple[int, str]:
    proc = subprocess.Popen(
        [PYTHON, script],
        cwd=ws.root,
        env=base_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    follow = Follow(proc)
    try:
        follow.wait_for("sleeping")
        proc.send_signal(signal.SIGINT)
        return follow.finish(), follow.stderr
    finally:
        proc.kill()


def test_ctrl_c_cancels_the_run_like_python_and_keeps_the_worker(workspace: Workspace) -> None:
    workspace.write("factories.py", FACTORIES)
    workspace.write("sleeper.py", SLEEPER)
    plain_code, plain_stderr = interrupt_plain_python(workspace, "sleeper.py")
    assert plain_code == -signal.SIGINT
    assert plain_stderr.startswith("Traceback (most recent call last):\n")
    assert plain_stderr.endswith("    time.sleep(60)\nKeyboardInterrupt\n")

    with following(workspace, "sleeper.py") as run:
        run.wait_for("sleeping")
        worker = worker_pid(workspace)
        run.proc.send_signal(signal.SIGINT)
        assert run.finish() == 130
    assert run.stderr == plain_stderr
    assert run.stdout == "building small\nsleeping\n"

    assert idle_worker(workspace)["pid"] == worker
    assert [e["key"] for e in idle_worker(workspace)["warm"]] == ["small"]
    workspace.write(
        "reuse.py", "import factories\nimport hotswap\n\nhotswap.warm('small', factories.small)\n"
    )
    again = workspace.run("reuse.py")
    assert (again.returncode, again.stdout) == (0, ""), "the warm object survived the cancel"


def test_a_run_that_swallows_ctrl_c_is_killed_and_its_warm_objects_lost(
    workspace: Workspace,
) -> None:
    workspace.write("factories.py", FACTORIES)
    workspace.write("stubborn.py", STUBBORN)
    with following(workspace, "stubborn.py") as run:
        run.wait_for("looping")
        worker = worker_pid(workspace)
        run.proc.send_signal(signal.SIGINT)
        assert run.finish() == 130  # after cancel_timeout = 2 from the fixture's pyproject
    assert "swallowed" in run.stdout
    assert "warm objects lost: small" in run.stderr
    assert "did not stop within 2s" in run.stderr
    fresh = idle_worker(workspace, not_pid=worker)
    assert fresh["warm"] == [] and not alive(worker)
    workspace.write("hello.py", "print('hello')\n")
    assert workspace.run("hello.py").stdout == "hello\n"


# -- crashes ---------------------------------------------------------------------------

CRASHES = [
    ("exit7.py", "import os\nprint('bye', flush=True)\nos._exit(7)\n", 7, "exited with code 7"),
    (
        "segv.py",
        "import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)\n",
        128 + signal.SIGSEGV,
        "SIGSEGV",
    ),
    (
        "kill9.py",
        "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n",
        128 + signal.SIGKILL,
        "SIGKILL",
    ),
]


def shell_code(returncode: int) -> int:
    """What a shell reports for a process status: the code, or 128+N for death by signal N."""
    return returncode if returncode >= 0 else 128 - returncode


def test_a_dying_worker_is_reported_like_python_and_restarted(workspace: Workspace) -> None:
    workspace.write("hello.py", "print('hello')\n")
    assert workspace.run("hello.py").returncode == 0
    daemon = workspace.connection()["pid"]
    with connected(workspace) as watcher:
        for script, source, code, words in CRASHES:
            workspace.write(script, source)
            old = idle_worker(workspace)["pid"]
            plain = workspace.python(script)
            proc = workspace.run(script)
            assert proc.returncode == code == shell_code(plain.returncode)
            assert proc.stdout == plain.stdout, "output before the crash is not lost"
            assert words in proc.stderr and "restarted the worker" in proc.stderr
            restarted = collect(watcher, lambda m: m["type"] == "worker_restarted")[-1]
            assert words in restarted["body"]["reason"]
            assert restarted["body"]["pid"] != old
            assert idle_worker(workspace, not_pid=old)["pid"] == restarted["body"]["pid"]
            assert workspace.run("hello.py").stdout == "hello\n"
            assert workspace.status()["daemon"]["pid"] == daemon


# -- prewarm ---------------------------------------------------------------------------

MODELS = """\
import os
from pathlib import Path


def build():
    with open(Path(__file__).with_name("built.log"), "a") as log:
        log.write(f"{os.getpid()}\\n")
    return [0.5] * 1000
"""

PREWARM_PYPROJECT = """\
[tool.hotswap]
prewarm = "prewarm.py"
cancel_timeout = 2
"""


def test_prewarm_builds_before_any_run_asks_and_again_after_a_crash(
    workspace: Workspace,
) -> None:
    workspace.write("pyproject.toml", PREWARM_PYPROJECT)
    workspace.write("models.py", MODELS)
    workspace.write("prewarm.py", "import hotswap, models\nhotswap.warm('model', models.build)\n")
    workspace.write(
        "use.py", "import hotswap, models\nprint(len(hotswap.warm('model', models.build)))\n"
    )
    workspace.write("hello.py", "print('hello')\n")
    workspace.write("crash.py", "import os\nos._exit(1)\n")
    built = workspace.root / "built.log"

    assert workspace.run("hello.py").stdout == "hello\n"  # starts the daemon, asks for nothing
    first = wait_until(lambda: idle_worker(workspace)["warm"], "prewarm never built 'model'")
    assert built.read_text().split() == [str(worker_pid(workspace))]
    assert [e["key"] for e in first] == ["model"]
    assert workspace.run("use.py").stdout == "1000\n"
    assert len(built.read_text().split()) == 1, "the run reused what prewarm built"

    old = worker_pid(workspace)
    assert workspace.run("crash.py").returncode == 1
    wait_until(lambda: len(built.read_text().split()) == 2, "prewarm did not run after the crash")
    assert built.read_text().split()[1] == str(idle_worker(workspace, not_pid=old)["pid"])
    assert workspace.run("use.py").stdout == "1000\n"
    assert len(built.read_text().split()) == 2


# -- concurrency -----------------------------------------------------------------------


def test_a_new_run_cancels_the_running_one(workspace: Workspace) -> None:
    workspace.write("factories.py", FACTORIES)
    workspace.write("sleeper.py", SLEEPER)
    workspace.write("hello.py", "print('hello')\n")
    with following(workspace, "sleeper.py") as first:
        first.wait_for("sleeping")
        second = workspace.run("hello.py")
        assert (second.returncode, second.stdout) == (0, "hello\n"), second.stderr
        assert first.finish() == 130
    assert first.stderr.endswith("KeyboardInterrupt\n")
    assert first.stderr.startswith("Traceback (most recent call last):\n")


def test_a_queued_run_waits_for_the_running_one(workspace: Workspace) -> None:
    go = workspace.root / "go"
    workspace.write(
        "first.py",
        f"""\
        import time
        from pathlib import Path

        print("started", flush=True)
        while not Path({str(go)!r}).exists():
            time.sleep(0.05)
        Path("first.done").touch()
        print("finished")
        """,
    )
    workspace.write("second.py", "from pathlib import Path\nprint(Path('first.done').exists())\n")
    with following(workspace, "first.py") as first:
        first.wait_for("started")
        with following(workspace, "--queue", "second.py") as second:
            wait_until(
                lambda: [r["state"] for r in workspace.status()["runs"]] == ["running", "pending"],
                "the second run was not queued behind the first",
            )
            go.touch()
            assert first.finish() == 0, first.stderr
            assert second.finish() == 0, second.stderr
    assert first.stdout == "started\nfinished\n"
    assert second.stdout == "True\n"


def test_each_client_gets_only_its_own_runs_events(workspace: Workspace) -> None:
    workspace.write("hello.py", "print('hello')\n")
    assert workspace.run("hello.py").returncode == 0
    workspace.write(
        "talk.py",
        """\
        import sys

        for i in range(50):
            print(sys.argv[1], i, flush=True)
            print(sys.argv[1], "err", i, file=sys.stderr, flush=True)
        """,
    )
    with connected(workspace) as alice, connected(workspace) as bob:
        runs = {}
        for client, name in ((alice, "alice"), (bob, "bob")):
            reply = client.request("run", run_request(workspace, "talk.py", name, queue=True))
            runs[name] = validate(reply)["body"]["run_id"]
        got = {
            "alice": collect(alice, finished(runs["alice"])),
            "bob": collect(bob, finished(runs["bob"])),
        }
        assert receive(alice, timeout=0.5) is None, "alice got a message after her run ended"
        status = validate(alice.request("status"))["body"]
    for name, messages in got.items():
        run_id = runs[name]
        tagged = [m for m in messages if "run_id" in m["body"]]
        assert {m["body"]["run_id"] for m in tagged} == {run_id}, f"{name} saw another run"
        assert tagged[0]["type"] == "run_started"
        streams = [m["body"] for m in messages if m["type"] == "stream"]
        seqs = [s["seq"] for s in streams]
        assert seqs == sorted(set(seqs)), "sequence numbers increase"
        text = {
            stream: b"".join(s["data"] for s in streams if s["stream"] == stream).decode()
            for stream in ("stdout", "stderr")
        }
        assert text["stdout"] == "".join(f"{name} {i}\n" for i in range(50))
        assert text["stderr"] == "".join(f"{name} err {i}\n" for i in range(50))
        assert messages[-1]["body"]["exit_code"] == 0
    seen = {r["run_id"]: r["exit_code"] for r in status["runs"]}
    assert seen[runs["alice"]] == seen[runs["bob"]] == 0


# -- configuration ---------------------------------------------------------------------


def test_invalid_config_fails_clearly_and_leaves_nothing_running(workspace: Workspace) -> None:
    workspace.write("pyproject.toml", '[tool.hotswap]\ncancel_timeout = "x"\n')
    workspace.write("hello.py", "print('hello')\n")
    proc = workspace.run("hello.py", timeout=60)
    assert proc.returncode != 0 and proc.stdout == ""
    assert "cancel_timeout must be seconds > 0" in proc.stderr
    assert "daemon.log" in proc.stderr
    assert serve_pids(workspace.root) == []
    assert not (workspace.root / ".hotswap" / "connection.json").exists()
    assert workspace.hotswap("status").returncode == 1


@pytest.fixture(autouse=True)
def _no_stray_daemons(workspace: Workspace) -> Iterator[None]:
    """Whatever a test did, no daemon of its workspace outlives it."""
    yield
    workspace.stop()
    for pid in serve_pids(workspace.root):
        kill_group(pid)


SLOW_LIBRARY = """\
from . import part  # loaded, and left behind if the import is broken off
import time

print("importing slowlib", flush=True)
time.sleep(60)
"""


def test_a_cancel_during_a_first_library_import_restarts_the_worker(
    workspace: Workspace, tmp_path: Path
) -> None:
    """Like a save during the first `import torch`: the half-imported library would fail
    every later run in that process, so the worker is replaced and the next run imports it."""
    libs = tmp_path / "libs"  # outside the workspace: a library, not user code
    (libs / "slowlib").mkdir(parents=True)
    (libs / "slowlib" / "__init__.py").write_text(SLOW_LIBRARY)
    (libs / "slowlib" / "part.py").write_text("VALUE = 1\n")
    workspace.write("uses_lib.py", "import slowlib\nprint('imported')\n")
    env = base_env(PYTHONPATH=str(libs))
    workspace.write("hello.py", "print('hello')\n")
    assert workspace.run("hello.py").returncode == 0
    before = worker_pid(workspace)
    proc = workspace.popen_run("uses_lib.py", env=env)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "importing slowlib\n"
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130
    assert "KeyboardInterrupt" in stderr
    assert "importing slowlib for the first time" in stderr and "worker restarts" in stderr
    assert idle_worker(workspace, not_pid=before)["pid"] != before
    (libs / "slowlib" / "__init__.py").write_text("from . import part\n")
    after = workspace.run("uses_lib.py", env=env)
    assert (after.returncode, after.stdout) == (0, "imported\n"), after.stderr
