"""The backend daemon: its two sockets, the poll loop, and the client-request dispatch table.

It never imports torch nor runs user code, so nothing a script does can take it down. Runs live
in runs.py, workers in workers.py, sync in sync_daemon.py; this module wires them together.
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import zmq

from . import __version__
from .client_watch import ClientWatch, warm_probe
from .daemon_info import hello_body, status_daemon
from .daemon_log import LogRotation, RejectLog
from .daemon_sockets import client_router, default_binds, worker_router
from .daemon_trace import install_trace
from .orphans import end_orphans
from .protocol import (
    REQUEST_TYPES,
    InternalError,
    NotARequest,
    ProtocolError,
    check_version,
    error_reply,
    make_message,
    reply_to,
)
from .run_history import RunHistory
from .run_request import Run, exec_body
from .runs import RunQueue
from .session import Session, new_key
from .sync_daemon import Syncer
from .worker_process import WorkerSpec
from .workers import Workers
from .workspace import (
    Config,
    remove_connection,
    state_dir,
    take_daemon_lock,
    write_connection,
)

log = logging.getLogger("hotswap.daemon")

POLL_MS = 200
Handler = Callable[[bytes, dict[str, Any]], None]


class Daemon:
    """One workspace's daemon: ``start()``, then ``serve_forever()`` until a stop."""

    def __init__(
        self,
        workspace: Path,
        config: Config,
        bind: str | None = None,  # None: a private unix socket (daemon_sockets.default_binds)
        mirror: Path | None = None,
        curve: tuple[dict[str, str], list[str]] | None = None,  # key pair, allowed clients
    ) -> None:
        self.workspace, self.curve, self.authenticator = workspace, curve, None
        self.syncer = Syncer(workspace, mirror, config.max_file_bytes)
        self.config, self.bind = config, bind
        self.key = new_key()
        self.session, self.worker_session = Session(self.key), Session(self.key)
        self.ctx = zmq.Context()
        self.clients: set[bytes] = set()
        self.rejects, self.log_rotation = RejectLog(log), LogRotation(workspace)
        self.history = RunHistory(state_dir(workspace) / "runs", config.keep_runs)
        self.runs = RunQueue(self.send, config.cancel_timeout, self.history, states=self.syncer)
        spec = WorkerSpec.of(config, workspace, self.key, self.send_worker)
        self.workers = Workers(spec, self.runs, self.send, self.broadcast, config.workers)
        self.started = time.time()
        self.stopping, self.stop_deadline, self.records_saved = False, 0.0, 0.0
        self.handlers: dict[str, Handler] = {t: getattr(self, f"on_{t}") for t in REQUEST_TYPES}
        self._lock_fd: int | None = None
        self.address = ""

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        state_dir(self.workspace).mkdir(parents=True, exist_ok=True)
        self._lock_fd = take_daemon_lock(self.workspace)
        end_orphans(self.workspace)  # a killed predecessor's workers must not keep the GPU
        client_bind, worker_bind = default_binds(self.workspace, log)
        self.client_socket, self.address, self.authenticator, extra = client_router(
            self.ctx, self.bind or client_bind, self.curve
        )
        self.watch = ClientWatch(self.client_socket, warm_probe(self.send, self.workers))
        self.worker_socket, self.workers.spec.address = worker_router(self.ctx, worker_bind)
        self.workers.start()
        write_connection(self.workspace, self.address, self.key, self.started, extra)
        log.info("hotswap daemon %s serving %s on %s", __version__, self.workspace, self.address)

    def serve_forever(self) -> None:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._on_signal)
            signal.signal(signal.SIGINT, self._on_signal)
            install_trace(log)
        try:
            while not (self.stopping and not self.workers):
                self._poll_once()
        finally:
            self._close()

    def _on_signal(self, signum: int, frame: object) -> None:
        log.info("received %s; stopping", signal.Signals(signum).name)
        self.begin_stop()

    def _close(self) -> None:
        self.syncer.save_records()
        self.history.save_all()
        remove_connection(self.workspace)
        self.watch.close()
        self.client_socket.close(linger=500)
        self.worker_socket.close(linger=0)
        if self.authenticator is not None:
            self.authenticator.stop()
        self.ctx.term()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
        log.info("daemon stopped")

    def begin_stop(self) -> None:
        if self.stopping:
            return
        self.stopping = True
        self.stop_deadline = time.time() + self.config.cancel_timeout + 5.0
        self.runs.cancel_all("the daemon stopped")
        self.workers.stop()

    # -- the loop -------------------------------------------------------------------------

    def _poll_once(self) -> None:
        poller = zmq.Poller()
        poller.register(self.client_socket, zmq.POLLIN)
        poller.register(self.worker_socket, zmq.POLLIN)
        poller.register(self.watch.monitor, zmq.POLLIN)
        watched = self.workers.output_fds()
        for fd in watched:
            poller.register(fd, zmq.POLLIN)
        ready = dict(poller.poll(POLL_MS))
        for fd, (worker, stream) in watched.items():
            if fd in ready and stream != "exit":
                self.workers.read_output(worker, fd, stream)
        if self.worker_socket in ready:
            self._drain(self.worker_socket, self._on_worker_frames)
        if self.client_socket in ready:
            self._drain(self.client_socket, self._on_client_frames)
        now = time.time()
        self.watch.tick(now, [run.client for run in self.runs.active()])
        self.workers.reap()
        self.workers.check_timers(now, self.config.cancel_timeout, self.stop_deadline)
        self.log_rotation.check(now)
        if now - self.records_saved > 1.0:
            self.syncer.save_records()
            self.history.save_due()
            self.records_saved = now

    def _drain(self, sock: zmq.Socket[bytes], handle: Callable[[list[bytes]], None]) -> None:
        for _ in range(1000):
            try:
                frames = sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            handle(frames)

    # -- sending and receiving ------------------------------------------------------------

    def send(self, identity: bytes, msg: dict[str, Any]) -> None:
        try:
            self.client_socket.send_multipart([identity, *self.session.pack(msg)])
        except zmq.ZMQError as exc:
            if exc.errno != errno.EHOSTUNREACH:
                raise
            self._client_gone(identity)

    def broadcast(self, msg_type: str, body: dict[str, Any]) -> None:
        for identity in list(self.clients):
            self.send(identity, make_message(msg_type, body))

    def send_worker(self, identity: bytes, msg: dict[str, Any]) -> None:
        try:
            self.worker_socket.send_multipart([identity, *self.worker_session.pack(msg)])
        except zmq.ZMQError as exc:
            log.warning("cannot reach worker %r: %s", identity, exc)

    def _client_gone(self, identity: bytes) -> None:
        """Its runs go on (output kept for `logs`), but not those waiting for its stdin."""
        self.runs.greet(identity, {})
        if identity in self.clients:
            self.clients.discard(identity)
            for run in self.runs.client_gone(identity):
                log.info("client of run %s is gone; its output is kept", run.run_id)

    def _on_worker_frames(self, frames: list[bytes]) -> None:
        try:
            msg = self.worker_session.unpack(frames[1:])
        except ProtocolError as exc:
            log.error("rejected a message on the worker socket: %s", exc)
            return
        self.workers.on_message(frames[0], msg)

    # -- client requests ------------------------------------------------------------------

    def _on_client_frames(self, frames: list[bytes]) -> None:
        identity, payload = frames[0], frames[1:]
        try:
            msg = self.session.unpack(payload)
        except ProtocolError as exc:
            self.rejects.rejected(exc)
            self.send(identity, error_reply(None, exc))
            return
        self.clients.add(identity)
        self.watch.heard(identity)
        try:
            handler = self.handlers.get(msg["type"])
            if handler is None:
                raise NotARequest(f"{msg['type']} is not a request")
            handler(identity, msg)
        except ProtocolError as exc:
            self.send(identity, error_reply(msg["id"], exc))
        except Exception as exc:  # a bug in a handler must not stop the daemon
            log.exception("handler for %s failed", msg["type"])
            error = InternalError(f"{type(exc).__name__}: {exc}", "see .hotswap/daemon.log")
            self.send(identity, error_reply(msg["id"], error))

    def on_hello(self, identity: bytes, msg: dict[str, Any]) -> None:
        check_version(msg["body"]["protocol_version"])
        self.runs.greet(identity, msg["body"])
        self.send(identity, reply_to(msg, hello_body(self.workspace, self.config.max_file_bytes)))

    def on_run(self, identity: bytes, msg: dict[str, Any]) -> None:
        body = msg["body"]
        if self.stopping:
            raise ProtocolError("the daemon is stopping", hint="run again to start a new daemon")
        run_id = self.runs.new_run_id(body.get("run_id"))
        path_map = self.syncer.check_run(body.get("root"), body.get("state"), run_id)
        fields = exec_body(body, str(self.workspace), self.config.debug_timeout, path_map)
        run = Run(run_id, identity, fields, queued=bool(body.get("queue")))
        root = body.get("root")
        self.history.note_files(run_id, dict(self.syncer.state_for(root).files) if root else None)
        self.send(identity, reply_to(msg, {"run_id": run.run_id, "queued": run.queued}))
        self.runs.submit(run)
        self.workers.schedule()

    def on_manifest(self, identity: bytes, msg: dict[str, Any]) -> None:
        self.send(identity, reply_to(msg, self.syncer.manifest(msg["body"]["root"])))

    def on_sync(self, identity: bytes, msg: dict[str, Any]) -> None:
        body = msg["body"]
        started = time.perf_counter()
        result = self.syncer.sync(body)
        elapsed_ms = (time.perf_counter() - started) * 1e3
        if result is None:
            self.send(identity, make_message("sync_progress", self.syncer.progress(body)))
            result = {"state": body["base"], "mode": "", "applied": False}
        self.send(identity, reply_to(msg, {**result, "elapsed_ms": elapsed_ms}))

    def on_cancel(self, identity: bytes, msg: dict[str, Any]) -> None:
        cancelled = self.runs.cancel_request(identity, msg["body"].get("run_id"))
        self.send(identity, reply_to(msg, {"cancelled": cancelled}))

    def on_stdin(self, identity: bytes, msg: dict[str, Any]) -> None:
        body = msg["body"]
        accepted = self.runs.stdin(body["run_id"], body["data"], bool(body.get("eof")))
        self.send(identity, reply_to(msg, {"accepted": accepted}))

    def on_status(self, identity: bytes, msg: dict[str, Any]) -> None:
        daemon = status_daemon(self.workspace, self.address, self.started, self.stopping)
        workers, runs = self.workers.describe(), self.runs.describe()
        self.send(identity, reply_to(msg, {"daemon": daemon, "workers": workers, "runs": runs}))

    def on_stop(self, identity: bytes, msg: dict[str, Any]) -> None:
        self.send(identity, reply_to(msg, {"stopping": True}))
        self.begin_stop()

    def on_logs(self, identity: bytes, msg: dict[str, Any]) -> None:
        run_id, follow = msg["body"].get("run_id"), bool(msg["body"].get("follow"))
        self.send(identity, reply_to(msg, self.runs.read_log(identity, run_id, follow)))

    def on_release(self, identity: bytes, msg: dict[str, Any]) -> None:
        released = self.workers.release(msg["body"].get("keys"))
        self.send(identity, reply_to(msg, {"released": released}))

    def on_runs(self, identity: bytes, msg: dict[str, Any]) -> None:
        self.send(identity, reply_to(msg, self.history.runs_reply(msg["body"])))

    def on_metrics(self, identity: bytes, msg: dict[str, Any]) -> None:
        self.send(identity, reply_to(msg, self.history.metrics_reply(msg["body"])))
