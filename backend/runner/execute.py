"""One run: execute an entry script as ``python ENTRY ARGS`` would, then put the process back.

Like jurigged's runpy: a fresh ``__main__`` module per run, compiled with the file's real
absolute path (so debugpy binds breakpoints and pickle finds classes).
"""

from __future__ import annotations

import builtins
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
import traceback
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..sync import map_prefix
from ..warm import active_cache
from . import auto_warm
from .process_state import (
    ProcessState,
    RunExitHandlers,
    apply_environ,
    reset_torch_rng,
    reset_warning_registries,
)

HOTSWAP_DIR = str(Path(__file__).resolve().parent.parent)
_LIBRARY_MARKERS = (f"{os.sep}site-packages{os.sep}", f"{os.sep}dist-packages{os.sep}")
_STDLIB_DIRS = tuple(
    {os.path.realpath(p) + os.sep for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
)
KEYBOARD_INTERRUPT_EXIT = 128 + signal.SIGINT


PathMap = tuple[str, str]  # (daemon's mirror root, client's workspace root)


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


@dataclass
class RunOutcome:
    exit_code: int
    duration: float
    error: dict[str, Any] | None = None
    interrupted: bool = False
    warm_reused: list[str] = field(default_factory=list)
    broken_imports: list[str] = field(default_factory=list)


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


def execute(request: RunRequest) -> RunOutcome:
    """Run the request's entry; always returns, whatever the script does."""
    started = time.perf_counter()
    entry = _absolute_entry(request.cwd, os.path.expanduser(request.entry))
    user = UserCode([request.workspace, os.path.dirname(os.path.realpath(entry))])
    state = ProcessState.capture()
    _prepare(user)
    modules_before = set(sys.modules)
    exit_handlers = RunExitHandlers(user.owns)
    outcome = RunOutcome(exit_code=0, duration=0.0)
    try:
        auto_warm.begin_run(request.env, request.workspace)
        _enter_script_environment(request, entry)
        if request.debug:
            from .debug import trace_this_run

            trace_this_run()
        with exit_handlers:
            outcome.exit_code, outcome.error = run_main(entry, request.path_map)
            _join_run_threads(state)  # the interpreter joins threads before atexit handlers
            exit_handlers.run(_report_atexit_error)
        _join_run_processes()
    except KeyboardInterrupt as exc:  # cancelled while atexit handlers or threads ran
        _print_uncaught(exc, request.path_map)
        outcome.exit_code = KEYBOARD_INTERRUPT_EXIT
    finally:
        _flush_all()
        if request.debug:
            from .debug import stop_tracing

            stop_tracing()
        state.restore()
        user.purge()
    outcome.broken_imports = half_imported(modules_before)
    outcome.interrupted = outcome.exit_code == KEYBOARD_INTERRUPT_EXIT
    cache = active_cache()
    outcome.warm_reused = sorted(set(cache.reused)) if cache else []
    outcome.duration = time.perf_counter() - started
    return outcome


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


def _absolute_entry(cwd: str, entry: str) -> str:
    """The script path as python makes it absolute: joined to the cwd but not normalized
    (``sub/../x.py`` stays), so ``__file__`` and tracebacks read the same."""
    return entry if os.path.isabs(entry) else f"{cwd}{os.sep}{entry}"


def _prepare(user: UserCode) -> None:
    if user.purge():  # modules imported outside a run (prewarm) are frozen garbage now
        collector.full_needed = True
    importlib.invalidate_caches()
    linecache.clearcache()
    reset_warning_registries()
    reset_torch_rng()
    cache = active_cache()
    if cache is not None:
        cache.begin_run(user.owns)


def _enter_script_environment(request: RunRequest, entry: str) -> None:
    os.chdir(request.cwd)
    apply_environ(request.env)
    sys.argv[:] = [request.entry, *request.args]
    extra = [p for p in request.env.get("PYTHONPATH", "").split(os.pathsep) if p]
    base = [p for p in sys.path if p not in extra]  # the worker keeps no slot for a script
    sys.path[:] = [os.path.dirname(os.path.realpath(entry)), *extra, *base]
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


def run_main(entry: str, path_map: PathMap | None = None) -> tuple[int, dict[str, Any] | None]:
    """Execute ``entry`` as ``__main__``; return (exit code, error description or None)."""
    module = _fresh_main_module(entry)
    sys.modules["__main__"] = module
    try:
        with io.open_code(entry) as f:
            source = f.read()
    except OSError as exc:
        prog = os.path.basename(sys.executable)
        print(
            f"{prog}: can't open file {entry!r}: [Errno {exc.errno}] {exc.strerror}",
            file=sys.stderr,
        )
        return 2, {"type": type(exc).__name__, "message": str(exc), "frames": []}
    try:
        code = compile(source, entry, "exec", dont_inherit=True)
        exec(code, module.__dict__)
    except SystemExit as exc:
        return _system_exit_code(exc), None
    except BaseException as exc:
        error = _print_uncaught(exc, path_map)
        code_ = KEYBOARD_INTERRUPT_EXIT if isinstance(exc, KeyboardInterrupt) else 1
        return code_, error
    return 0, None


def _fresh_main_module(entry: str) -> types.ModuleType:
    module = types.ModuleType("__main__")
    module.__loader__ = importlib.machinery.SourceFileLoader("__main__", entry)
    # The interpreter's own __main__ starts with these, in this order (pylifecycle.c).
    module.__annotations__ = {}
    module.__builtins__ = builtins  # type: ignore[attr-defined]
    module.__file__ = entry
    module.__cached__ = None  # type: ignore[attr-defined]
    return module


def _system_exit_code(exc: SystemExit) -> int:
    code = exc.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    with contextlib.suppress(Exception):
        print(code, file=sys.stderr)
    return 1


def without_runner_frames(tb: types.TracebackType | None) -> types.TracebackType | None:
    """The traceback with hotswap's own frames taken out (user frames keep their order).

    A cancel at a breakpoint raises in the debugger's wait loop, which runs in the user's
    frame's trace call: the traceback ends where the debugger's frames begin, and that user
    frame, listed twice, is shown once.
    """
    kept: list[types.TracebackType] = []
    while tb is not None and not _in_debugger(tb.tb_frame.f_code.co_filename):
        ours = tb.tb_frame.f_code.co_filename.startswith(HOTSWAP_DIR + os.sep)
        if not ours and not (kept and kept[-1].tb_frame is tb.tb_frame):
            kept.append(tb)
        tb = tb.tb_next
    rebuilt: types.TracebackType | None = None
    for item in reversed(kept):
        rebuilt = types.TracebackType(rebuilt, item.tb_frame, item.tb_lasti, item.tb_lineno)
    return rebuilt


def _in_debugger(filename: str) -> bool:
    debugpy = sys.modules.get("debugpy")  # only a debug run imports it
    if debugpy is None or not debugpy.__file__:
        return False
    return filename.startswith((os.path.dirname(debugpy.__file__) + os.sep, "_pydevd_bundle"))


def _to_client(path: str, path_map: PathMap | None) -> str:
    return map_prefix(path, *path_map) if path_map else path


def describe_error(exc: BaseException, path_map: PathMap | None = None) -> dict[str, Any]:
    cls = type(exc)
    name = (
        cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
    )
    frames = [
        {"file": _to_client(f.filename, path_map), "line": f.lineno or 0, "function": f.name}
        for f in traceback.extract_tb(exc.__traceback__)
    ]
    if isinstance(exc, SyntaxError) and exc.filename:
        file = _to_client(exc.filename, path_map)
        frames.append({"file": file, "line": exc.lineno or 0, "function": "<module>"})
    return {"type": name, "message": str(exc), "frames": frames}


def _print_uncaught(exc: BaseException, path_map: PathMap | None = None) -> dict[str, Any]:
    """Print as the interpreter prints an uncaught exception, through sys.excepthook."""
    exc = exc.with_traceback(without_runner_frames(exc.__traceback__))
    if path_map is not None and sys.excepthook is sys.__excepthook__:
        _print_mapped(exc, path_map)
        return describe_error(exc, path_map)
    try:
        sys.excepthook(type(exc), exc, exc.__traceback__)
    except BaseException as hook_error:
        print("Error in sys.excepthook:", file=sys.stderr)
        sys.__excepthook__(type(hook_error), hook_error, hook_error.__traceback__)
        print("\nOriginal exception was:", file=sys.stderr)
        sys.__excepthook__(type(exc), exc, exc.__traceback__)
    return describe_error(exc)


def _print_mapped(exc: BaseException, path_map: PathMap) -> None:
    """The interpreter's traceback, with mirror paths shown as the client's workspace paths."""
    report = traceback.TracebackException(type(exc), exc, exc.__traceback__)
    seen: set[int] = set()
    pending = [report]
    while pending:
        item = pending.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        for frame in item.stack:
            frame.filename = _to_client(frame.filename, path_map)
        if getattr(item, "filename", None):  # SyntaxError
            item.filename = _to_client(item.filename, path_map)
        pending += [e for e in (item.__cause__, item.__context__) if e is not None]
        pending += list(getattr(item, "exceptions", None) or [])
    print("".join(report.format()), end="", file=sys.stderr)


def _report_atexit_error(func: Any, exc: BaseException) -> None:
    """As python reports it (an unraisable exception, since 3.10)."""
    exc = exc.with_traceback(without_runner_frames(exc.__traceback__))
    print(f"Exception ignored in atexit callback: {func!r}", file=sys.stderr)
    traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)


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

    def collect(self) -> None:
        self.runs_since_full += 1
        if self.full_needed or self.runs_since_full >= self.FULL_EVERY:
            gc.unfreeze()
            self.full_needed, self.runs_since_full = False, 0
        gc.collect()
        gc.freeze()


collector = Collector()


def release_run_memory() -> None:
    """Drop what the finished run left behind, so only warm objects stay."""
    collector.collect()
    empty_cuda_cache()


def empty_cuda_cache() -> None:
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.empty_cache()
