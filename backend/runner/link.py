"""The worker's end of the daemon link: one I/O thread owns the ZeroMQ socket.

The main thread runs scripts; the I/O thread receives requests (exec, interrupt, stdin,
forget, shutdown) and sends everything queued by other threads, so an interrupt is never stuck
behind a running script.
"""

from __future__ import annotations

import os
import queue
import signal
import threading
from collections.abc import Callable
from typing import Any

import zmq

from ..protocol import ProtocolError, make_message
from ..session import Session
from .stdin_wait import reading_stdin


def runner_thread(target: Callable[[], None], name: str) -> threading.Thread:
    """A thread of the runner's own: daemonic, and hidden from the debugger (pydevd skips
    threads marked as its own), so users see only their threads."""
    thread = threading.Thread(target=target, name=name, daemon=True)
    thread.pydev_do_not_trace = True  # type: ignore[attr-defined]
    thread.is_pydev_daemon_thread = True  # type: ignore[attr-defined]
    return thread


def _move_to_stdin(fd: int) -> None:
    """Make ``fd`` the process's fd 0. A run that closed fd 0 makes the next open return 0
    itself, which must then stay open."""
    if fd != 0:
        os.dup2(fd, 0)
        os.close(fd)


class StdinFeeder:
    """A fresh pipe on fd 0 for one run; a thread writes the client's bytes into it."""

    def __init__(self) -> None:
        read_end, self._write_end = os.pipe()
        _move_to_stdin(read_end)
        self._chunks: queue.Queue[bytes | None] = queue.Queue()
        runner_thread(self._pump, "hotswap-stdin").start()

    def feed(self, data: bytes, eof: bool) -> None:
        if data:
            self._chunks.put(data)
        if eof:
            self._chunks.put(None)

    def close(self) -> None:
        self._chunks.put(None)
        _move_to_stdin(os.open(os.devnull, os.O_RDONLY))

    def _pump(self) -> None:
        try:
            while (chunk := self._chunks.get()) is not None:
                os.write(self._write_end, chunk)
        except OSError:
            pass  # the script closed its stdin; nothing more to deliver
        finally:
            os.close(self._write_end)


PARENT_WATCH_MS = 1000
STDIN_WATCH_MS = 250  # during a run: how often to look whether the script waits for stdin


