"""What a run leaves running in the worker: its daemon threads (stopped, as python's exit would
end them) and its child processes (reaped; killed when the worker stops)."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable

THREAD_GRACE = 1.0  # seconds a stopped thread gets to leave a blocking call


def _thread_code_file(thread: threading.Thread) -> str:
    """The file of the code a thread runs: its target, or its class's overridden run()."""
    target = getattr(thread, "_target", None) or getattr(thread, "function", None)  # Timer
    target = getattr(target, "func", target)  # functools.partial
    func = getattr(target, "__func__", target)
    code = getattr(func, "__code__", None)
    if code is None:
        code = getattr(type(thread).run, "__code__", None)
    return code.co_filename if code is not None else ""


def stop_daemon_threads(
    known: Iterable[threading.Thread], is_user_file: Callable[[str], bool]
) -> list[str]:
    """Raise SystemExit in the daemon threads the run started to run its own code; return the
    names of those still alive after the grace period (blocked in C, or catching it)."""
    before = set(known)
    ours = [
        t
        for t in threading.enumerate()
        if t not in before
        and t.daemon
        and t.ident is not None
        and not getattr(t, "is_pydev_daemon_thread", False)
        and is_user_file(_thread_code_file(t))
    ]
    for thread in ours:
        _raise_in(thread, SystemExit)
    deadline = time.monotonic() + THREAD_GRACE
    for thread in ours:
        thread.join(max(0.0, deadline - time.monotonic()))
    return [t.name for t in ours if t.is_alive()]


def _raise_in(thread: threading.Thread, exc_type: type[BaseException]) -> None:
    ident = ctypes.c_ulong(thread.ident or 0)
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ident, ctypes.py_object(exc_type))


PR_SET_CHILD_SUBREAPER = 36


def adopt_orphans() -> None:
    """Linux: processes a run's children leave behind (a daemonized grandchild) become the
    worker's children rather than init's, so they are reaped and ended with the worker."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def children() -> list[int]:
    """Live child processes of this process (from /proc; empty where there is none)."""
    me, found = os.getpid(), []
    with contextlib.suppress(OSError):
        for entry in os.scandir("/proc"):
            if entry.name.isdigit() and _parent_of(entry.name) == me:
                found.append(int(entry.name))
    return found


def _parent_of(pid: str) -> int:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return -1
    return int(stat[stat.rindex(b")") + 2 :].split()[1])  # the name may hold spaces


def reap_children() -> None:
    """Collect the exit status of every child that has ended, so none stays a zombie."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def kill_children(timeout: float = 2.0) -> None:
    """When the worker stops: end the processes runs left behind (SIGTERM, then SIGKILL)."""
    pids = children()
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            reap_children()
            pids = [p for p in pids if _alive(p)]
            if not pids:
                return
            time.sleep(0.02)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return _parent_of(str(pid)) == os.getpid()
