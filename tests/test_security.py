"""Who may connect: key pairs made by `hotswap keys`, a non-loopback bind refused without CURVE,
and a CURVE daemon that admits the allowed client key and nobody else."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import HOTSWAP, Workspace, base_env, kill_group, wait_until
from hotswap.client import DaemonClient, DaemonUnavailable
from hotswap.curve import check_bind, is_loopback


@pytest.fixture
def config_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "config"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home))
    return home


def hotswap(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [HOTSWAP, *args], capture_output=True, text=True, env=env or base_env(), timeout=120
    )


def test_keys_are_made_private_listed_and_never_overwritten(config_home: Path) -> None:
    made = hotswap("keys", "new", "laptop")
    assert made.returncode == 0, made.stderr
    path = config_home / "hotswap" / "keys" / "laptop.json"
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700
    public = made.stdout.split("public key ")[1].split()[0]
    assert len(public) == 40
    assert hotswap("keys", "list").stdout == f"laptop\t{public}\n"
    again = hotswap("keys", "new", "laptop")
    assert again.returncode == 2 and "exists already" in again.stderr
    assert hotswap("keys", "new", "../evil").returncode == 2


@pytest.mark.parametrize(
    ("bind", "loopback"),
    [
        ("tcp://127.0.0.1", True),
        ("tcp://127.0.0.1:5555", True),
        ("tcp://localhost:5555", True),
        ("tcp://[::1]:5555", True),
        ("ipc:///tmp/x.sock", True),
        ("tcp://0.0.0.0:5555", False),
        ("tcp://*:5555", False),
        ("tcp://192.168.1.4:5555", False),
        ("tcp://eth0:5555", False),
    ],
)
def test_which_binds_other_hosts_can_reach(bind: str, loopback: bool) -> None:
    assert is_loopback(bind) is loopback


def test_a_bind_other_hosts_can_reach_is_refused_without_curve(workspace: Workspace) -> None:
    proc = workspace.hotswap("serve", "--bind", "tcp://0.0.0.0")
    assert proc.returncode == 2
    assert "refusing to listen on tcp://0.0.0.0" in proc.stderr
    assert "ssh -L" in proc.stderr and "--curve" in proc.stderr
    assert not (workspace.root / ".hotswap" / "connection.json").exists()
    with pytest.raises(Exception, match="refusing"):
        check_bind("tcp://*:1234", "server", [])  # a key pair without allowed clients


@pytest.fixture
def curve_daemon(workspace: Workspace, config_home: Path) -> Iterator[Workspace]:
    for name in ("server", "laptop", "stranger"):
        assert hotswap("keys", "new", name).returncode == 0
    argv = [HOTSWAP, "serve", "--workspace", str(workspace.root), "--curve", "server"]
    daemon = subprocess.Popen(
        [*argv, "--allow", "laptop"],
        env=base_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        path = workspace.root / ".hotswap" / "connection.json"
        wait_until(path.exists, "the CURVE daemon wrote no connection file")
        time.sleep(0.2)  # written atomically, but its workers may still be starting
        yield workspace
    finally:
        kill_group(daemon.pid)
        daemon.wait()


def test_a_curve_daemon_admits_the_allowed_key_only(
    curve_daemon: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    connection = curve_daemon.connection()
    assert len(connection["curve_server_key"]) == 40
    monkeypatch.setenv("HOTSWAP_CURVE_KEY", "laptop")
    allowed = DaemonClient(connection)
    try:
        assert allowed.hello(timeout=20)["workspace"] == str(curve_daemon.root)
    finally:
        allowed.close()
    monkeypatch.setenv("HOTSWAP_CURVE_KEY", "stranger")
    stranger = DaemonClient(connection)
    plain = DaemonClient({**connection, "curve_server_key": ""})
    try:
        for client in (stranger, plain):
            with pytest.raises(DaemonUnavailable):
                client.hello(timeout=3)
    finally:
        stranger.close()
        plain.close()
    curve_daemon.write("hello.py", "print('hello')\n")
    env = base_env(HOTSWAP_CURVE_KEY="laptop", XDG_CONFIG_HOME=os.environ["XDG_CONFIG_HOME"])
    run = curve_daemon.run("hello.py", env=env)
    assert (run.returncode, run.stdout) == (0, "hello\n"), run.stderr


def test_debugpy_listens_on_loopback_only() -> None:
    source = (
        Path(sys.modules["hotswap"].__file__ or "").parent / "runner" / "debug.py"
    ).read_text()
    assert 'debugpy.listen(("127.0.0.1", 0))' in source


READ_AS_OTHER = """\
import socket, sys
from pathlib import Path
for name in sys.argv[1:]:
    try:
        if name.startswith("ipc://"):
            socket.socket(socket.AF_UNIX).connect(name[len("ipc://"):])
        else:
            Path(name).read_bytes()
        print("read", name)
    except PermissionError:
        print("denied", name)
