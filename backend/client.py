"""A client of the daemon: connect, handshake, request/reply, events; start a daemon if none.

Used by the ``hotswap`` CLI and the tests; the extension speaks the same protocol from TypeScript.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sys
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import zmq
import zmq.utils.monitor

from .protocol import PROTOCOL_VERSION, MalformedMessage, VersionMismatch, make_message
from .session import Session
from .workspace import (
    DAEMON_LOG,
    ConnectionFileError,
    connection_path,
    pid_alive,
    proc_cmdline,
    proc_stat,
    read_connection,
    state_dir,
)

if TYPE_CHECKING:
    import subprocess

DAEMON_START_TIMEOUT = 60.0


class DaemonError(Exception):
    """The daemon answered a request with an error."""

    def __init__(self, ename: str, evalue: str, hint: str = "") -> None:
        super().__init__(f"{evalue}" + (f"\n  {hint}" if hint else ""))
        self.ename, self.evalue, self.hint = ename, evalue, hint


class DaemonUnavailable(Exception):
    """No daemon answered in time, or one could not be started."""


class DaemonGone(DaemonUnavailable):
    """The daemon died, or its connection stayed down past DISCONNECT_GRACE."""


# ZeroMQ's own heartbeats (ZMTP PING/PONG): a daemon that stops answering (a host gone, a
# tunnel cut, a stopped process) drops the connection, which the monitor below reports.
HEARTBEAT_IVL_MS = 1000
HEARTBEAT_TIMEOUT_MS = 5000
HEARTBEAT_TTL_MS = 10000  # tells the daemon to drop us if we go silent that long
DISCONNECT_GRACE = 5.0  # a connection down this long (no reconnect) means the daemon is gone


class DaemonClient:
    def __init__(
        self, connection: dict[str, Any], name: str = "hotswap-cli", local_pid: int = 0
    ) -> None:
        self.connection = connection
        self.name = name
        self.local_pid = local_pid  # the daemon's pid when it runs on this machine, else 0
        self.session = Session(connection["key"])
        self.ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
        self.socket: zmq.Socket[bytes] = self.ctx.socket(zmq.DEALER)
        self.socket.setsockopt(zmq.LINGER, 1000)
        self.socket.setsockopt(zmq.SNDHWM, 0)
        self.socket.setsockopt(zmq.RCVHWM, 0)
        self.socket.setsockopt(zmq.HEARTBEAT_IVL, HEARTBEAT_IVL_MS)
        self.socket.setsockopt(zmq.HEARTBEAT_TIMEOUT, HEARTBEAT_TIMEOUT_MS)
        self.socket.setsockopt(zmq.HEARTBEAT_TTL, HEARTBEAT_TTL_MS)
        events = zmq.EVENT_DISCONNECTED | zmq.EVENT_HANDSHAKE_SUCCEEDED
        self.monitor: zmq.Socket[bytes] = self.socket.get_monitor_socket(events)
        self.disconnected_since: float | None = None
        self.checked = 0.0
        if connection.get("curve_server_key"):  # a daemon reachable from elsewhere
            from .curve import client_key_pair, make_client

            make_client(self.socket, connection["curve_server_key"], client_key_pair())
        self.socket.connect(connection["address"])
        self.backlog: deque[dict[str, Any]] = deque()
        self.daemon: dict[str, Any] | None = None  # the hello_reply body, once handshaken

    def close(self) -> None:
        with contextlib.suppress(zmq.ZMQError):
            self.socket.disable_monitor()
        self.monitor.close(linger=0)
        self.socket.close()

    def check_alive(self) -> None:
        """Raise DaemonGone if the daemon died (local: its pid) or its connection stayed down."""
        now = time.monotonic()
        if now - self.checked < 0.25:
            return  # a run that floods output must not pay a /proc read per message
        self.checked = now
        while self.monitor.poll(0):
            event = zmq.utils.monitor.recv_monitor_message(self.monitor)
            if event["event"] == zmq.EVENT_DISCONNECTED:
                self.disconnected_since = self.disconnected_since or time.monotonic()
            else:
                self.disconnected_since = None
        if self.local_pid and not daemon_alive(self.local_pid):
            raise DaemonGone(self._gone(f"the hotswap daemon (pid {self.local_pid}) died"))
        down = self.disconnected_since
        if down is not None and time.monotonic() - down > DISCONNECT_GRACE:
            raise DaemonGone(
                self._gone(f"lost the connection to the daemon at {self.connection['address']}")
            )

    def _gone(self, what: str) -> str:
        workspace = self.connection.get("workspace")
        tail = log_tail(Path(workspace)) if self.local_pid and workspace else ""
        return f"{what}; run again to start a new one.\n{tail}".rstrip()

    def send(self, msg_type: str, body: dict[str, Any] | None = None) -> str:
        msg = make_message(msg_type, body)
        self.socket.send_multipart(self.session.pack(msg))
        return str(msg["id"])

    def recv(self, timeout: float | None = None) -> dict[str, Any] | None:
        """The next message (backlog first), or None after ``timeout`` seconds."""
        if self.backlog:
            return self.backlog.popleft()
        if timeout is not None and not self.socket.poll(int(timeout * 1000)):
            return None
        return self.session.unpack(self.socket.recv_multipart())

    def request(
        self, msg_type: str, body: dict[str, Any] | None = None, timeout: float = 10.0
    ) -> dict[str, Any]:
        """Send a request and wait for its reply; events arriving meanwhile are kept."""
        msg_id = self.send(msg_type, body)
        deadline = time.monotonic() + timeout
        held: list[dict[str, Any]] = []
        try:
            while (left := deadline - time.monotonic()) > 0:
                if not self.socket.poll(int(min(left, 1.0) * 1000) + 1):
                    self.check_alive()
                    continue
                msg = self.session.unpack(self.socket.recv_multipart())
                if msg["parent"] == msg_id or (msg["type"] == "error" and msg["parent"] is None):
                    if msg["type"] == "error":
                        body_ = msg["body"]
                        raise DaemonError(body_["ename"], body_["evalue"], body_.get("hint", ""))
                    return msg
                held.append(msg)
        finally:
            self.backlog.extend(held)
        raise DaemonUnavailable(
            f"the daemon at {self.connection['address']} did not answer {msg_type} "
            f"within {timeout:g}s"
        )

    def hello(self, timeout: float = 10.0) -> dict[str, Any]:
        body = {"protocol_version": PROTOCOL_VERSION, "client": self.name, "notices": True}
        try:
            self.daemon = self.request("hello", body, timeout)["body"]
        except MalformedMessage as exc:  # same major version, but an older release's reply
            raise VersionMismatch(
                f"the daemon at {self.connection['address']} answered the handshake in another "
                f"form than this client's protocol {PROTOCOL_VERSION} ({exc}); it runs another "
                "hotswap release: stop it with `hotswap stop` and run again"
            ) from None
        return self.daemon

    def sync_policy(self) -> dict[str, Any]:
        """What the daemon syncs (its size limit, ignore defaults): clients follow it."""
        if self.daemon is None:
            self.hello()
        assert self.daemon is not None
        return dict(self.daemon["sync_policy"])


def live_client(workspace: Path, timeout: float = 5.0) -> DaemonClient | None:
    """A connected client of the workspace's daemon, or None if no daemon is alive there."""
    try:
        connection = read_connection(connection_path(workspace))
    except ConnectionFileError:
        return None
    if not daemon_alive(int(connection["pid"])):
        return None
    client = DaemonClient(connection, local_pid=int(connection["pid"]))
    try:
        client.hello(timeout)
    except DaemonUnavailable:
        client.close()
        return None
    return client


