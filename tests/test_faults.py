"""Faults through the real CLI: a daemon killed with -9 (running or idle), a stopped daemon, a
client killed while its run waits in input(), workers a killed daemon left behind.

After every fault the next run works and no process of the workspace is left but the daemon
and its workers (a scan of /proc).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from conftest import Follow, Workspace, following, wait_until
from test_lifecycle import alive, worker_pid

SLEEPER = """\
print("sleeping", flush=True)
import time
time.sleep(120)
"""

ASKER = """\
print("asking", flush=True)
answer = input()
print("got", answer)
"""


def workspace_pids(root: Path) -> set[int]:
    """Every live process whose command line names the workspace (daemons and workers)."""
    pids = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if str(root).encode() in argv and alive(int(entry.name)):
            pids.add(int(entry.name))
    return pids


def daemon_and_worker(ws: Workspace) -> tuple[int, int]:
    return int(ws.connection()["pid"]), worker_pid(ws)


def assert_next_run_works(ws: Workspace, old: set[int]) -> None:
    """A new daemon serves the next run, and only it and its worker are left."""
    ws.write("hello.py", "print('hello')\n")
    proc = ws.run("hello.py")
    assert (proc.returncode, proc.stdout) == (0, "hello\n"), proc.stderr
    daemon, worker = daemon_and_worker(ws)
    assert not old & {daemon, worker}
    assert workspace_pids(ws.root) == {daemon, worker}


def assert_gone_soon(*pids: int) -> None:
    wait_until(lambda: not any(alive(pid) for pid in pids), f"{pids} outlived their daemon", 10)


def test_kill_9_of_the_daemon_during_a_run(workspace: Workspace) -> None:
    workspace.write("sleeper.py", SLEEPER)
    with following(workspace, "sleeper.py") as run:
        run.wait_for("sleeping")
        daemon, worker = daemon_and_worker(workspace)
        os.kill(daemon, signal.SIGKILL)
        assert_gone_soon(worker)
        code = run.finish(timeout=20)
    assert code != 0
    assert f"the hotswap daemon (pid {daemon}) died" in run.stderr
    assert "Last lines of" in run.stderr and "daemon.log" in run.stderr
    assert_next_run_works(workspace, {daemon, worker})


def test_kill_9_of_an_idle_daemon(workspace: Workspace) -> None:
    workspace.write("hello.py", "print('hello')\n")
    assert workspace.run("hello.py").returncode == 0
    daemon, worker = daemon_and_worker(workspace)
    os.kill(daemon, signal.SIGKILL)
    assert_gone_soon(daemon, worker)
    status = workspace.hotswap("status")
    assert status.returncode == 1 and "no hotswap daemon serves" in status.stdout
    assert_next_run_works(workspace, {daemon, worker})


def test_a_first_ctrl_c_ends_the_cli_even_if_the_daemon_hangs(workspace: Workspace) -> None:
    workspace.write("sleeper.py", SLEEPER)
    with following(workspace, "sleeper.py") as run:
        run.wait_for("sleeping")
        daemon = int(workspace.connection()["pid"])
        os.kill(daemon, signal.SIGSTOP)  # alive, but answers nothing
        try:
            run.proc.send_signal(signal.SIGINT)
            code = run.finish(timeout=40)
        finally:
            os.kill(daemon, signal.SIGCONT)
    assert code != 0
    assert "lost the connection" in run.stderr or "did not report its end" in run.stderr


def test_a_run_whose_client_was_killed_in_input_is_cancelled(workspace: Workspace) -> None:
    workspace.write("asker.py", ASKER)
    workspace.write("hello.py", "print('hello')\n")
    with following(workspace, "asker.py", kind=Follow) as run:
        run.wait_for("asking")
        daemon, worker = daemon_and_worker(workspace)
        run.proc.kill()
        run.finish()

    def asker_ended() -> bool:
        runs = workspace.status()["runs"]
        return any(r["entry"].endswith("asker.py") and r["state"] == "finished" for r in runs)

    wait_until(asker_ended, "the run of the killed client still waits for input", 30)
    queued = workspace.run("--queue", "hello.py", timeout=60)
    assert (queued.returncode, queued.stdout) == (0, "hello\n"), queued.stderr
    assert daemon_and_worker(workspace) == (daemon, worker), "the worker was kept"


def test_a_new_daemon_ends_the_workers_a_killed_one_left(
    workspace: Workspace, tmp_path: Path
) -> None:
    """An orphan is faked by a process whose command line is a worker's of this workspace;
    a live process of another kind listed in the same file (its pid reused) is left alone."""
    (workspace.root / ".hotswap").mkdir()
    code = "import time; time.sleep(120)"
    argv = ["-m", "hotswap.runner", "--connect", "x", "--workspace", str(workspace.root)]
    orphan = subprocess.Popen([sys.executable, "-c", code, *argv], start_new_session=True)
    bystander = subprocess.Popen(["sleep", "120"], start_new_session=True)
    try:
        wait_until(
            lambda: b"hotswap.runner" in Path(f"/proc/{orphan.pid}/cmdline").read_bytes(), ""
        )
        from hotswap.orphans import start_time

        entries = [{"pid": p.pid, "start": start_time(p.pid)} for p in (orphan, bystander)]
        path = workspace.root / ".hotswap" / "workers.json"
        path.write_text(json.dumps({"workers": entries}))
        workspace.write("hello.py", "print('hello')\n")
        assert workspace.run("hello.py").returncode == 0
        assert orphan.wait(timeout=10) == -signal.SIGKILL
        assert bystander.poll() is None, "a process that is no worker of ours was killed"
        recorded = json.loads(path.read_text())["workers"]
        assert [e["pid"] for e in recorded] == [worker_pid(workspace)]
        assert path.stat().st_mode & 0o777 == 0o600
    finally:
        for proc in (orphan, bystander):
            proc.kill()
            proc.wait()


def test_kill_9_of_the_worker_mid_run(workspace: Workspace) -> None:
    workspace.write("sleeper.py", SLEEPER)
    with following(workspace, "sleeper.py") as run:
        run.wait_for("sleeping")
        daemon, worker = daemon_and_worker(workspace)
        os.kill(worker, signal.SIGKILL)
        assert run.finish(timeout=30) == 128 + signal.SIGKILL
    assert "SIGKILL" in run.stderr and "restarted the worker" in run.stderr
    workspace.write("hello.py", "print('hello')\n")
    proc = workspace.run("hello.py")
    assert (proc.returncode, proc.stdout) == (0, "hello\n"), proc.stderr
    new_daemon, new_worker = daemon_and_worker(workspace)
    assert new_daemon == daemon and new_worker != worker
    assert workspace_pids(workspace.root) == {daemon, new_worker}


TALKER = """\
import time
for i in range(100000):
    print("line", i, flush=True)
    time.sleep(0.05)
"""


def test_a_client_disconnecting_mid_run_gets_its_run_cancelled(workspace: Workspace) -> None:
    workspace.write("talker.py", TALKER)
    with following(workspace, "talker.py") as run:
        run.wait_for("line 3")
        daemon, worker = daemon_and_worker(workspace)
        run.proc.kill()
        run.finish()

    def talker_ended() -> bool:
        runs = workspace.status()["runs"]
        return any(r["entry"].endswith("talker.py") and r["state"] == "finished" for r in runs)

    wait_until(talker_ended, "the run of a vanished client went on", 30)
    assert daemon_and_worker(workspace) == (daemon, worker)
    assert workspace_pids(workspace.root) == {daemon, worker}
