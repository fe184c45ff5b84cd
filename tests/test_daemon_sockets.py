"""Level 2: the daemon in this process, spoken to over real ZeroMQ sockets, with a real worker.

Good traffic goes through ``hotswap.client.DaemonClient``; malformed traffic through a raw
DEALER socket. Every message received is validated against the protocol spec.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hotswap
import msgpack
import pytest
import zmq
from conftest import base_env, wait_until
from hotswap.client import DaemonClient, DaemonError, DaemonUnavailable
from hotswap.client_watch import IDLE_CLIENTS_KEPT
from hotswap.daemon_sockets import MAX_FRAME_BYTES
from hotswap.messages import MESSAGE_TYPES
from hotswap.protocol import (
    FEATURES,
    MAX_MESSAGE_BYTES,
    PROTOCOL_VERSION,
    VersionMismatch,
    make_message,
    new_id,
    validate,
)
from hotswap.server import Daemon
from hotswap.session import Session
from hotswap.sync import sync_policy
from hotswap.workspace import Config, connection_path, read_connection

ZMQ_MAX_FRAME = MAX_FRAME_BYTES  # the daemon's ZMQ_MAXMSGSIZE on its client socket


def check_incoming(msg: dict[str, Any]) -> dict[str, Any]:
    """What a client receives must be valid, and only ever a reply or an event."""
    validate(msg)
    assert MESSAGE_TYPES[msg["type"]].kind in ("reply", "event"), msg["type"]
    return msg


@dataclass
class LiveDaemon:
    daemon: Daemon
    thread: threading.Thread
    workspace: Path
    connection: dict[str, Any]
    errors: list[BaseException] = field(default_factory=list)

    def client(self, name: str = "test") -> DaemonClient:
        return DaemonClient(self.connection, name)

    def assert_serving(self) -> None:
        """The loop is alive and still answers a handshake from a new client."""
        assert self.thread.is_alive() and not self.errors, self.errors
        with contextlib.closing(self.client("probe")) as client:
            assert check_incoming_reply(client.request("hello", hello_body()))


def hello_body(version: str = PROTOCOL_VERSION) -> dict[str, Any]:
    return {"protocol_version": version, "client": "test_daemon_sockets"}


def check_incoming_reply(msg: dict[str, Any]) -> dict[str, Any]:
    check_incoming(msg)
    assert msg["type"].endswith("_reply"), msg
    return msg


def stop_daemon(live: LiveDaemon, procs: list[subprocess.Popen[bytes]]) -> None:
    """Stop through the protocol, so begin_stop runs on the daemon's own thread.

    Calling ``daemon.begin_stop()`` from this thread would use the daemon's worker socket
    concurrently with its loop, and ZeroMQ sockets are not thread-safe; it is the last resort.
    """
    if live.thread.is_alive():
        with contextlib.closing(live.client("teardown")) as client:
            try:
                client.request("stop", timeout=10)
            except (DaemonError, DaemonUnavailable):
                live.daemon.begin_stop()
        live.thread.join(30)
    for proc in [*procs, *(w.proc for w in list(live.daemon.workers))]:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    live.thread.join(10)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveDaemon]:
    workspace = tmp_path_factory.mktemp("daemon-ws")
    daemon = Daemon(workspace, Config())
    live = LiveDaemon(daemon, threading.Thread(), workspace, {})

    def serve() -> None:
        try:
            daemon.serve_forever()
        except BaseException as exc:  # recorded: the tests then fail instead of hanging
            live.errors.append(exc)
            raise

    live.thread = threading.Thread(target=serve, name="hotswap-daemon", daemon=True)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        daemon.start()
        procs = [w.proc for w in daemon.workers]
        live.connection = read_connection(connection_path(workspace))
        live.thread.start()
        yield live
    finally:
        stop_daemon(live, procs)
    assert not live.thread.is_alive(), "the daemon loop did not end after stop"
    assert all(p.poll() is not None for p in procs), "a worker outlived the daemon"
    assert not live.errors, live.errors


class RawPeer:
    """A DEALER socket sending whatever frames a test likes; replies are still verified."""

    def __init__(self, connection: dict[str, Any]) -> None:
        self.session = Session(connection["key"])
        self.socket: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.DEALER)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.connect(connection["address"])
        self.received: list[dict[str, Any]] = []

    def close(self) -> None:
        self.socket.close()

    def send_frames(self, frames: list[bytes]) -> None:
        self.socket.send_multipart(frames)

    def sign_and_send(self, msg: dict[str, Any]) -> None:
        """Sign a hand-built envelope (make_message would refuse an invalid one)."""
        payload = msgpack.packb(msg, use_bin_type=True)
        self.send_frames([self.session.sign(payload), payload])

    def wait_for(
        self, wanted: Callable[[dict[str, Any]], bool], timeout: float = 60
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            if not self.socket.poll(int(left * 1000) + 1):
                break
            msg = check_incoming(self.session.unpack(self.socket.recv_multipart()))
            self.received.append(msg)
            if wanted(msg):
                return msg
        raise AssertionError(f"no expected message within {timeout}s; got {self.received}")

    def error(self, parent: str | None = None) -> dict[str, Any]:
        msg = self.wait_for(lambda m: m["type"] == "error" and m["parent"] == parent)
        assert msg["body"]["status"] == "error"
        return msg["body"]

    def request(self, msg_type: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        msg = make_message(msg_type, body)
        self.send_frames(self.session.pack(msg))
        return self.wait_for(lambda m: m["parent"] == msg["id"])


@pytest.fixture
def peer(live: LiveDaemon) -> Iterator[RawPeer]:
    raw = RawPeer(live.connection)
    try:
        yield raw
    finally:
        raw.close()


@pytest.fixture
def client(live: LiveDaemon) -> Iterator[DaemonClient]:
    with contextlib.closing(live.client()) as c:
        yield c


# -- the handshake -------------------------------------------------------------------


def test_connection_file_names_this_process(live: LiveDaemon) -> None:
    assert live.connection["pid"] == os.getpid()
    assert live.connection["protocol_version"] == PROTOCOL_VERSION
    assert connection_path(live.workspace).stat().st_mode & 0o777 == 0o600


def test_the_default_bind_is_a_unix_socket_in_a_private_folder(live: LiveDaemon) -> None:
    """No TCP port at all (nothing for VS Code Remote to forward): both sockets are unix
    sockets in a 0700 folder of this user, short enough to bind."""
    client_path = live.connection["address"].removeprefix("ipc://")
    worker_path = live.daemon.workers.spec.address.removeprefix("ipc://")
    for path in (Path(client_path), Path(worker_path)):
        assert path.is_socket() and len(str(path)) <= 107
        folder = path.parent.lstat()
        assert folder.st_uid == os.getuid() and folder.st_mode & 0o777 == 0o700
    ports = listening_ports_of(os.getpid())
    assert not ports, f"the daemon listens on TCP ports {ports}"


def listening_ports_of(pid: int) -> set[int]:
    """TCP ports that sockets of process ``pid`` listen on (from /proc, as VS Code scans)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def test_hello_reply(live: LiveDaemon, client: DaemonClient) -> None:
    request_id = client.send("hello", hello_body())
    reply = check_incoming_reply(client.recv(timeout=30) or {})
    assert reply["type"] == "hello_reply" and reply["parent"] == request_id
    body = reply["body"]
    assert body["protocol_version"] == PROTOCOL_VERSION
    assert body["features"] == FEATURES
    assert {"run", "cancel", "stdin", "status", "stop"} <= set(body["features"])
    assert body["daemon_pid"] == os.getpid()
    assert body["workspace"] == str(live.workspace)
    assert body["version"] == hotswap.__version__
    assert body["sync_policy"] == sync_policy(Config().max_file_bytes)