def remote_client(backend: str, timeout: float = 10.0) -> DaemonClient:
    """A client of a daemon elsewhere: a copied connection file, or an address + HOTSWAP_KEY."""
    if "://" in backend:
        key = os.environ.get("HOTSWAP_KEY", "")
        if not key:
            raise DaemonUnavailable(
                f"--backend {backend} needs the daemon's key: set HOTSWAP_KEY to the `key` of its "
                "connection file, or pass the copied connection file instead"
            )
        connection: dict[str, Any] = {"address": backend, "key": key, "pid": 0}
        connection["curve_server_key"] = os.environ.get("HOTSWAP_CURVE_SERVER_KEY", "")
    else:
        try:
            connection = read_connection(Path(backend).expanduser())
        except ConnectionFileError as exc:
            raise DaemonUnavailable(f"--backend: {exc}") from None
    client = DaemonClient(connection)
    try:
        client.hello(timeout)
    except DaemonUnavailable:
        client.close()
        raise DaemonUnavailable(
            f"no hotswap daemon answered at {connection['address']} within {timeout:g}s; "
            "is it running, and is the SSH tunnel to its port up?"
        ) from None
    return client


@contextlib.contextmanager
def _start_lock(workspace: Path) -> Iterator[None]:
    state_dir(workspace).mkdir(parents=True, exist_ok=True)
    fd = os.open(state_dir(workspace) / "start.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def ensure_daemon(workspace: Path, timeout: float = DAEMON_START_TIMEOUT) -> DaemonClient:
    """Connect to the workspace's daemon, starting one detached if none is alive."""
    with _start_lock(workspace):
        client = live_client(workspace)
        if client is not None:
            return client
        proc = start_daemon(workspace)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise DaemonUnavailable(
                    f"the hotswap daemon exited at start (code {proc.returncode}).\n"
                    + log_tail(workspace)
                )
            client = _client_of(workspace, proc.pid)
            if client is not None:
                return client
            time.sleep(0.01)
        proc.kill()
        raise DaemonUnavailable(
            f"the hotswap daemon did not start within {timeout:g}s.\n" + log_tail(workspace)
        )


def _client_of(workspace: Path, pid: int) -> DaemonClient | None:
    try:
        connection = read_connection(connection_path(workspace))
    except ConnectionFileError:
        return None
    if connection["pid"] != pid:
        return None
    client = DaemonClient(connection, local_pid=pid)
    client.hello()
    return client


def start_daemon(workspace: Path) -> subprocess.Popen[bytes]:
    """``hotswap serve`` in its own session, its output appended to .hotswap/daemon.log."""
    import subprocess

    from .daemon_log import open_log

    log_fd = open_log(workspace)
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "hotswap", "serve", "--workspace", str(workspace)],
            stdin=subprocess.DEVNULL,
            stdout=log_fd,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=str(workspace),
        )
    finally:
        os.close(log_fd)


def daemon_alive(pid: int) -> bool:
    """True if ``pid`` is a live `hotswap serve` (not a zombie, nor a process that got the pid of
    a dead daemon: that one would cost every client the handshake's timeout)."""
    if pid <= 0 or not pid_alive(pid):
        return False
    argv, stat = proc_cmdline(pid), proc_stat(pid)
    if argv is None or not stat:
        return True  # no /proc (not Linux): the handshake will tell
    return "serve" in argv and stat[0] != "Z"


def log_tail(workspace: Path, lines: int = 20) -> str:
    path = state_dir(workspace) / DAEMON_LOG
    try:
        tail = path.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return f"(no log at {path})"
    return f"Last lines of {path}:\n" + "\n".join(f"  {line}" for line in tail)