"""


SYSTEM_PYTHON = "/usr/bin/python3"  # ours may sit in a folder the other user cannot enter


def worker_address(ws: Workspace) -> str:
    """The address the daemon's worker connects back to (from the worker's command line)."""
    worker = ws.status()["workers"][0]["pid"]
    argv = Path(f"/proc/{worker}/cmdline").read_bytes().decode().split("\0")
    return argv[argv.index("--connect") + 1]


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as a second local user")
@pytest.mark.skipif(not os.access(SYSTEM_PYTHON, os.X_OK), reason="no /usr/bin/python3")
def test_a_second_local_user_cannot_connect_nor_read_the_key_the_log_or_the_worker_list(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """Run as `nobody` in a workspace every user may enter, as a home folder often is: only
    the files' own modes keep the key and the run output private, and the daemon's sockets
    (clients' and workers') are in a folder `nobody` cannot enter."""
    import pwd
    import tempfile

    other = pwd.getpwnam("nobody")
    root = Path(tempfile.mkdtemp(prefix="hotswap-shared-"))
    root.chmod(0o755)
    ws = Workspace(root)
    try:
        ws.write("hello.py", "print('hello')\n")
        assert ws.run("hello.py").returncode == 0
        state = root / ".hotswap"
        files = [str(state / n) for n in ("connection.json", "daemon.log", "workers.json")]
        sockets = [ws.connection()["address"], worker_address(ws)]
        assert all(address.startswith("ipc://") for address in sockets)
        files += sockets
        proc = subprocess.run(
            [SYSTEM_PYTHON, "-c", READ_AS_OTHER, *files],
            capture_output=True,
            text=True,
            user=other.pw_uid,
            group=other.pw_gid,
            extra_groups=[],
            env={"PATH": "/usr/bin:/bin"},
            cwd="/",
            timeout=60,
        )
        assert proc.stdout.split("\n")[:-1] == [f"denied {f}" for f in files], proc
    finally:
        ws.stop()
        import shutil

        shutil.rmtree(root, ignore_errors=True)


def test_an_ipc_socket_lives_in_a_folder_of_the_owner_alone(
    workspace: Workspace, tmp_path: Path
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    shared.chmod(0o755)
    refused = workspace.hotswap("serve", "--bind", f"ipc://{shared}/daemon.sock")
    assert refused.returncode == 2 and "not yours alone" in refused.stderr
    private = tmp_path / "private" / "run"
    argv = [HOTSWAP, "serve", "--workspace", str(workspace.root), "--bind"]
    daemon = subprocess.Popen(
        [*argv, f"ipc://{private}/daemon.sock"],
        env=base_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    workspace.daemon_pids.add(daemon.pid)
    try:
        wait_until((workspace.root / ".hotswap" / "connection.json").exists, "no connection file")
        assert workspace.connection()["address"] == f"ipc://{private}/daemon.sock"
        assert private.stat().st_mode & 0o777 == 0o700
        workspace.write("hello.py", "print('hello')\n")
        run = workspace.run("hello.py")
        assert (run.returncode, run.stdout) == (0, "hello\n"), run.stderr
    finally:
        workspace.stop()
        daemon.wait(timeout=30)


def test_the_default_socket_folder_must_be_private_else_loopback_tcp(
    workspace: Workspace, tmp_path: Path
) -> None:
    """$XDG_RUNTIME_DIR/hotswap is where the socket goes; a folder others may enter is refused
    (the daemon says so in its log) and the daemon binds loopback TCP instead."""
    runtime = tmp_path / "run"
    workspace.write("hello.py", "print('hello')\n")
    (runtime / "hotswap").mkdir(parents=True, mode=0o755)
    (runtime / "hotswap").chmod(0o755)
    shared = workspace.run("hello.py", env=base_env(XDG_RUNTIME_DIR=str(runtime)))
    assert (shared.returncode, shared.stdout) == (0, "hello\n"), shared.stderr
    assert workspace.connection()["address"].startswith("tcp://127.0.0.1:")
    log = (workspace.root / ".hotswap" / "daemon.log").read_text()
    assert "no private folder for the daemon's sockets" in log and "not yours alone" in log
    workspace.stop()
    (runtime / "hotswap").chmod(0o700)
    private = workspace.run("hello.py", env=base_env(XDG_RUNTIME_DIR=str(runtime)))
    assert (private.returncode, private.stdout) == (0, "hello\n"), private.stderr
    address = workspace.connection()["address"]
    assert address.startswith(f"ipc://{runtime}/hotswap/") and address.endswith(".sock")