def test_hello_with_another_major_version_names_both(live: LiveDaemon, peer: RawPeer) -> None:
    reply = peer.request("hello", hello_body("2.0"))
    assert reply["type"] == "error"
    assert reply["body"]["ename"] == "version_mismatch"
    assert "2.0" in reply["body"]["evalue"] and PROTOCOL_VERSION in reply["body"]["evalue"]
    assert reply["body"]["hint"]
    live.assert_serving()


def test_hello_through_the_client_raises_the_version_error(client: DaemonClient) -> None:
    with pytest.raises(DaemonError) as info:
        client.request("hello", hello_body("2.1"))
    assert info.value.ename == "version_mismatch" and "2.1" in info.value.evalue


def test_a_daemon_of_an_older_release_gets_a_clear_handshake_error() -> None:
    """A stand-in for a 1.0 daemon (a release this machine does not have): its hello_reply
    lacks the fields 1.1 added."""
    key = os.urandom(32).hex()
    old: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.ROUTER)
    old.setsockopt(zmq.LINGER, 0)
    port = old.bind_to_random_port("tcp://127.0.0.1")
    session = Session(key)

    def answer() -> None:
        identity, *frames = old.recv_multipart()
        hello = session.unpack(frames)
        body = {"status": "ok", "protocol_version": "1.0", "features": [], "daemon_pid": 1}
        reply = {**make_message("status"), "type": "hello_reply", "parent": hello["id"]}
        payload = msgpack.packb({**reply, "body": {**body, "workspace": "/w"}}, use_bin_type=True)
        old.send_multipart([identity, session.sign(payload), payload])

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    client = DaemonClient({"address": f"tcp://127.0.0.1:{port}", "key": key, "pid": 0})
    try:
        with pytest.raises(VersionMismatch, match="hotswap stop") as info:
            client.hello(timeout=30)
        assert "missing field 'version'" in str(info.value)
    finally:
        client.close()
        thread.join(10)
        old.close()


