"""The backend daemon: sockets, request dispatch, the run queue, and worker supervision.

It never imports torch nor runs user code, so nothing a script does can take it down. One
event loop, single-threaded, polls the client socket, the worker socket, every worker's
stdout/stderr pipe and process handle.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import zmq

from . import __version__
from .paths import map_run_into_mirror, path_mappings
from .protocol import (
    FEATURES,
    INTERRUPTED_EXIT,
    PROTOCOL_VERSION,
    REQUEST_TYPES,
    BadRunId,
    InternalError,
    NotARequest,
    ProtocolError,
    ResyncNeeded,
    UnsafePathError,
    check_run_id,
    check_version,
    error_reply,
    make_message,
    new_id,
    reply_to,
)
from .session import Session, new_key
from .supervisor import WorkerProcess, describe_death, exit_code_of, spawn_worker
from .sync import Syncer, SyncMismatch, UnsafePath, sync_policy
from .workspace import (
    Config,
    ConnectionFileError,
    connection_path,
    read_connection,
    state_dir,
    write_private_json,
)

log = logging.getLogger("hotswap.daemon")

RECENT_RUNS = 20
POLL_MS = 200


@dataclass
class Run:
    run_id: str
    client: bytes
    body: dict[str, Any]
    queued: bool
    requested: float = field(default_factory=time.time)
    state: str = "pending"  # pending → running → finished
    worker: WorkerProcess | None = None
    started: float | None = None
    seq: int = 0
    cancel_deadline: float | None = None
    stdin: list[tuple[bytes, bool]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    announced: bool = False  # run_started has been sent
    early_output: list[tuple[str, bytes]] = field(default_factory=list)

    def describe(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "entry": self.body["entry"],
            "state": self.state,
            "requested": self.requested,
            "started": self.started,
            "worker": self.worker.index if self.worker else None,
            **self.summary,
        }


class Daemon:
    def __init__(
        self,
        workspace: Path,
        config: Config,
        bind: str = "tcp://127.0.0.1",
        mirror: Path | None = None,
    ) -> None:
        self.workspace = workspace
        self.syncer = Syncer(workspace, mirror, config.max_file_bytes)
        self.config = config
        self.bind = bind
        self.key = new_key()
        self.session = Session(self.key)
        self.worker_session = Session(self.key)
        self.ctx = zmq.Context()
        self.clients: set[bytes] = set()
        self.workers: dict[int, WorkerProcess] = {}
        self.pending: deque[Run] = deque()
        self.runs: dict[str, Run] = {}
        self.recent: deque[Run] = deque(maxlen=RECENT_RUNS)
        self.started = time.time()
        self.stopping = False
        self.stop_deadline = 0.0
        self.records_saved = 0.0
        self.restart_at: dict[int, tuple[float, str, list[str]]] = {}  # when, why, warm lost
        self.fast_deaths: dict[int, int] = {}
        self.handlers: dict[str, Callable[[bytes, dict[str, Any]], None]] = {
            t: getattr(self, f"on_{t}") for t in REQUEST_TYPES
        }
        self._lock_fd: int | None = None
        self.address = ""

    # -- lifecycle ------------------------------------------------------------------

    def start(self) -> None:
        state_dir(self.workspace).mkdir(parents=True, exist_ok=True)
        self._take_lock()
        self.client_socket = self._router(self.bind)
        self.address = _endpoint(self.client_socket)
        self.worker_socket = self._router("tcp://127.0.0.1")
        self.worker_address = _endpoint(self.worker_socket)
        for index in range(self.config.workers):
            self._spawn(index)
        write_private_json(
            connection_path(self.workspace),
            {
                "address": self.address,
                "key": self.key,
                "signature_scheme": "hmac-sha256",
                "pid": os.getpid(),
                "protocol_version": PROTOCOL_VERSION,
                "workspace": str(self.workspace),
                "started": self.started,
            },
        )
        log.info("hotswap daemon %s serving %s on %s", __version__, self.workspace, self.address)

    def _take_lock(self) -> None:
        path = state_dir(self.workspace) / "daemon.lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise SystemExit(
                f"hotswap: a daemon already serves {self.workspace}; "
                "use `hotswap status` to see it or `hotswap stop` to stop it"
            ) from None
        self._lock_fd = fd

    def _router(self, bind: str) -> zmq.Socket[bytes]:
        sock: zmq.Socket[bytes] = self.ctx.socket(zmq.ROUTER)
        sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
        sock.setsockopt(zmq.SNDHWM, 0)  # never drop output for a slow client
        sock.setsockopt(zmq.LINGER, 1000)
        sock.setsockopt(zmq.MAXMSGSIZE, 4 * 64 * 1024 * 1024)
        if bind.startswith("tcp://") and bind.count(":") == 1:
            sock.bind_to_random_port(bind)
        else:
            sock.bind(bind)
        return sock

    def serve_forever(self) -> None:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._on_signal)
            signal.signal(signal.SIGINT, self._on_signal)
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
        path = connection_path(self.workspace)
        try:
            if read_connection(path)["pid"] == os.getpid():  # not a successor's file
                path.unlink()
        except (ConnectionFileError, OSError):
            pass
        self.client_socket.close(linger=500)
        self.worker_socket.close(linger=0)
        self.ctx.term()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
        log.info("daemon stopped")

    # -- the loop -------------------------------------------------------------------

    def _poll_once(self) -> None:
        poller = zmq.Poller()
        poller.register(self.client_socket, zmq.POLLIN)
        poller.register(self.worker_socket, zmq.POLLIN)
        watched: dict[int, tuple[WorkerProcess, str]] = {}
        for worker in self.workers.values():
            for fd, stream in worker.output_fds.items():
                watched[fd] = (worker, stream)
                poller.register(fd, zmq.POLLIN)
            if worker.pidfd is not None:
                watched[worker.pidfd] = (worker, "exit")
                poller.register(worker.pidfd, zmq.POLLIN)
        ready = dict(poller.poll(POLL_MS))
        for fd, (worker, what) in watched.items():
            if fd in ready and what != "exit":
                self._read_output(worker, fd, what)
        if self.worker_socket in ready:
            self._drain(self.worker_socket, self._on_worker_frames)
        if self.client_socket in ready:
            self._drain(self.client_socket, self._on_client_frames)
        for worker in list(self.workers.values()):
            if worker.proc.poll() is not None:
                self._on_worker_exit(worker)
        self._check_timers()

    def _drain(self, sock: zmq.Socket[bytes], handle: Callable[[list[bytes]], None]) -> None:
        for _ in range(1000):
            try:
                frames = sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            handle(frames)

    def _check_timers(self) -> None:
        now = time.time()
        for worker in list(self.workers.values()):
            run = worker.current_run
            if run is not None and run.cancel_deadline is not None and now > run.cancel_deadline:
                run.cancel_deadline = None
                log.warning(
                    "run %s ignored its cancel; killing worker %d", run.run_id, worker.index
                )
                worker.kill(
                    f"the run did not stop within {self.config.cancel_timeout:g}s of the cancel"
                )
        for index, (when, death, lost) in list(self.restart_at.items()):
            if now >= when and not self.stopping:
                del self.restart_at[index]
                self._respawn(index, death, lost)
        if now - self.records_saved > 1.0:
            self.syncer.save_records()
            self.records_saved = now
        if self.stopping and now > self.stop_deadline:
            for worker in self.workers.values():
                if worker.kill_requested is None:
                    log.warning("worker %d did not shut down; killing it", worker.index)
                    worker.kill("the daemon stopped")

    # -- clients --------------------------------------------------------------------

    def _on_client_frames(self, frames: list[bytes]) -> None:
        identity, payload = frames[0], frames[1:]
        try:
            msg = self.session.unpack(payload)
        except ProtocolError as exc:
            log.warning("rejected a message from a client: %s", exc)
            self.send(identity, error_reply(None, exc))
            return
        self.clients.add(identity)
        handler = self.handlers.get(msg["type"])
        if handler is None:
            refusal = NotARequest(f"{msg['type']} is not a request")
            self.send(identity, error_reply(msg["id"], refusal))
            return
        try:
            handler(identity, msg)
        except ProtocolError as exc:
            self.send(identity, error_reply(msg["id"], exc))
        except Exception as exc:  # a bug in a handler must not stop the daemon
            log.exception("handler for %s failed", msg["type"])
            error = InternalError(f"{type(exc).__name__}: {exc}", "see .hotswap/daemon.log")
            self.send(identity, error_reply(msg["id"], error))

    def send(self, identity: bytes, msg: dict[str, Any]) -> None:
        try:
            self.client_socket.send_multipart([identity, *self.session.pack(msg)])
        except zmq.ZMQError as exc:
            if exc.errno != errno.EHOSTUNREACH:
                raise
            self._client_gone(identity)

    def _client_gone(self, identity: bytes) -> None:
        """Nobody reads the output of a vanished client's runs any more: cancel them."""
        if identity not in self.clients:
            return
        self.clients.discard(identity)
        for run in [r for r in self.runs.values() if r.client == identity]:
            log.info("client of run %s is gone; cancelling it", run.run_id)
            if run.state == "pending":
                self.pending.remove(run)
                self._finish(run, INTERRUPTED_EXIT, "cancelled", "its client disconnected")
            else:
                self._interrupt(run)

    def broadcast(self, msg_type: str, body: dict[str, Any]) -> None:
        for identity in list(self.clients):
            self.send(identity, make_message(msg_type, body))

    def on_hello(self, identity: bytes, msg: dict[str, Any]) -> None:
        check_version(msg["body"]["protocol_version"])
        self.send(
            identity,
            reply_to(
                msg,
                {
                    "protocol_version": PROTOCOL_VERSION,
                    "features": FEATURES,
                    "daemon_pid": os.getpid(),
                    "workspace": str(self.workspace),
                    "version": __version__,
                    "sync_policy": sync_policy(self.config.max_file_bytes),
                },
            ),
        )

    def on_run(self, identity: bytes, msg: dict[str, Any]) -> None:
        body = msg["body"]
        if self.stopping:
            raise ProtocolError("the daemon is stopping", hint="run again to start a new daemon")
        run_id = self._new_run_id(body.get("run_id"))
        run = Run(run_id, identity, self._exec_fields(body), queued=bool(body.get("queue")))
        self.runs[run.run_id] = run
        self.send(identity, reply_to(msg, {"run_id": run.run_id, "queued": run.queued}))
        if not run.queued:
            self._supersede(run)
        self.pending.append(run)
        self._schedule()

    def _new_run_id(self, chosen: str | None) -> str:
        if chosen is None:
            return new_id()
        check_run_id(chosen)
        if chosen in self.runs or any(r.run_id == chosen for r in self.recent):
            raise BadRunId(
                f"run: run_id {chosen!r} is already used by a recent run",
                hint="choose a fresh run_id for every run (e.g. a random hex string)",
            )
        return chosen

    def _exec_fields(self, body: dict[str, Any]) -> dict[str, Any]:
        """What the worker runs: the request, with paths mapped into the mirror if there is one."""
        root = body.get("root")
        if "state" in body:
            if root is None:
                raise ProtocolError("run: a state needs the client's root")
            current = self.syncer.state_for(root).state()
            if body["state"] != current:
                raise ResyncNeeded(
                    "run: the daemon's workspace is not in the state this run names",
                    hint="sync the workspace again (the client does this by itself)",
                )
        fields = {
            "entry": body["entry"],
            "args": body["args"],
            "cwd": body["cwd"],
            "env": dict(body["env"]),
            "workspace": str(self.workspace),
            "path_map": None,
            "debug": bool(body.get("debug")),
            "wait": body.get("wait", True),
            "debug_timeout": self.config.debug_timeout,
            "just_my_code": body.get("just_my_code", True),
        }
        path_map = self.syncer.path_map(root) if root else None
        if path_map is not None:
            fields = map_run_into_mirror(fields, path_map)
        _check_run_body(fields)
        return fields

    def on_manifest(self, identity: bytes, msg: dict[str, Any]) -> None:
        self.send(identity, reply_to(msg, self.syncer.manifest(msg["body"]["root"])))

    def on_sync(self, identity: bytes, msg: dict[str, Any]) -> None:
        body = msg["body"]
        started = time.perf_counter()
        try:
            result = self.syncer.receive(body)
        except SyncMismatch as exc:
            self.syncer.abandon(body["transaction"])
            raise ResyncNeeded(
                str(exc), hint="send the full manifest (the client does this)"
            ) from None
        except UnsafePath as exc:
            self.syncer.abandon(body["transaction"])
            raise UnsafePathError(f"sync rejected, nothing was changed: {exc}") from None
        elapsed_ms = (time.perf_counter() - started) * 1e3
        if result is None:
            self._progress(identity, body)
            result = {"state": body["base"], "mode": "", "applied": False}
        else:
            result["applied"] = True
        self.send(identity, reply_to(msg, {**result, "elapsed_ms": elapsed_ms}))

    def _progress(self, identity: bytes, body: dict[str, Any]) -> None:
        staged = self.syncer.staged(body["transaction"])
        self.send(
            identity,
            make_message(
                "sync_progress",
                {
                    "transaction": body["transaction"],
                    "files_done": len(staged["files"]),
                    "files_total": body.get("total_files", len(staged["files"])),
                    "bytes_done": sum(len(f.get("data") or b"") for f in staged["files"]),
                    "bytes_total": body.get("total_bytes", 0),
                },
            ),
        )

    def _supersede(self, newer: Run) -> None:
        """A new run replaces what runs now and any waiting run that was not queued."""
        for run in [r for r in self.pending if not r.queued]:
            self.pending.remove(run)
            self._finish(run, INTERRUPTED_EXIT, "superseded", f"replaced by run {newer.run_id}")
        for worker in self.workers.values():
            if worker.current_run is not None:
                self._interrupt(worker.current_run)

    def on_cancel(self, identity: bytes, msg: dict[str, Any]) -> None:
        run_id = msg["body"].get("run_id")
        targets = [
            r
            for r in self.runs.values()
            if r.state != "finished" and (r.run_id == run_id if run_id else r.client == identity)
        ]
        for run in targets:
            if run.state == "pending":
                self.pending.remove(run)
                self._finish(run, INTERRUPTED_EXIT, "cancelled", "cancelled before it started")
            else:
                self._interrupt(run)
        self.send(identity, reply_to(msg, {"cancelled": [r.run_id for r in targets]}))

    def _interrupt(self, run: Run) -> None:
        if run.worker is None or run.cancel_deadline is not None:
            return
        run.cancel_deadline = time.time() + self.config.cancel_timeout
        self._send_worker(run.worker, "interrupt", {"run_id": run.run_id})

    def on_stdin(self, identity: bytes, msg: dict[str, Any]) -> None:
        body = msg["body"]
        run = self.runs.get(body["run_id"])
        accepted = run is not None and run.state != "finished"
        if run is not None and accepted:
            chunk = (body["data"], bool(body.get("eof")))
            if run.state == "running" and run.worker is not None:
                self._feed(run, *chunk)
            else:
                run.stdin.append(chunk)
        self.send(identity, reply_to(msg, {"accepted": accepted}))

    def _feed(self, run: Run, data: bytes, eof: bool) -> None:
        assert run.worker is not None
        self._send_worker(
            run.worker, "feed_stdin", {"run_id": run.run_id, "data": data, "eof": eof}
        )

    def on_status(self, identity: bytes, msg: dict[str, Any]) -> None:
        self.send(identity, reply_to(msg, self.status()))

    def status(self) -> dict[str, Any]:
        active = [r for r in self.runs.values() if r.state != "finished"]
        return {
            "daemon": {
                "pid": os.getpid(),
                "workspace": str(self.workspace),
                "address": self.address,
                "started": self.started,
                "version": __version__,
                "protocol_version": PROTOCOL_VERSION,
                "stopping": self.stopping,
            },
            "workers": [self._describe_worker(w) for w in self.workers.values()],
            "runs": [r.describe() for r in (*self.recent, *active)],
        }

    def _describe_worker(self, worker: WorkerProcess) -> dict[str, Any]:
        if not worker.ready:
            state = "starting"
        elif worker.current_run is not None:
            state = "running"
        else:
            state = "idle"
        return {
            "index": worker.index,
            "pid": worker.pid,
            "state": state,
            "started": worker.started,
            "warm": worker.warm,
            "memory": {"rss": worker.rss_bytes(), **worker.memory},
            "run_id": worker.current_run.run_id if worker.current_run else None,
            "debug": worker.debug,
        }

    def on_stop(self, identity: bytes, msg: dict[str, Any]) -> None:
        self.send(identity, reply_to(msg, {"stopping": True}))
        self.begin_stop()

    def on_release(self, identity: bytes, msg: dict[str, Any]) -> None:
        keys = msg["body"].get("keys")
        released = sorted(
            {
                entry["key"]
                for worker in self.workers.values()
                for entry in worker.warm
                if keys is None or entry["key"] in keys
            }
        )
        for worker in self.workers.values():
            if worker.ready:
                self._send_worker(worker, "forget", {"keys": keys})
        self.send(identity, reply_to(msg, {"released": released}))

    def begin_stop(self) -> None:
        if self.stopping:
            return
        self.stopping = True
        self.stop_deadline = time.time() + self.config.cancel_timeout + 5.0
        while self.pending:
            self._finish(
                self.pending.popleft(), INTERRUPTED_EXIT, "cancelled", "the daemon stopped"
            )
        for worker in self.workers.values():
            if worker.current_run is not None:
                self._interrupt(worker.current_run)
            if worker.ready:
                self._send_worker(worker, "shutdown", {})
            else:
                worker.kill("the daemon stopped")
            worker.pending_shutdown = True
        self.restart_at.clear()

    # -- runs -----------------------------------------------------------------------

    def _schedule(self) -> None:
        for worker in self.workers.values():
            if not self.pending:
                return
            busy = worker.current_run is not None or worker.pending_shutdown
            if worker.ready and not busy and not worker.pending_restart:
                run = self.pending.popleft()
                run.state, run.worker, run.started = "running", worker, time.time()
                worker.current_run = run
                body = run.body
                self._send_worker(
                    worker,
                    "exec",
                    {"run_id": run.run_id, **body},
                )
                for chunk in run.stdin:
                    self._feed(run, *chunk)
                run.stdin.clear()

    def _finish(
        self,
        run: Run,
        exit_code: int,
        reason: str,
        message: str = "",
        error: dict[str, Any] | None = None,
        warm_reused: list[str] | None = None,
        warm_lost: bool = False,
    ) -> None:
        self._flush_early_output(run)  # a worker that died before exec_started still said things
        run.state = "finished"
        duration = time.time() - (run.started or run.requested)
        run.summary = {"exit_code": exit_code, "reason": reason, "duration": round(duration, 4)}
        if run.worker is not None and run.worker.current_run is run:
            run.worker.current_run = None
        self.runs.pop(run.run_id, None)
        self.recent.append(run)
        self.send(
            run.client,
            make_message(
                "run_finished",
                {
                    "run_id": run.run_id,
                    "exit_code": exit_code,
                    "duration": duration,
                    "reason": reason,
                    "error": error,
                    "message": message,
                    "warm_reused": warm_reused or [],
                    "warm_lost": warm_lost,
                },
            ),
        )
        log.info("run %s %s: exit %d %s", run.run_id, reason, exit_code, message)

    # -- workers --------------------------------------------------------------------

    def _spawn(self, index: int) -> WorkerProcess:
        worker = spawn_worker(
            index,
            self.worker_address,
            self.key,
            self.workspace,
            self.config.prewarm,
            log,
            debug_at_start=self.config.debug_listen_at_start,
        )
        self.workers[index] = worker
        return worker

    def _send_worker(self, worker: WorkerProcess, msg_type: str, body: dict[str, Any]) -> None:
        if worker.identity is None:
            return
        try:
            self.worker_socket.send_multipart(
                [worker.identity, *self.worker_session.pack(make_message(msg_type, body))]
            )
        except zmq.ZMQError as exc:
            log.warning("cannot reach worker %d: %s", worker.index, exc)

    def _on_worker_frames(self, frames: list[bytes]) -> None:
        identity = frames[0]
        try:
            msg = self.worker_session.unpack(frames[1:])
        except ProtocolError as exc:
            log.error("rejected a message on the worker socket: %s", exc)
            return
        body = msg["body"]
        if msg["type"] == "worker_ready":
            self._on_worker_ready(identity, body)
            return
        worker = next((w for w in self.workers.values() if w.identity == identity), None)
        if worker is None:
            return  # a worker that has been replaced
        handler = getattr(self, f"_on_{msg['type']}", None)
        if handler is None:
            log.error("unexpected %s from worker %d", msg["type"], worker.index)
            return
        handler(worker, body)

    def _on_worker_ready(self, identity: bytes, body: dict[str, Any]) -> None:
        worker = next((w for w in self.workers.values() if w.pid == body["pid"]), None)
        if worker is None:
            return
        worker.identity, worker.ready = identity, True
        log.info("worker %d ready (pid %d, Python %s)", worker.index, worker.pid, body["python"])
        self._schedule()

    def _on_exec_started(self, worker: WorkerProcess, body: dict[str, Any]) -> None:
        run = worker.current_run
        if run is None or run.run_id != body["run_id"]:
            return
        self.send(
            run.client,
            make_message(
                "run_started",
                {
                    "run_id": run.run_id,
                    "entry": run.body["entry"],
                    "worker": worker.index,
                    "worker_pid": worker.pid,
                    "warm_keys": body["warm_keys"],
                    "path_mappings": _mappings(run),
                },
            ),
        )
        self._flush_early_output(run)

    def _flush_early_output(self, run: Run) -> None:
        """Send output that reached the daemon before exec_started, now that run_started is out."""
        run.announced = True
        for stream, data in run.early_output:
            self._send_stream(run, stream, data)
        run.early_output.clear()

    def _on_exec_done(self, worker: WorkerProcess, body: dict[str, Any]) -> None:
        self._drain_output(worker)
        run = worker.current_run
        if run is None or run.run_id != body["run_id"]:
            return
        cancelled = run.cancel_deadline is not None and body["interrupted"]
        reason = "cancelled" if cancelled else "exited"
        restart = body.get("restart")
        if restart:  # the worker exits after this; its exit is a planned restart
            worker.kill_requested = restart
            worker.pending_restart = True
        lost = [entry["key"] for entry in worker.warm] if restart else []
        message = (
            restart + (f"; warm objects lost: {', '.join(lost)}" if lost else "") if restart else ""
        )
        self._finish(
            run,
            body["exit_code"],
            reason,
            message,
            error=body["error"],
            warm_reused=body["warm_reused"],
            warm_lost=bool(lost),
        )
        self._schedule()

    def _on_warm_report(self, worker: WorkerProcess, body: dict[str, Any]) -> None:
        changed = body["warm"] != worker.warm
        worker.warm, worker.memory = body["warm"], body["memory"]
        if changed:
            self.broadcast("warm_changed", {"worker": worker.index, "warm": worker.warm})

    def _on_debug_listening(self, worker: WorkerProcess, body: dict[str, Any]) -> None:
        worker.debug = {"host": body["host"], "port": body["port"]}
        run = worker.current_run
        if run is not None and run.run_id != body["run_id"]:
            run = None
        event = {
            "run_id": run.run_id if run else None,
            "worker": worker.index,
            **worker.debug,
            "path_mappings": _mappings(run) if run else [],
            "just_my_code": run.body["just_my_code"] if run else True,
            "wait": run.body["wait"] if run else False,
            "attached": bool(body.get("attached")),
        }
        if run is None:
            self.broadcast("debug_ready", event)
        else:
            self.send(run.client, make_message("debug_ready", event))

    def _on_worker_log(self, worker: WorkerProcess, body: dict[str, Any]) -> None:
        log.log(
            logging.getLevelName(body["level"].upper()),
            "worker %d: %s",
            worker.index,
            body["message"],
        )

    def _read_output(self, worker: WorkerProcess, fd: int, stream: str) -> None:
        data = worker.read_available(fd)
        if data:
            self._emit_output(worker, stream, data)

    def _drain_output(self, worker: WorkerProcess) -> None:
        for fd, stream in worker.output_fds.items():
            while data := worker.read_available(fd):
                self._emit_output(worker, stream, data)

    def _emit_output(self, worker: WorkerProcess, stream: str, data: bytes) -> None:
        run = worker.current_run
        if run is None:
            log.info(
                "worker %d %s: %s", worker.index, stream, data.decode(errors="replace").rstrip()
            )
            return
        if not run.announced:
            # exec_started comes over the worker's socket, its output over pipes: the script
            # may print before the daemon hears that it started. Keep run_started first.
            run.early_output.append((stream, data))
            return
        self._send_stream(run, stream, data)

    def _send_stream(self, run: Run, stream: str, data: bytes) -> None:
        run.seq += 1
        self.send(
            run.client,
            make_message(
                "stream",
                {
                    "run_id": run.run_id,
                    "stream": stream,
                    "seq": run.seq,
                    "data": data,
                },
            ),
        )

    def _on_worker_exit(self, worker: WorkerProcess) -> None:
        returncode = worker.proc.wait()
        self._drain_output(worker)
        worker.close()
        del self.workers[worker.index]
        lost = [entry["key"] for entry in worker.warm]
        death = worker.kill_requested or describe_death(returncode)
        stopped = worker.pending_shutdown and self.stopping
        level = logging.INFO if stopped else logging.WARNING
        log.log(level, "worker %d (pid %d) ended: %s", worker.index, worker.pid, death)
        if stopped:
            if worker.current_run is not None:
                self._finish(
                    worker.current_run, INTERRUPTED_EXIT, "cancelled", "the daemon stopped"
                )
            return
        restart = f"{death}; restarted the worker" + (
            f"; warm objects lost: {', '.join(lost)}" if lost else ""
        )
        run = worker.current_run
        if run is not None:
            if worker.kill_requested:
                self._finish(run, INTERRUPTED_EXIT, "killed", restart, warm_lost=bool(lost))
            else:
                self._finish(
                    run, exit_code_of(returncode), "crashed", restart, warm_lost=bool(lost)
                )
        self._restart_later(worker, death, lost, during_run=run is not None)

    def _restart_later(
        self, worker: WorkerProcess, death: str, lost: list[str], during_run: bool
    ) -> None:
        """Restart at once; back off only for a worker that keeps dying on its own at start
        (a broken prewarm), not for scripts that crash it."""
        fast = time.time() - worker.started < 2.0 and not worker.kill_requested and not during_run
        count = self.fast_deaths.get(worker.index, 0) + 1 if fast else 0
        self.fast_deaths[worker.index] = count
        delay = 0.0 if count == 0 else min(30.0, 0.25 * 2**count)
        if count:
            log.error(
                "worker %d died %d time(s) right after start; retrying in %.1fs "
                "(check [tool.hotswap] prewarm)",
                worker.index,
                count,
                delay,
            )
        if delay == 0.0:
            self._respawn(worker.index, death, lost)
        else:
            self.restart_at[worker.index] = (time.time() + delay, death, lost)

    def _respawn(self, index: int, death: str, lost: list[str]) -> None:
        """Start a worker in place of a dead one and tell every client, delayed or not."""
        new = self._spawn(index)
        self.broadcast(
            "worker_restarted",
            {"worker": index, "pid": new.pid, "reason": death, "warm_lost": lost},
        )


def _mappings(run: Run) -> list[dict[str, str]]:
    path_map = run.body["path_map"]
    return path_mappings((path_map[0], path_map[1]) if path_map else None)


def _check_run_body(body: dict[str, Any]) -> None:
    if not body["entry"]:
        raise ProtocolError("run: entry is empty", hint="name the script to run")
    if not all(isinstance(a, str) for a in body["args"]):
        raise ProtocolError("run: args must be strings")
    env = body["env"]
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
        raise ProtocolError("run: env must map strings to strings")
    if not os.path.isabs(body["cwd"]):
        raise ProtocolError(
            f"run: cwd must be an absolute path, got {body['cwd']!r}",
            hint="send the client's os.getcwd(): the daemon's own cwd means nothing to the run",
        )
    if not os.path.isdir(body["cwd"]):
        raise ProtocolError(
            f"run: the working directory {body['cwd']} does not exist on the daemon's host",
            hint="run from a folder that exists where the daemon runs",
        )


def _endpoint(sock: zmq.Socket[bytes]) -> str:
    return str(sock.getsockopt_string(zmq.LAST_ENDPOINT))