class WorkerLink:
    def __init__(self, address: str, key: str, worker_id: int, daemon_pid: int = 0) -> None:
        self.daemon_pid = daemon_pid  # the parent to outlive by no more than PARENT_WATCH_MS
        self.session = Session(key)
        self.jobs: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.on_forget: Callable[[list[str] | None], None] = lambda keys: None
        self._ctx = zmq.Context()
        self._socket = self._ctx.socket(zmq.DEALER)
        self._socket.setsockopt(zmq.IDENTITY, f"w{worker_id}-{os.getpid()}".encode())
        self._socket.setsockopt(zmq.LINGER, 2000)
        self._socket.setsockopt(zmq.SNDHWM, 0)
        self._socket.connect(address)
        self._outbox: queue.Queue[dict[str, Any]] = queue.Queue()
        self._wake_r, self._wake_w = os.pipe()
        self._lock = threading.Lock()
        self._current_run: str | None = None
        self._stdin: StdinFeeder | None = None
        self._early_stdin: list[tuple[str, bytes, bool]] = []
        self._early_interrupt: str | None = None
        self._main_thread = threading.main_thread().ident
        self._main_tid = threading.main_thread().native_id
        self._waiting_stdin = False
        self._thread = runner_thread(self._loop, "hotswap-link")
        self._closing = False

    def start(self) -> None:
        self._thread.start()

    def send(self, msg_type: str, body: dict[str, Any]) -> None:
        """Queue a message for the daemon; safe from any thread."""
        self._outbox.put(make_message(msg_type, body))
        os.write(self._wake_w, b"x")

    def begin_run(self, run_id: str) -> None:
        with self._lock:
            self._stdin = StdinFeeder()
            self._current_run = run_id
            for early_run, data, eof in self._early_stdin:
                if early_run == run_id:
                    self._stdin.feed(data, eof)
            self._early_stdin.clear()
            interrupted, self._early_interrupt = self._early_interrupt == run_id, None
        if interrupted:  # cancelled before it began (we are on the main thread, as SIGINT is)
            raise KeyboardInterrupt

    def interrupt_current(self) -> None:
        """Interrupt the run in progress, if any, from any thread (a debugger's terminate)."""
        with self._lock:
            if self._current_run is not None and self._main_thread is not None:
                signal.pthread_kill(self._main_thread, signal.SIGINT)

    def notice(self, kind: str, text: str) -> bool:
        """Send the current run a notice for its header; False when no run is on."""
        with self._lock:
            run_id = self._current_run
        if run_id is None:
            return False
        self.send("exec_notice", {"run_id": run_id, "kind": kind, "text": text})
        return True

    def end_run(self) -> None:
        with self._lock:
            self._current_run = None
            if self._stdin is not None:
                self._stdin.close()
                self._stdin = None

    def close(self) -> None:
        """Let the I/O thread send what is queued and stop; only then close its socket."""
        self._closing = True
        os.write(self._wake_w, b"x")
        self._thread.join(timeout=5)
        self._socket.close(linger=2000)
        self._ctx.term()

    # -- I/O thread -----------------------------------------------------------------

    def _loop(self) -> None:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})  # cancels go to main
        poller = zmq.Poller()
        poller.register(self._socket, zmq.POLLIN)
        poller.register(self._wake_r, zmq.POLLIN)
        while True:
            ready = dict(poller.poll(STDIN_WATCH_MS if self._current_run else PARENT_WATCH_MS))
            if self.daemon_pid and os.getppid() != self.daemon_pid:
                os._exit(1)  # the daemon died (second line behind the parent-death signal)
            self._watch_stdin()
            if self._wake_r in ready:
                os.read(self._wake_r, 65536)
                self._flush_outbox()
                if self._closing:
                    return
            if self._socket in ready:
                self._receive()

    def _watch_stdin(self) -> None:
        """Tell the daemon when the script starts or stops waiting for stdin."""
        run = self._current_run
        waiting = run is not None and self._main_tid is not None and reading_stdin(self._main_tid)
        if run is not None and waiting != self._waiting_stdin:
            self._waiting_stdin = waiting
            self._socket.send_multipart(
                self.session.pack(make_message("stdin_wait", {"run_id": run, "waiting": waiting}))
            )
        elif run is None:
            self._waiting_stdin = False

    def _flush_outbox(self) -> None:
        while True:
            try:
                msg = self._outbox.get_nowait()
            except queue.Empty:
                return
            self._socket.send_multipart(self.session.pack(msg))

    def _receive(self) -> None:
        frames = self._socket.recv_multipart()
        try:
            msg = self.session.unpack(frames)
        except ProtocolError as exc:
            self.send("worker_log", {"level": "error", "message": f"rejected message: {exc}"})
            return
        body = msg["body"]
        handler = getattr(self, f"_on_{msg['type']}", None)
        if handler is None:
            self.send("worker_log", {"level": "error", "message": f"unexpected {msg['type']}"})
            return
        handler(body)

    def _on_exec(self, body: dict[str, Any]) -> None:
        self.jobs.put(body)

    def _on_interrupt(self, body: dict[str, Any]) -> None:
        with self._lock:
            if self._current_run == body["run_id"] and self._main_thread is not None:
                signal.pthread_kill(self._main_thread, signal.SIGINT)
            elif self._current_run is None:
                # exec is still queued for the main thread: a SIGINT now would be ignored
                # and the cancel would escalate to killing the worker. Deliver it at begin_run.
                self._early_interrupt = body["run_id"]

    def _on_feed_stdin(self, body: dict[str, Any]) -> None:
        with self._lock:
            if self._current_run == body["run_id"] and self._stdin is not None:
                self._stdin.feed(body["data"], body["eof"])
            elif self._current_run is None:
                # The daemon sends stdin right after exec, which waits in self.jobs until the
                # main thread begins the run: keep it for then instead of dropping it.
                self._early_stdin.append((body["run_id"], body["data"], body["eof"]))

    def _on_forget(self, body: dict[str, Any]) -> None:
        self.on_forget(body["keys"])

    def _on_shutdown(self, body: dict[str, Any]) -> None:
        self.jobs.put(None)