def test_envelope_of_another_major_version_is_refused(live: LiveDaemon, peer: RawPeer) -> None:
    peer.sign_and_send({**make_message("status"), "v": "2.0"})
    error = peer.error()
    assert error["ename"] == "version_mismatch"
    assert "2.0" in error["evalue"] and PROTOCOL_VERSION in error["evalue"]
    live.assert_serving()


# -- bad traffic gets an error reply and the loop goes on -----------------------------


def _status_payload() -> bytes:
    return bytes(msgpack.packb(make_message("status"), use_bin_type=True))


BAD_FRAMES: dict[str, tuple[Callable[[Session], list[bytes]], str]] = {
    "unsigned-one-frame": (lambda s: [_status_payload()], "malformed"),
    "empty-signature": (lambda s: [b"", _status_payload()], "bad_signature"),
    "bad-signature": (lambda s: [b"0" * 64, _status_payload()], "bad_signature"),
    "other-key": (lambda s: Session(os.urandom(32)).pack(make_message("status")), "bad_signature"),
    "three-frames": (lambda s: [*s.pack(make_message("status")), b"extra"], "malformed"),
    "garbage-payload": (lambda s: [s.sign(b"\xc1\xc1 junk"), b"\xc1\xc1 junk"], "malformed"),
    "not-a-map": (
        lambda s: [s.sign(msgpack.packb([1, 2])), bytes(msgpack.packb([1, 2]))],
        "malformed",
    ),
    "missing-field": (
        lambda s: _signed(s, {**make_message("status"), "body": {}, "type": "stdin"}),
        "malformed",
    ),
    "stale-timestamp": (
        lambda s: _signed(s, {**make_message("status"), "ts": time.time() - 3600}),
        "replayed",
    ),
}


def _signed(session: Session, msg: dict[str, Any]) -> list[bytes]:
    payload = bytes(msgpack.packb(msg, use_bin_type=True))
    return [session.sign(payload), payload]


@pytest.mark.parametrize("case", sorted(BAD_FRAMES))
def test_bad_message_gets_an_error_reply(live: LiveDaemon, peer: RawPeer, case: str) -> None:
    build, ename = BAD_FRAMES[case]
    peer.send_frames(build(peer.session))
    error = peer.error()
    assert error["ename"] == ename, error
    assert error["evalue"]
    # the same connection is still served, and so is everyone else
    assert peer.request("hello", hello_body())["type"] == "hello_reply"
    live.assert_serving()


def test_unknown_type_gets_an_error_with_a_hint(live: LiveDaemon, peer: RawPeer) -> None:
    envelope = {
        "v": PROTOCOL_VERSION,
        "id": new_id(),
        "type": "frobnicate",
        "ts": time.time(),
        "parent": None,
        "body": {},
    }
    peer.sign_and_send(envelope)
    error = peer.error()
    assert error["ename"] == "unknown_type" and "frobnicate" in error["evalue"]
    assert "hello" in error["hint"] and "run" in error["hint"]
    live.assert_serving()


