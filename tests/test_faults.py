"""Faults through the real CLI: a daemon killed with -9 (running or idle), a stopped daemon, a
client killed during a run (in input() or not) or during its sync, a worker killed during a run
or a sync, workers a killed daemon left behind, a full disk under a mirror.

After every fault the next run works and no process of the workspace is left but the daemon
and its workers (a scan of /proc).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import HOTSWAP, Follow, Workspace, base_env, following, wait_until
from test_lifecycle import alive, worker_pid
from test_sync_cli import Editor, MirrorDaemon, daemon, editor, synced_files

__all__ = ["daemon", "editor"]  # test_sync_cli's fixtures: a `serve --mirror` and an editor

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


@contextlib.contextmanager
def following_proc(proc: subprocess.Popen[str]) -> Iterator[Follow]:
    """A ``hotswap run`` started by the test, followed, and killed at the end if still alive."""
    follow = Follow(proc)
    try:
        yield follow
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


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


def run_of(ws: Workspace, entry: str) -> dict[str, Any] | None:
    """The status record of the latest run of ``entry``."""
    runs = [r for r in ws.status()["runs"] if r["entry"].endswith(entry)]
    return runs[-1] if runs else None


def finished_run(ws: Workspace, entry: str, failure: str) -> dict[str, Any]:
    def finished() -> dict[str, Any] | None:
        run = run_of(ws, entry)
        return run if run is not None and run["state"] == "finished" else None

    return dict(wait_until(finished, failure, 30))


def test_a_run_whose_client_was_killed_in_input_is_cancelled(workspace: Workspace) -> None:
    """The client's stdin stays open (a terminal): only the worker can tell that the script
    waits for it, and nobody is left to type."""
    workspace.write("asker.py", ASKER)
    workspace.write("hello.py", "print('hello')\n")
    proc = workspace.popen_run("asker.py", stdin=subprocess.PIPE)
    with contextlib.closing(proc.stdin), following_proc(proc) as run:
        run.wait_for("asking")
        daemon, worker = daemon_and_worker(workspace)
        run.proc.kill()
        run.finish()
        asker = finished_run(workspace, "asker.py", "the run of the killed client still waits")
    assert (asker["reason"], asker["exit_code"]) == ("cancelled", 130)
    logs = workspace.hotswap("logs", asker["run_id"])
    assert logs.returncode == 130 and logs.stdout.startswith("asking\n"), logs
    assert "its client disconnected while it waited for input" in logs.stderr
    queued = workspace.run("--queue", "hello.py", timeout=60)
    assert (queued.returncode, queued.stdout) == (0, "hello\n"), queued.stderr
    assert daemon_and_worker(workspace) == (daemon, worker), "the worker was kept"
    assert workspace_pids(workspace.root) == {daemon, worker}


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
import sys, time
for i in range(60):
    print("line", i, flush=True)
    time.sleep(0.05)
sys.exit(3)
"""
TALKED = "".join(f"line {i}\n" for i in range(60))


def test_a_client_killed_mid_run_leaves_its_run_going_with_its_output_kept(
    workspace: Workspace,
) -> None:
    """kill -9 of the CLI: the run needs no stdin, so it finishes; `hotswap logs -f` takes it
    back while it runs, and `hotswap logs RUN` shows all of it with its exit code."""
    workspace.write("talker.py", TALKER)
    with following(workspace, "talker.py") as run:
        run.wait_for("line 3")
        daemon, worker = daemon_and_worker(workspace)
        run.proc.kill()
        run.finish()
    followed = workspace.hotswap("logs", "--follow", timeout=60)
    assert (followed.returncode, followed.stdout) == (3, TALKED), followed.stderr
    talker = finished_run(workspace, "talker.py", "the run of a vanished client never ended")
    assert (talker["reason"], talker["exit_code"]) == ("exited", 3)
    logs = workspace.hotswap("logs", talker["run_id"])
    assert (logs.returncode, logs.stdout, logs.stderr) == (3, TALKED, "")
    assert daemon_and_worker(workspace) == (daemon, worker)
    assert workspace_pids(workspace.root) == {daemon, worker}


