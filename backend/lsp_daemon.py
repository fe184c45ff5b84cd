"""The language server's connection to its workspace's daemon: one thread owns the socket,
performs the server's calls in order, and hands every event the daemon sends to a callback."""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

from .client import DaemonClient, DaemonUnavailable, ensure_daemon, live_client
from .protocol import PROTOCOL_VERSION, ProtocolError
from .workspace import connection_path, pid_alive, read_connection

log = logging.getLogger("hotswap.lsp")

T = TypeVar("T")
Call = Callable[[DaemonClient], Any]
IDLE_POLL = 0.05
RECONNECT_EVERY = 1.0  # seconds between looks for a daemon when none is connected


class DaemonLink:
    """``call(fn)`` runs ``fn(client)`` on the link's thread; events go to ``on_event``.

    A daemon that stops is not restarted behind the user's back: the link looks for a new one
    every second (another client may start it) and starts one only when a call needs it.
    """

    def __init__(
        self,
        workspace: Path,
        on_event: Callable[[dict[str, Any]], None],
        on_connect: Callable[[DaemonClient], None],
    ) -> None:
        self.workspace = workspace
        self.on_event, self.on_connect = on_event, on_connect
        self.calls: queue.Queue[tuple[Call, Future[Any]]] = queue.Queue()
        self.client: DaemonClient | None = None
        self.stopped = threading.Event()
        self.looked = 0.0
        self.thread = threading.Thread(target=self._loop, name="hotswap-daemon", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join(5)

    def call(self, fn: Callable[[DaemonClient], T]) -> Future[T]:
        future: Future[T] = Future()
        self.calls.put((fn, future))
        return future

    def wait_for(
        self, client: DaemonClient, wanted: Callable[[dict[str, Any]], bool], timeout: float
    ) -> dict[str, Any]:
        """Inside a call: the first message ``wanted`` accepts; the others go to on_event."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            msg = client.recv(timeout=min(left, 1.0))
            if msg is None:
                continue
            if wanted(msg):
                return msg
            self.on_event(msg)
        raise DaemonUnavailable(f"the daemon sent nothing awaited within {timeout:g}s")

    # -- the thread -----------------------------------------------------------------------

    def _loop(self) -> None:
        while not self.stopped.is_set():
            try:
                self._step()
            except Exception:  # never let one bad message end the server's view of runs
                log.exception("the daemon link failed; reconnecting")
                self._drop()
                time.sleep(IDLE_POLL)
        self._drop()

    def _step(self) -> None:
        try:
            fn, future = self.calls.get_nowait()
        except queue.Empty:
            self._idle()
            return
        if future.set_running_or_notify_cancel():
            try:
                future.set_result(fn(self._connect(start=True)))
            except BaseException as exc:
                future.set_exception(exc)
                if isinstance(exc, (DaemonUnavailable, ProtocolError)):
                    self._drop()
        self._deliver(0)

    def _idle(self) -> None:
        due = time.monotonic() - self.looked > RECONNECT_EVERY
        if due:
            self.looked = time.monotonic()
        if self.client is None:
            if due:
                with contextlib.suppress(DaemonUnavailable):
                    self._connect(start=False)
            time.sleep(IDLE_POLL)
        elif due and not self._daemon_alive():
            log.info("the daemon stopped")
            self._drop()
        else:
            self._deliver(IDLE_POLL)

    def _deliver(self, timeout: float) -> None:
        if self.client is None:
            return
        msg = self.client.recv(timeout)
        while msg is not None:
            self.on_event(msg)
            msg = self.client.recv(0)

    def _connect(self, start: bool) -> DaemonClient:
        if self.client is not None:
            return self.client
        client = ensure_daemon(self.workspace) if start else live_client(self.workspace)
        if client is None:
            raise DaemonUnavailable(f"no hotswap daemon serves {self.workspace}")
        client.name = "hotswap-lsp"
        hello = {"protocol_version": PROTOCOL_VERSION, "client": client.name, "subscribe": True}
        hello["notices"] = True  # its runs' notices are events, not lines in their stderr
        client.daemon = client.request("hello", hello)["body"]
        self.client = client
        self.on_connect(client)
        return client

    def _daemon_alive(self) -> bool:
        assert self.client is not None
        pid = int(self.client.connection.get("pid", 0))
        if not pid_alive(pid):
            return False
        try:  # a new daemon in the same workspace: this connection leads nowhere
            return int(read_connection(connection_path(self.workspace))["pid"]) == pid
        except Exception:
            return False

    def _drop(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None
            self.on_event({"type": "disconnected", "body": {}})