STATUS_DAEMON = {
    "pid": 1,
    "workspace": "/w",
    "address": "tcp://127.0.0.1:1",
    "started": 0.0,
    "version": "0",
    "protocol_version": PROTOCOL_VERSION,
    "stopping": False,
}


@pytest.mark.parametrize(
    ("msg_type", "body"),
    [
        ("status_reply", {"daemon": STATUS_DAEMON, "workers": [], "runs": []}),
        (
            "run_started",
            {
                "run_id": "r",
                "entry": "e.py",
                "worker": 0,
                "worker_pid": 1,
                "warm_keys": [],
                "path_mappings": [],
            },
        ),
        ("shutdown", {}),  # a worker's message must not be obeyed on the client socket
        ("worker_ready", {"pid": 1, "python": "3"}),
    ],
)
def test_a_message_that_is_not_a_request_is_refused(
    live: LiveDaemon, peer: RawPeer, msg_type: str, body: dict[str, Any]
) -> None:
    msg = make_message(msg_type, body)
    peer.send_frames(peer.session.pack(msg))
    error = peer.error(parent=msg["id"])
    assert error["ename"] == "not_a_request" and msg_type in error["evalue"]
    live.assert_serving()
    assert live.daemon.workers, "the worker must not have been shut down"


def test_replayed_message_is_refused(live: LiveDaemon, peer: RawPeer) -> None:
    msg = make_message("status")
    frames = peer.session.pack(msg)
    peer.send_frames(frames)
    assert peer.wait_for(lambda m: m["parent"] == msg["id"])["type"] == "status_reply"
    peer.send_frames(frames)
    error = peer.error()
    assert error["ename"] == "replayed" and "already" in error["evalue"]
    live.assert_serving()


def test_oversized_message_gets_an_error_reply(live: LiveDaemon, peer: RawPeer) -> None:
    # Above MAX_MESSAGE_BYTES but under ZeroMQ's frame limit: the message arrives, the
    # session refuses it before checking the signature or decoding, and replies `oversized`.
    msg = make_message("stdin", {"run_id": "r", "data": b"x" * MAX_MESSAGE_BYTES})
    frames = peer.session.pack(msg)
    assert len(frames[1]) > MAX_MESSAGE_BYTES
    peer.send_frames(frames)
    del frames, msg
    error = peer.error()
    assert error["ename"] == "oversized" and str(MAX_MESSAGE_BYTES) in error["evalue"]
    live.assert_serving()


def test_frame_beyond_zmq_limit_is_dropped_and_the_daemon_survives(
    live: LiveDaemon, peer: RawPeer
) -> None:
    # Above ZMQ_MAXMSGSIZE, ZeroMQ itself drops the connection: no reply is possible. The
    # DEALER reconnects on its own; the daemon keeps serving it and everyone else.
    peer.send_frames([b"0" * 64, bytes(ZMQ_MAX_FRAME + 1)])
    live.assert_serving()
    deadline = time.monotonic() + 60
    answered = None
    while answered is None and time.monotonic() < deadline:
        msg = make_message("hello", hello_body())
        peer.send_frames(peer.session.pack(msg))  # may be lost with the dropped connection
        with contextlib.suppress(AssertionError):
            answered = peer.wait_for(lambda m, i=msg["id"]: m["parent"] == i, timeout=2)
    assert answered is not None and answered["type"] == "hello_reply"
    assert not [m for m in peer.received if m["type"] == "error"], peer.received


# -- requests ------------------------------------------------------------------------


def run_body(live: LiveDaemon, entry: str, *args: str, cwd: str | None = None) -> dict[str, Any]:
    return {
        "entry": entry,
        "args": list(args),
        "cwd": cwd if cwd is not None else str(live.workspace),
        "env": base_env(),
    }


def test_run_with_a_relative_cwd_is_refused_with_a_hint(
    live: LiveDaemon, client: DaemonClient
) -> None:
    with pytest.raises(DaemonError) as info:
        client.request("run", run_body(live, "x.py", cwd="relative/dir"))
    assert "absolute" in info.value.evalue and "relative/dir" in info.value.evalue
    assert info.value.hint
    live.assert_serving()


def test_run_with_a_missing_cwd_is_refused_with_a_hint(
    live: LiveDaemon, client: DaemonClient
) -> None:
    missing = str(live.workspace / "no" / "such" / "dir")
    with pytest.raises(DaemonError) as info:
        client.request("run", run_body(live, "x.py", cwd=missing))
    assert missing in info.value.evalue and info.value.hint