def test_logs_keep_the_last_megabyte_and_say_the_rest_was_cut(workspace: Workspace) -> None:
    workspace.write("big.py", "import sys\nfor i in range(30000):\n    print(f'{i:>49}')\n")
    assert workspace.run("big.py").returncode == 0  # 1.5 MB of lines of 50 bytes
    logs = workspace.hotswap("logs")
    assert logs.returncode == 0
    assert "output truncated: only the last 1 MB of it is kept" in logs.stderr
    assert len(logs.stdout) == 1 << 20
    assert logs.stdout.endswith(f"{29999:>49}\n")
    missing = workspace.hotswap("logs", "no-such-run")
    assert missing.returncode == 1 and "no output is kept for run no-such-run" in missing.stderr


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MB tmpfs, unmounted at the end."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    disk = tmp_path / "gpu-box" / "mirror"
    disk.mkdir(parents=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)])
    if mounted.returncode != 0:
        pytest.skip("this machine does not let the test mount a tmpfs")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def test_a_full_disk_during_a_mirror_write_changes_nothing_and_says_so(
    small_disk: Path, tmp_path: Path
) -> None:
    """`serve --mirror` on a 1 MB disk: a sync of 2 x 600 KB fails with a clear error, no
    file nor staged copy is left half-written, and once the files are gone the next run works."""
    daemon = MirrorDaemon(small_disk, tmp_path / "laptop" / "from-gpu-box")
    try:
        daemon.start()
        editor = Editor(tmp_path / "laptop" / "project", daemon)
        editor.write("main.py", "print('first')\n")
        assert editor.run("main.py").stdout == "first\n"
        before = synced_files(small_disk)
        editor.write("main.py", "print('second')\n")
        for name in ("a.bin", "b.bin"):
            editor.write(f"data/{name}", os.urandom(600 * 1024))
        full = editor.run("main.py", ok=False)
        assert full.returncode == 1 and full.stdout == ""
        assert "cannot write into" in full.stderr and "No space left on device" in full.stderr
        assert "nothing was changed" in full.stderr and "free space" in full.stderr
        assert synced_files(small_disk) == before, "a file of the failed sync was written"
        assert not list(small_disk.glob(".hotswap-*")), "a staged copy was left behind"
        assert daemon.proc.poll() is None, daemon.log()
        (editor.root / "data" / "b.bin").unlink()
        assert editor.run("main.py").stdout == "second\n"
        assert synced_files(small_disk) == synced_files(editor.root)
    finally:
        daemon.kill_all()


def start_big_sync(daemon: MirrorDaemon, editor: Editor) -> tuple[dict[str, bytes], Follow]:
    """A first run synced, then 40 MB more (chunks of 8 MB) for a second one, started in the
    background once the mirror holds the first: (the mirror's files then, the second run)."""
    editor.write("main.py", "print('first')\n")
    assert editor.run("main.py").stdout == "first\n"
    before = synced_files(daemon.mirror)
    editor.write("main.py", "print('second')\n")
    for i in range(5):
        editor.write(f"data/{i}.bin", os.urandom(8 * 1024 * 1024))
    argv = [HOTSWAP, "run", "--workspace", str(editor.root), "--backend", str(daemon.copy)]
    proc = subprocess.Popen(
        [*argv, "main.py"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=base_env(),
        cwd=editor.root,
    )
    return before, Follow(proc)


def mirror_workers(daemon: MirrorDaemon) -> set[int]:
    """The worker pids the daemon recorded in its .hotswap/workers.json."""
    recorded = json.loads((daemon.mirror / ".hotswap" / "workers.json").read_text())
    return {entry["pid"] for entry in recorded["workers"]}


def wait_mid_sync(run: Follow) -> None:
    """Until the CLI reports the first chunks acknowledged, with the last still to go."""
    wait_until(
        lambda: "hotswap: synced" in run.stderr or run.proc.poll() is not None,
        "no sync progress was reported",
        60,
    )
    assert run.proc.poll() is None and "(100%)" not in run.stderr, run.stderr


def test_a_client_killed_mid_sync_leaves_the_mirror_as_it_was(
    daemon: MirrorDaemon, editor: Editor
) -> None:
    before, run = start_big_sync(daemon, editor)
    with following_proc(run.proc):
        wait_mid_sync(run)
        run.proc.kill()  # kill -9
        run.proc.wait()
    assert synced_files(daemon.mirror) == before, "a file of the cut sync was written"
    assert not list(daemon.mirror.glob(".hotswap-*")), "a staged copy was left behind"
    assert daemon.proc.poll() is None, daemon.log()
    assert editor.run("main.py").stdout == "second\n"  # it syncs again, in full
    assert synced_files(daemon.mirror) == synced_files(editor.root)
    assert workspace_pids(daemon.mirror) <= {daemon.proc.pid, *mirror_workers(daemon)}


def test_a_worker_killed_mid_sync_is_replaced_and_the_run_goes_on(
    daemon: MirrorDaemon, editor: Editor
) -> None:
    _, run = start_big_sync(daemon, editor)
    killed = mirror_workers(daemon)
    assert killed
    with following_proc(run.proc):
        wait_mid_sync(run)
        for pid in killed:
            os.kill(pid, signal.SIGKILL)
        assert run.finish() == 0, run.stderr + daemon.log()
    assert run.stdout == "second\n"
    assert synced_files(daemon.mirror) == synced_files(editor.root)
    replacements = mirror_workers(daemon)
    assert replacements and not replacements & killed
    assert all(alive(pid) for pid in replacements)
    assert not any(alive(pid) for pid in killed)
