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