def collect_run(client: DaemonClient, run_id: str, timeout: float = 120) -> list[dict[str, Any]]:
    """Every message of one run, up to and including its run_finished."""
    deadline = time.monotonic() + timeout
    events: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        msg = client.recv(timeout=max(0.0, deadline - time.monotonic()))
        if msg is None:
            break
        check_incoming(msg)
        if msg["body"].get("run_id") != run_id:
            continue  # warm_changed and other broadcasts
        events.append(msg)
        if msg["type"] == "run_finished":
            return events
    raise AssertionError(f"run {run_id} did not finish within {timeout}s: {events}")


def stream_text(events: list[dict[str, Any]], stream: str) -> str:
    return b"".join(
        e["body"]["data"] for e in events if e["type"] == "stream" and e["body"]["stream"] == stream
    ).decode()


SCRIPT = """\
import sys
for i in range(3):
    print("line", i, sys.argv[1:])
print("oops", file=sys.stderr)
sys.exit(3)
"""


def test_a_run_streams_its_output_and_finishes(live: LiveDaemon, client: DaemonClient) -> None:
    (live.workspace / "lines.py").write_text(SCRIPT)
    reply = check_incoming_reply(client.request("run", run_body(live, "lines.py", "a", "b")))
    run_id = reply["body"]["run_id"]
    assert reply["type"] == "run_reply" and reply["body"]["queued"] is False
    events = collect_run(client, run_id)
    kinds = [e["type"] for e in events]
    assert kinds[0] == "run_started" and kinds[-1] == "run_finished"
    assert set(kinds[1:-1]) <= {"stream"}
    started = events[0]["body"]
    assert started["entry"] == "lines.py" and started["worker"] == 0
    assert started["worker_pid"] == live.daemon.workers[0].pid
    assert started["path_mappings"] == [], "in place, nothing to map"
    seqs = [e["body"]["seq"] for e in events if e["type"] == "stream"]
    assert seqs == sorted(set(seqs)), f"seq must increase: {seqs}"
    streams = {e["body"]["stream"] for e in events if e["type"] == "stream"}
    assert streams <= {"stdout", "stderr"}
    assert stream_text(events, "stdout") == "".join(f"line {i} ['a', 'b']\n" for i in range(3))
    assert stream_text(events, "stderr") == "oops\n"
    finished = events[-1]["body"]
    assert finished["exit_code"] == 3 and finished["reason"] == "exited"
    assert isinstance(finished["duration"], float) and finished["duration"] > 0
    assert finished["warm_lost"] is False


def test_a_run_gets_its_stdin(live: LiveDaemon, client: DaemonClient) -> None:
    (live.workspace / "echo.py").write_text(
        "import sys\ndata = sys.stdin.read()\nprint('got', repr(data))\n"
    )
    run_id = client.request("run", run_body(live, "echo.py"))["body"]["run_id"]
    reply = check_incoming_reply(
        client.request("stdin", {"run_id": run_id, "data": b"abc\n\xc3\xa9", "eof": True})
    )
    assert reply["body"]["accepted"] is True
    events = collect_run(client, run_id)
    assert stream_text(events, "stdout") == "got 'abc\\né'\n"
    assert events[-1]["body"]["exit_code"] == 0


def test_stdin_for_an_unknown_run_is_not_accepted(client: DaemonClient) -> None:
    reply = check_incoming_reply(
        client.request("stdin", {"run_id": new_id(), "data": b"x", "eof": False})
    )
    assert reply["type"] == "stdin_reply" and reply["body"]["accepted"] is False


