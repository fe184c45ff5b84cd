"""One run: execute an entry script as ``python ENTRY ARGS`` would, then put the process back.

Like jurigged's runpy: a fresh ``__main__`` module per run, compiled with the file's real
absolute path (so debugpy binds breakpoints and pickle finds classes).
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import gc
import importlib
import importlib.machinery
import io
import linecache
import os
import signal
import sys
import time
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..paths import HOTSWAP_DIR, PathMap
from ..protocol import INTERRUPTED_EXIT
from ..warm import active_cache
from . import auto_warm
from .errors import (
    print_uncaught,
    report_atexit_error,
)
from .isolation import Isolation, write_notes
from .main_module import main_path0, run_main
from .process_state import (
    ProcessState,
    RunExitHandlers,
    apply_environ,
    reset_warning_registries,
)

_LIBRARY_MARKERS = (f"{os.sep}site-packages{os.sep}", f"{os.sep}dist-packages{os.sep}")
_STDLIB_DIRS = tuple(
    {os.path.realpath(p) + os.sep for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
)


@dataclass
class RunRequest:
    run_id: str
    entry: str
    args: list[str]
    cwd: str
    env: dict[str, str]
    workspace: str
    path_map: PathMap | None = None
    debug: bool = False
    entry_kind: str = "path"  # or "module" (python -m), "code" (python -c)


@dataclass
class RunOutcome:
    exit_code: int
    duration: float
    error: dict[str, Any] | None = None
    interrupted: bool = False
    warm_reused: list[str] = field(default_factory=list)
    broken_imports: list[str] = field(default_factory=list)
    restart: str | None = None  # why the worker cannot serve another run


PREWARM_MODULE = "__hotswap_prewarm__"
_NEVER_PURGED = ("__main__", "__mp_main__", PREWARM_MODULE)  # runpy owns the prewarm's entry


class UserCode:
    """Decides which files and modules belong to the user (purged and reloaded every run)."""

    def __init__(self, roots: list[str]) -> None:
        self.roots = tuple(os.path.realpath(r).rstrip(os.sep) + os.sep for r in roots)

    def owns(self, filename: str | None) -> bool:
        if not filename or filename.startswith("<"):
            return False
        return _owned(self.roots, filename)

    def owns_module(self, module: types.ModuleType) -> bool:
        filename = getattr(module, "__file__", None)
        if filename:
            return self.owns(filename)
        paths = getattr(module, "__path__", None)  # namespace packages have no __file__
        return bool(paths) and all(self.owns(os.path.join(p, "x.py")) for p in list(paths or ()))

    def purge(self) -> list[str]:
        names = [
            name
            for name, module in list(sys.modules.items())
            if isinstance(module, types.ModuleType)
            and name not in _NEVER_PURGED
            and self.owns_module(module)
        ]
        for name in names:
            sys.modules.pop(name, None)  # another thread (prewarm) may have dropped it too
        return names


@functools.lru_cache(maxsize=65536)
def _owned(roots: tuple[str, ...], filename: str) -> bool:
    """Cached: thousands of library modules are checked before and after every run."""
    path = os.path.realpath(filename)
    if path.startswith(HOTSWAP_DIR + os.sep) or any(m in path for m in _LIBRARY_MARKERS):
        return False
    if path.startswith(_STDLIB_DIRS) and not path.startswith(roots):
        return False
    return path.startswith(roots)


_isolation: Isolation | None = None


def isolate_runs(workspace: str) -> Isolation:
    """Set up, once per worker, what puts the process back after each run."""
    global _isolation
    _isolation = Isolation(UserCode([workspace]).owns_module)
    return _isolation


def execute(request: RunRequest) -> RunOutcome:
    """Run the request's entry; always returns, whatever the script does."""
    started = time.perf_counter()
    isolation = _isolation or isolate_runs(request.workspace)
    entry = _entry_target(request)
    user = UserCode([request.workspace, main_path0(request.entry_kind, entry, request.cwd)])
    state = ProcessState.capture()
    _prepare(user)
    isolation.before_run(user.owns_module)
    modules_before = set(sys.modules)
    outcome = RunOutcome(exit_code=0, duration=0.0)
    try:
        auto_warm.begin_run(request.env, request.workspace)
        _enter_script_environment(request, entry)
        _run_as_python(request, entry, state, user, outcome)
    except KeyboardInterrupt as exc:  # cancelled while atexit handlers or threads ran
        print_uncaught(exc, request.path_map)
        outcome.exit_code = INTERRUPTED_EXIT
    finally:
        # The script is over: a cancel now must not break off putting the process back.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        isolation.undo_patches()
        notes = isolation.end_threads(state.threads, user.owns)
        _flush_all()
        if request.debug:
            from .debug import stop_tracing

            stop_tracing()
        state.restore()
        user.purge()
        more_notes, outcome.restart = isolation.after_run()
    write_notes(notes + more_notes)
    outcome.broken_imports = half_imported(modules_before)
    outcome.interrupted = outcome.exit_code == INTERRUPTED_EXIT
    cache = active_cache()
    outcome.warm_reused = sorted(set(cache.reused)) if cache else []
    outcome.duration = time.perf_counter() - started
    return outcome


