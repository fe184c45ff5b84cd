"""What a run may change in the worker process, captured before it and put back after it."""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import signal
import sys
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# SIGINT is the worker's own: it turns cancels into KeyboardInterrupt only while a run is on.
_NOT_RESTORED = {signal.SIGKILL, signal.SIGSTOP, signal.SIGINT}


def reset_warning_registries() -> None:
    """Make every 'once per location' warning show again, as in a fresh interpreter."""
    mutated = getattr(warnings, "_filters_mutated", None) or getattr(
        warnings, "_filters_mutated_lock_held", None
    )
    if mutated is not None:
        mutated()
    getattr(warnings, "onceregistry", {}).clear()


@dataclass
class LoggerState:
    level: int
    handlers: list[logging.Handler]
    propagate: bool
    disabled: bool


def _logger_states() -> dict[str, LoggerState]:
    loggers: dict[str, Any] = dict(logging.root.manager.loggerDict)
    states = {
        name: LoggerState(lg.level, list(lg.handlers), lg.propagate, lg.disabled)
        for name, lg in loggers.items()
        if isinstance(lg, logging.Logger)
    }
    root = logging.root
    states[""] = LoggerState(root.level, list(root.handlers), root.propagate, root.disabled)
    return states


def _logger(name: str) -> logging.Logger:
    return logging.root if name == "" else logging.getLogger(name)


def _restore_logging(before: dict[str, LoggerState], disable: int) -> None:
    after = _logger_states()
    blank = LoggerState(logging.NOTSET, [], True, False)
    for name, now in after.items():
        then = before.get(name, blank)
        logger = _logger(name)
        for handler in now.handlers:
            if handler not in then.handlers:
                with contextlib.suppress(Exception):
                    handler.flush()
                    handler.close()
        logger.handlers = list(then.handlers)
        logger.setLevel(then.level)
        logger.propagate, logger.disabled = then.propagate, then.disabled
    logging.disable(disable)


def _signal_handlers() -> dict[int, Any]:
    handlers: dict[int, Any] = {}
    for sig in signal.valid_signals():
        if sig in _NOT_RESTORED:
            continue
        with contextlib.suppress(OSError, ValueError):
            handlers[sig] = signal.getsignal(sig)
    return handlers


def _restore_signals(before: dict[int, Any]) -> None:
    for sig, handler in before.items():
        if handler is None:
            continue  # set from C; cannot be restored from Python
        with contextlib.suppress(OSError, ValueError, TypeError):
            if signal.getsignal(sig) is not handler:
                signal.signal(sig, handler)


@dataclass
class ProcessState:
    """A snapshot of interpreter-wide state; :meth:`restore` puts it back."""

    cwd: str
    path: list[str]
    argv: list[str]
    environ: dict[str, str]
    main_module: Any
    streams: tuple[Any, Any, Any]
    original_streams: tuple[Any, Any, Any]
    hooks: tuple[Any, Any, Any, Any]
    recursion_limit: int
    loggers: dict[str, LoggerState]
    logging_disable: int
    warning_filters: list[Any]
    showwarning: Any
    signals: dict[int, Any]
    # The thread objects, not their idents: a thread that ends during the run frees its
    # ident for one the run starts, which would then not be waited for.
    threads: set[threading.Thread] = field(default_factory=set)

    @classmethod
    def capture(cls) -> ProcessState:
        return cls(
            cwd=os.getcwd(),
            path=list(sys.path),
            argv=list(sys.argv),
            environ=dict(os.environ),
            main_module=sys.modules.get("__main__"),
            streams=(sys.stdin, sys.stdout, sys.stderr),
            original_streams=(sys.__stdin__, sys.__stdout__, sys.__stderr__),
            hooks=(sys.excepthook, sys.displayhook, sys.breakpointhook, sys.unraisablehook),
            recursion_limit=sys.getrecursionlimit(),
            loggers=_logger_states(),
            logging_disable=logging.root.manager.disable,
            warning_filters=list(warnings.filters),
            showwarning=warnings.showwarning,
            signals=_signal_handlers(),
            threads=set(threading.enumerate()),
        )

    def new_threads(self) -> list[threading.Thread]:
        """Non-daemon threads started since the snapshot, still alive."""
        return [
            t
            for t in threading.enumerate()
            if t not in self.threads and not t.daemon and t.is_alive()
        ]

    def restore(self) -> None:
        _restore_signals(self.signals)
        if sys.gettrace() is not None:  # pydevd warns about any settrace call
            sys.settrace(None)
        if sys.getprofile() is not None:
            sys.setprofile(None)
        threading.settrace(None)  # type: ignore[arg-type,unused-ignore]
        threading.setprofile(None)  # type: ignore[arg-type,unused-ignore]
        sys.stdin, sys.stdout, sys.stderr = self.streams
        sys.__stdin__, sys.__stdout__, sys.__stderr__ = self.original_streams  # type: ignore[misc]
        sys.excepthook, sys.displayhook, sys.breakpointhook, sys.unraisablehook = self.hooks
        sys.setrecursionlimit(self.recursion_limit)
        with contextlib.suppress(OSError):
            os.chdir(self.cwd)
        sys.path[:] = self.path
        sys.argv[:] = self.argv
        _replace_environ(self.environ)
        if self.main_module is not None:
            sys.modules["__main__"] = self.main_module
        _restore_logging(self.loggers, self.logging_disable)
        warnings.filters[:] = self.warning_filters  # type: ignore[index]
        warnings.showwarning = self.showwarning
        reset_warning_registries()
        for name in ("last_type", "last_value", "last_traceback", "last_exc"):
            if hasattr(sys, name):
                with contextlib.suppress(AttributeError):
                    delattr(sys, name)


def _replace_environ(env: dict[str, str]) -> None:
    for name in list(os.environ):
        if name not in env:
            del os.environ[name]
    for name, value in env.items():
        if os.environ.get(name) != value:
            os.environ[name] = value


def apply_environ(env: dict[str, str]) -> None:
    _replace_environ(env)


class RunExitHandlers:
    """atexit handlers that the run's own code registers: run once, at the run's end.

    Handlers registered by third-party code (torch imported for the first time during a run)
    go to the real atexit, since those modules stay loaded for later runs.
    """

    def __init__(self, is_user_file: Callable[[str], bool]) -> None:
        self._is_user_file = is_user_file
        self._handlers: list[tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]] = []
        self._real = (atexit.register, atexit.unregister)

    def __enter__(self) -> RunExitHandlers:
        atexit.register = self._register  # type: ignore[assignment]
        atexit.unregister = self._unregister
        return self

    def __exit__(self, *exc: object) -> None:
        atexit.register, atexit.unregister = self._real

    def _register(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        caller = sys._getframe(1).f_code.co_filename
        if self._is_user_file(caller):
            self._handlers.append((func, args, kwargs))
            return func
        return self._real[0](func, *args, **kwargs)

    def _unregister(self, func: Callable[..., Any]) -> None:
        self._handlers = [h for h in self._handlers if h[0] != func]
        self._real[1](func)

    def run(self, report: Callable[[Callable[..., Any], BaseException], None]) -> None:
        """Call the handlers last-registered first, as the interpreter does at exit."""
        while self._handlers:
            func, args, kwargs = self._handlers.pop()
            try:
                func(*args, **kwargs)
            except BaseException as exc:
                report(func, exc)