def test_status_reply_shape(live: LiveDaemon, client: DaemonClient) -> None:
    (live.workspace / "ok.py").write_text("print('ok')\n")
    run_id = client.request("run", run_body(live, "ok.py"))["body"]["run_id"]
    assert collect_run(client, run_id)[-1]["body"]["exit_code"] == 0
    reply = check_incoming_reply(client.request("status"))
    assert reply["type"] == "status_reply"
    body = reply["body"]
    daemon = body["daemon"]
    assert daemon["pid"] == os.getpid()
    assert daemon["workspace"] == str(live.workspace)
    assert daemon["address"] == live.connection["address"]
    assert daemon["protocol_version"] == PROTOCOL_VERSION and daemon["stopping"] is False
    [worker] = body["workers"]
    assert worker["index"] == 0 and worker["pid"] == live.daemon.workers[0].pid
    assert worker["state"] == "idle" and worker["run_id"] is None
    assert worker["memory"]["rss"] > 0 and isinstance(worker["warm"], list)
    [run] = [r for r in body["runs"] if r["run_id"] == run_id]
    assert run["entry"] == "ok.py" and run["state"] == "finished"
    assert run["exit_code"] == 0 and run["reason"] == "exited" and run["worker"] == 0


def test_clients_that_left_are_forgotten(live: LiveDaemon, client: DaemonClient) -> None:
    """One identity per `hotswap run` would otherwise pile up in the daemon for good; a live
    client is sent no unasked probe while few clients come and go."""
    client.hello()

    def come_and_go(count: int) -> None:
        for i in range(count):
            with contextlib.closing(live.client(f"passing-{i}")) as passing:
                passing.hello()

    come_and_go(10)
    assert client.recv(timeout=2.0) is None, "the live client got an event unasked"
    come_and_go(IDLE_CLIENTS_KEPT + 20)
    wait_until(
        lambda: len(live.daemon.clients) <= IDLE_CLIENTS_KEPT + 1,
        "clients that left are still known",
        30,
    )
    client.hello()  # the live one is still served


def test_two_clients_get_only_their_own_run_events(live: LiveDaemon) -> None:
    (live.workspace / "mine.py").write_text("print('mine')\n")
    with (
        contextlib.closing(live.client("one")) as one,
        contextlib.closing(live.client("two")) as two,
    ):
        check_incoming_reply(two.request("hello", hello_body()))
        run_id = one.request("run", run_body(live, "mine.py"))["body"]["run_id"]
        assert stream_text(collect_run(one, run_id), "stdout") == "mine\n"
        check_incoming_reply(two.request("status"))  # anything for run_id would arrive first
        leaked = [m for m in two.backlog if m["body"].get("run_id") == run_id]
        while (msg := two.recv(timeout=0)) is not None:
            leaked += [msg] if msg["body"].get("run_id") == run_id else []
        assert leaked == []


def test_a_subscribed_client_sees_the_start_and_finish_of_every_run(live: LiveDaemon) -> None:
    (live.workspace / "theirs.py").write_text("print('theirs')\n")
    with (
        contextlib.closing(live.client("cli")) as cli,
        contextlib.closing(live.client("editor")) as editor,
    ):
        check_incoming_reply(editor.request("hello", {**hello_body(), "subscribe": True}))
        run_id = cli.request("run", run_body(live, "theirs.py"))["body"]["run_id"]
        assert collect_run(cli, run_id)[-1]["body"]["exit_code"] == 0
        seen = [m["type"] for m in collect_run(editor, run_id)]
        assert seen == ["run_started", "run_finished"], "no output: only the run's outline"


def test_run_started_names_the_runs_cwd_and_entry_kind(
    live: LiveDaemon, client: DaemonClient
) -> None:
    (live.workspace / "where.py").write_text("pass\n")
    run_id = client.request("run", run_body(live, "where.py"))["body"]["run_id"]
    started = collect_run(client, run_id)[0]["body"]
    assert started["cwd"] == str(live.workspace) and started["entry_kind"] == "path"


def test_worker_process_is_a_real_child(live: LiveDaemon) -> None:
    worker = live.daemon.workers[0]
    assert worker.pid != os.getpid() and worker.proc.poll() is None
    cmdline = Path(f"/proc/{worker.pid}/cmdline").read_bytes().split(b"\0")
    assert b"hotswap.runner" in cmdline
    assert sys.executable.encode() == cmdline[0]