def _run_as_python(
    request: RunRequest, entry: str, state: ProcessState, user: UserCode, outcome: RunOutcome
) -> None:
    """The script, then what python does at exit: join threads, atexit handlers, children."""
    worker_pid = os.getpid()
    exit_handlers = RunExitHandlers(user.owns)
    if request.debug:
        from .debug import trace_this_run

        trace_this_run()
    with exit_handlers:
        outcome.exit_code, outcome.error = run_main(request.entry_kind, entry, request.path_map)
        if os.getpid() != worker_pid:
            _exit_forked_child(outcome.exit_code, exit_handlers)
        _join_run_threads(state)  # the interpreter joins threads before atexit handlers
        exit_handlers.run(report_atexit_error)
    _join_run_processes()


def _exit_forked_child(code: int, exit_handlers: RunExitHandlers) -> None:
    """A child the script forked (os.fork) ends here, as python's would: never back into the
    worker's loop."""
    exit_handlers.run(report_atexit_error)
    _flush_all()
    os._exit(code)


def half_imported(before: set[str]) -> list[str]:
    """Libraries whose first import the run broke off (a cancel during ``import torch``):
    the package left ``sys.modules`` but submodules it loaded stayed, and C extensions cannot
    be initialised twice, so no later run could import it in this process."""
    broken = {
        name.split(".")[0]
        for name in set(sys.modules) - before
        if "." in name and name.split(".")[0] not in sys.modules
    }
    return sorted(broken)


def _entry_target(request: RunRequest) -> str:
    """The script path as python makes it absolute: joined to the cwd but not normalized
    (``sub/../x.py`` stays), so ``__file__`` and tracebacks read the same. A module name or
    code stays as it is."""
    if request.entry_kind != "path":
        return request.entry
    entry = os.path.expanduser(request.entry)
    return entry if os.path.isabs(entry) else f"{request.cwd}{os.sep}{entry}"


def _prepare(user: UserCode) -> None:
    if user.purge():  # modules imported outside a run (prewarm) are frozen garbage now
        collector.full_needed = True
    importlib.invalidate_caches()
    linecache.clearcache()
    reset_warning_registries()
    cache = active_cache()
    if cache is not None:
        cache.begin_run(user.owns)


def _enter_script_environment(request: RunRequest, entry: str) -> None:
    os.chdir(request.cwd)
    apply_environ(request.env)
    argv0 = {"module": "-m", "code": "-c"}.get(request.entry_kind, request.entry)
    sys.argv[:] = [argv0, *request.args]
    extra = [p for p in request.env.get("PYTHONPATH", "").split(os.pathsep) if p]
    base = [p for p in sys.path if p not in extra]  # the worker keeps no slot for a script
    path0 = main_path0(request.entry_kind, entry, request.cwd)
    sys.path[:] = [path0, *extra, *base]
    sys.stdin = _text_stream(0, "r")
    sys.stdout = _text_stream(1, "w")
    sys.stderr = _text_stream(2, "w", errors="backslashreplace")
    # In python these are sys.stdout etc. at start; what a script writes to them is its output,
    # not something for the worker's own block-buffered pipes.
    sys.__stdin__, sys.__stdout__, sys.__stderr__ = sys.stdin, sys.stdout, sys.stderr  # type: ignore[misc]


def _text_stream(fd: int, mode: str, errors: str = "strict") -> io.TextIOWrapper:
    raw = io.FileIO(fd, mode, closefd=False)
    buffered: Any = io.BufferedReader(raw) if mode == "r" else io.BufferedWriter(raw)
    return io.TextIOWrapper(buffered, encoding="utf-8", errors=errors, line_buffering=True)


def _join_run_threads(state: ProcessState) -> None:
    """As at interpreter exit: join the non-daemon threads the run started."""
    for thread in state.new_threads():
        thread.join()


def _join_run_processes() -> None:
    """As multiprocessing's own exit handler: stop daemonic children, join the others."""
    mp = sys.modules.get("multiprocessing")
    if mp is not None:
        for child in mp.active_children():
            if child.daemon:
                child.terminate()
            child.join()


def _flush_all() -> None:
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        with contextlib.suppress(Exception):
            stream.flush()  # type: ignore[union-attr]
    with contextlib.suppress(Exception):  # C-level stdio buffers (printf in extensions)
        ctypes.CDLL(None).fflush(None)


class Collector:
    """Garbage collection after each run, without rescanning what is known to live on.

    A full collection walks every object torch and transformers created (~0.2 s). After one,
    the survivors are frozen (gc.freeze); later collections only walk what runs created. When
    something frozen may have died (a warm object was dropped, user modules were purged before
    a run), or every FULL_EVERY runs, everything is unfrozen and walked again.
    """

    FULL_EVERY = 20

    def __init__(self) -> None:
        self.full_needed = True
        self.runs_since_full = 0

    @property
    def full_due(self) -> bool:
        """The next collection walks everything (~0.2 s with torch loaded)."""
        return self.full_needed or self.runs_since_full + 1 >= self.FULL_EVERY

    def collect(self, inspect: Callable[[bool], None] | None = None) -> None:
        """Collect; ``inspect(full)`` sees the survivors before they are frozen: gc lists what
        the run created (and, after a full collection, everything)."""
        full = self.full_due
        self.runs_since_full += 1
        if full:
            gc.unfreeze()
            self.full_needed, self.runs_since_full = False, 0
        gc.collect()
        if inspect is not None:
            inspect(full)
        gc.freeze()


collector = Collector()


def release_run_memory(inspect: Callable[[bool], None] | None = None) -> None:
    """Drop what the finished run left behind, so only warm objects stay; ``inspect`` then
    measures what is left, before the collector freezes it."""
    collector.collect(inspect)
    empty_cuda_cache()


def empty_cuda_cache() -> None:
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.empty_cache()
