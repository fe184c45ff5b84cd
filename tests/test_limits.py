"""Limits before work, through real daemons: frames too big are dropped at the socket, garbage is
logged at a bounded rate, daemon.log is private and capped, a missing --workspace is refused."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import zmq
from conftest import Workspace, base_env, wait_until
from hotswap.daemon_log import REJECTS_PER_WINDOW
from hotswap.daemon_sockets import MAX_FRAME_BYTES
from hotswap.protocol import MAX_MESSAGE_BYTES


def peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def raw_dealer(ws: Workspace) -> zmq.Socket[bytes]:
    sock: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(ws.connection()["address"])
    return sock


def started(ws: Workspace) -> int:
    ws.write("hello.py", "print('hello')\n")
    proc = ws.run("hello.py")
    assert (proc.returncode, proc.stdout) == (0, "hello\n"), proc.stderr
    return int(ws.connection()["pid"])


def test_a_frame_far_over_the_limit_never_costs_the_daemon_its_size(workspace: Workspace) -> None:
    daemon = started(workspace)
    before = peak_rss(daemon)
    sock = raw_dealer(workspace)
    try:
        big = bytes(2 * MAX_FRAME_BYTES)
        sock.send_multipart([b"0" * 64, big], copy=False)
        del big
        assert workspace.run("hello.py").returncode == 0  # served after the drop
    finally:
        sock.close()
    assert peak_rss(daemon) - before < MAX_MESSAGE_BYTES // 2, "the frame was buffered"


def test_garbage_is_logged_at_a_bounded_rate_and_the_log_is_private(
    workspace: Workspace,
) -> None:
    started(workspace)
    log = workspace.root / ".hotswap" / "daemon.log"
    assert log.stat().st_mode & 0o777 == 0o600
    sock = raw_dealer(workspace)
    try:
        for i in range(300):
            sock.send_multipart([b"not a signature", f"garbage {i}".encode()])
        for _ in range(300):  # each one is answered with an error; wait for all of them
            assert sock.poll(10_000), "the daemon stopped answering"
            sock.recv_multipart()
    finally:
        sock.close()
    assert workspace.run("hello.py").returncode == 0
    logged = log.read_text().count("rejected a message from a client")
    assert logged == REJECTS_PER_WINDOW


def test_an_existing_public_log_is_made_private(workspace: Workspace) -> None:
    log = workspace.root / ".hotswap" / "daemon.log"
    log.parent.mkdir()
    log.write_text("old line\n")
    log.chmod(0o644)
    started(workspace)
    assert log.stat().st_mode & 0o777 == 0o600
    assert log.read_text().startswith("old line\n")


def test_a_daemon_makes_the_log_it_writes_to_private(workspace: Workspace) -> None:
    """As when the extension starts it: stdout and stderr appended to a log its umask made."""
    log = workspace.root / ".hotswap" / "daemon.log"
    log.parent.mkdir()
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    argv = [sys.executable, "-m", "hotswap", "serve", "--workspace", str(workspace.root)]
    daemon = subprocess.Popen(argv, stdout=fd, stderr=fd, env=base_env(), start_new_session=True)
    os.close(fd)
    workspace.daemon_pids.add(daemon.pid)
    try:
        wait_until(lambda: "serving" in log.read_text(), "the daemon did not start")
        assert log.stat().st_mode & 0o777 == 0o600
    finally:
        workspace.stop()
        daemon.wait(timeout=30)


ROTATE = """\
import os, sys, time
from pathlib import Path
from hotswap.daemon_log import LogRotation
workspace = Path(sys.argv[1])
rotation = LogRotation(workspace, cap=4096)
os.write(2, b"x" * 5000 + b"\\n")
rotation.check(time.time())
print("after the rotation", file=sys.stderr, flush=True)
os.write(1, b"stdout too\\n")
"""


def test_the_log_is_rotated_past_its_cap_with_everything_written_to_fd_1_and_2(
    tmp_path: Path,
) -> None:
    """A process whose stdout and stderr are the log, as `hotswap serve` started by a client."""
    (tmp_path / ".hotswap").mkdir()
    from hotswap.daemon_log import open_log

    fd = open_log(tmp_path)
    try:
        subprocess.run(
            [sys.executable, "-c", ROTATE, str(tmp_path)],
            stdout=fd,
            stderr=fd,
            env=base_env(),
            check=True,
            timeout=60,
        )
    finally:
        os.close(fd)
    log = tmp_path / ".hotswap" / "daemon.log"
    assert log.read_text() == "after the rotation\nstdout too\n"
    assert (tmp_path / ".hotswap" / "daemon.log.1").read_text() == "x" * 5000 + "\n"
    assert log.stat().st_mode & 0o777 == 0o600


def test_a_missing_workspace_folder_is_refused_not_created(tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such" / "project"
    for command in (["run", "x.py"], ["status"], ["stop"]):
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "hotswap",
                command[0],
                "--workspace",
                str(missing),
                *command[1:],
            ],
            capture_output=True,
            text=True,
            env=base_env(),
            timeout=60,
        )
        assert proc.returncode == 2, proc
        assert "no such folder" in proc.stderr and str(missing) in proc.stderr
    assert not (tmp_path / "no").exists()