def wait_for_idle_worker(client: DaemonClient, timeout: float = 60) -> None:
    """A run sent now starts at once instead of waiting for the worker to come up."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        workers = check_incoming_reply(client.request("status"))["body"]["workers"]
        if workers and all(w["state"] == "idle" for w in workers):
            return
        time.sleep(0.05)
    raise AssertionError(f"the worker did not become idle within {timeout}s")


def test_stdin_sent_with_the_run_request_reaches_the_script(
    live: LiveDaemon, client: DaemonClient
) -> None:
    # No wait between the two requests: the stdin reaches the worker right behind the exec,
    # before its main thread has begun the run.
    (live.workspace / "echo_early.py").write_text("import sys\nprint(sys.stdin.read())\n")
    wait_for_idle_worker(client)
    run_request = client.send("run", run_body(live, "echo_early.py"))
    reply = check_incoming_reply(client.recv(timeout=30) or {})
    assert reply["parent"] == run_request
    run_id = reply["body"]["run_id"]
    client.send("stdin", {"run_id": run_id, "data": b"early", "eof": True})
    events = collect_run(client, run_id)
    assert stream_text(events, "stdout") == "early\n"


def test_cancel_right_after_the_run_request_interrupts_it(
    live: LiveDaemon, client: DaemonClient
) -> None:
    (live.workspace / "sleepy.py").write_text("import time\ntime.sleep(60)\n")
    wait_for_idle_worker(client)
    # Back to back: the daemon sends exec and interrupt together, so the interrupt can reach
    # the worker before its main thread has begun the run.
    client.send("run", run_body(live, "sleepy.py"))
    client.send("cancel", {})  # every run of this client
    reply = check_incoming_reply(client.recv(timeout=30) or {})
    run_id = reply["body"]["run_id"]
    finished = collect_run(client, run_id)[-1]["body"]
    # not "killed": an interrupt lost on the way would escalate to killing the worker
    assert (finished["reason"], finished["exit_code"]) == ("cancelled", 130), finished
    assert finished["warm_lost"] is False


# -- client-chosen run ids -------------------------------------------------------------------


def test_a_client_chosen_run_id_names_the_run_and_its_events(
    live: LiveDaemon, client: DaemonClient
) -> None:
    (live.workspace / "chosen.py").write_text("print('chosen')\n")
    run_id = f"my-run_{new_id()[:8]}"
    reply = check_incoming_reply(
        client.request("run", {**run_body(live, "chosen.py"), "run_id": run_id})
    )
    assert reply["body"]["run_id"] == run_id
    events = collect_run(client, run_id)
    assert events[0]["type"] == "run_started"
    assert all(e["body"]["run_id"] == run_id for e in events)
    assert stream_text(events, "stdout") == "chosen\n"


def test_a_run_id_already_used_is_refused(live: LiveDaemon, client: DaemonClient) -> None:
    (live.workspace / "once.py").write_text("print('once')\n")
    run_id = new_id()
    client.request("run", {**run_body(live, "once.py"), "run_id": run_id})
    collect_run(client, run_id)  # finished: a recent run keeps its id
    with pytest.raises(DaemonError) as info:
        client.request("run", {**run_body(live, "once.py"), "run_id": run_id})
    assert info.value.ename == "bad_run_id" and run_id in info.value.evalue
    assert info.value.hint
    live.assert_serving()


@pytest.mark.parametrize("run_id", ["", "x" * 65, "has space", "../etc", "é"])
def test_a_malformed_run_id_is_refused(live: LiveDaemon, client: DaemonClient, run_id: str) -> None:
    with pytest.raises(DaemonError) as info:
        client.request("run", {**run_body(live, "x.py"), "run_id": run_id})
    assert info.value.ename == "bad_run_id" and "64" in info.value.hint
    live.assert_serving()


# -- the run queue: supersede, queue, cancel, finish -----------------------------------------


def send_run(client: DaemonClient, live: LiveDaemon, entry: str, **options: Any) -> str:
    run_id = new_id()
    reply = client.request("run", {**run_body(live, entry), "run_id": run_id, **options})
    assert reply["body"] == {"status": "ok", "run_id": run_id, "queued": bool(options.get("queue"))}
    return run_id


def collect_runs(
    client: DaemonClient, run_ids: set[str], timeout: float = 120
) -> list[dict[str, Any]]:
    """Every event of these runs, in arrival order, until each has finished."""
    deadline = time.monotonic() + timeout
    events: list[dict[str, Any]] = []
    waiting = set(run_ids)
    while waiting and (msg := client.recv(timeout=max(0.0, deadline - time.monotonic()))):
        check_incoming(msg)
        if msg["body"].get("run_id") in run_ids:
            events.append(msg)
            if msg["type"] == "run_finished":
                waiting.discard(msg["body"]["run_id"])
    assert not waiting, f"runs {waiting} did not finish: {events}"
    return events


def test_the_run_queue_supersedes_queues_and_cancels(
    live: LiveDaemon, client: DaemonClient
) -> None:
    (live.workspace / "long.py").write_text(
        "import time\nprint('up', flush=True)\ntime.sleep(60)\n"
    )
    (live.workspace / "quick.py").write_text("import sys\nprint('quick', sys.argv[1:])\n")
    wait_for_idle_worker(client)
    first = send_run(client, live, "long.py")
    client.backlog.extend(
        collect_until(client, lambda m: m["type"] == "stream" and m["body"]["run_id"] == first)
    )
    queued = send_run(client, live, "quick.py", queue=True)
    dropped = send_run(client, live, "quick.py", queue=True)
    replaced = send_run(client, live, "quick.py")  # interrupts `first`; queued ones stay
    last = send_run(client, live, "quick.py")  # replaces `replaced`, which has not started
    cancel = check_incoming_reply(client.request("cancel", {"run_id": dropped}))
    assert cancel["body"]["cancelled"] == [dropped]
    events = collect_runs(client, {first, queued, dropped, replaced, last})
    finished = {e["body"]["run_id"]: e["body"] for e in events if e["type"] == "run_finished"}
    started = [e["body"]["run_id"] for e in events if e["type"] == "run_started"]
    assert (finished[first]["reason"], finished[first]["exit_code"]) == ("cancelled", 130)
    assert (finished[replaced]["reason"], finished[replaced]["exit_code"]) == ("superseded", 130)
    assert finished[replaced]["message"] == f"replaced by run {last}"
    assert (finished[dropped]["reason"], finished[dropped]["exit_code"]) == ("cancelled", 130)
    assert finished[dropped]["message"] == "cancelled before it started"
    assert (finished[queued]["reason"], finished[queued]["exit_code"]) == ("exited", 0)
    assert (finished[last]["reason"], finished[last]["exit_code"]) == ("exited", 0)
    assert started == [first, queued, last], "dropped runs never start; the rest in order"
    order = [(e["type"], e["body"]["run_id"]) for e in events]
    assert order.index(("run_finished", first)) < order.index(("run_started", queued))
    assert order.index(("run_finished", queued)) < order.index(("run_started", last))


def collect_until(
    client: DaemonClient, wanted: Callable[[dict[str, Any]], bool], timeout: float = 60
) -> list[dict[str, Any]]:
    """Messages up to and including the first ``wanted`` one."""
    deadline = time.monotonic() + timeout
    seen: list[dict[str, Any]] = []
    while msg := client.recv(timeout=max(0.0, deadline - time.monotonic())):
        seen.append(check_incoming(msg))
        if wanted(msg):
            return seen
    raise AssertionError(f"no such message within {timeout}s: {seen}")


# -- the worker socket -------------------------------------------------------------------------


def test_unexpected_worker_messages_are_logged_and_ignored(
    live: LiveDaemon, client: DaemonClient, caplog: pytest.LogCaptureFixture
) -> None:
    intruder: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.DEALER)
    intruder.setsockopt(zmq.LINGER, 0)
    intruder.connect(live.daemon.workers.spec.address)
    session = Session(live.connection["key"])
    try:
        with caplog.at_level(logging.INFO, logger="hotswap.daemon"):
            # a daemon → worker type sent by a worker, and a type nobody declared
            intruder.send_multipart(session.pack(make_message("shutdown")))
            unknown = {**make_message("forget", {"keys": None}), "type": "frobnicate"}
            payload = msgpack.packb(unknown, use_bin_type=True)
            intruder.send_multipart([session.sign(payload), payload])
            wait_until_logged(caplog, "unexpected shutdown on the worker socket")
            wait_until_logged(caplog, "frobnicate")
    finally:
        intruder.close()
    live.assert_serving()
    (live.workspace / "still.py").write_text("print('still here')\n")
    run_id = send_run(client, live, "still.py")
    assert stream_text(collect_run(client, run_id), "stdout") == "still here\n"


def wait_until_logged(caplog: pytest.LogCaptureFixture, text: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not any(text in r.getMessage() for r in caplog.records):
        assert time.monotonic() < deadline, f"{text!r} never logged: {caplog.text}"
        time.sleep(0.02)
