"""Executing the run's entry as ``__main__``, in each form python takes: a script path, a
directory or zip file with ``__main__.py``, ``-m MODULE`` and ``-c CODE``."""

from __future__ import annotations

import builtins
import contextlib
import functools
import importlib.machinery
import importlib.util
import io
import os
import sys
import types
import zipimport
from collections.abc import Callable
from typing import Any

from ..paths import PathMap
from ..protocol import ENTRY_KINDS, INTERRUPTED_EXIT
from .errors import print_uncaught

Outcome = tuple[int, "dict[str, Any] | None"]


def is_package_entry(path: str) -> bool:
    """A directory or zip file, which python runs through its ``__main__`` module."""
    if os.path.isdir(path):
        return True
    try:
        zipimport.zipimporter(path)
    except (zipimport.ZipImportError, OSError):
        return False
    return True


def main_path0(kind: str, entry: str, cwd: str) -> str:
    """sys.path[0] as python sets it for each form."""
    if kind == "code":
        return ""
    if kind == "module":
        return cwd
    if is_package_entry(entry):
        return entry
    return os.path.dirname(os.path.realpath(entry))


def run_main(
    kind: str, entry: str, path_map: PathMap | None = None
) -> tuple[int, dict[str, Any] | None]:
    """Execute the entry as ``__main__``; return (exit code, error description or None)."""
    if kind not in _RUNNERS:
        print(f"hotswap: unknown entry_kind {kind!r}; use one of {ENTRY_KINDS}", file=sys.stderr)
        return 2, None
    try:
        return _RUNNERS[kind](entry)
    except SystemExit as exc:
        return system_exit_code(exc), None
    except BaseException as exc:
        error = print_uncaught(exc, path_map)
        code_ = INTERRUPTED_EXIT if isinstance(exc, KeyboardInterrupt) else 1
        return code_, error


def _run_path(entry: str) -> Outcome:
    if is_package_entry(entry):
        return _run_package(entry)
    module = _install_main()
    module.__loader__ = importlib.machinery.SourceFileLoader("__main__", entry)
    module.__file__ = entry
    module.__cached__ = None  # type: ignore[attr-defined]
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
    exec(compile(source, entry, "exec", dont_inherit=True), module.__dict__)
    return 0, None


def _run_code(code: str) -> Outcome:
    module = _install_main()
    module.__loader__ = importlib.machinery.BuiltinImporter
    exec(compile(code, "<string>", "exec", dont_inherit=True), module.__dict__)
    return 0, None


def _run_module(name: str) -> Outcome:
    _install_main()
    _frozen_runpy()._run_module_as_main(name, alter_argv=True)
    return 0, None


def _run_package(path: str) -> Outcome:
    """A directory or zip file: its ``__main__`` module, found through sys.path[0]."""
    _install_main()
    _frozen_runpy()._run_module_as_main("__main__", alter_argv=False)
    return 0, None


def _install_main() -> types.ModuleType:
    """A fresh ``__main__``, starting with what the interpreter puts there (pylifecycle.c)."""
    module = types.ModuleType("__main__")
    module.__annotations__ = {}
    module.__builtins__ = builtins  # type: ignore[attr-defined]
    sys.modules["__main__"] = module
    return module


@functools.cache
def _frozen_runpy() -> types.ModuleType:
    """A private copy of runpy, compiled as python's frozen one is named: what ``python -m``
    runs, with the same ``<frozen runpy>`` frames in tracebacks (the worker runs with frozen
    modules off, so that debugpy can bind breakpoints in the stdlib)."""
    spec = importlib.util.find_spec("runpy")
    assert spec is not None and spec.loader is not None
    source = spec.loader.get_source("runpy")  # type: ignore[attr-defined]
    module = types.ModuleType("runpy")
    exec(compile(source, "<frozen runpy>", "exec"), module.__dict__)
    return module


_RUNNERS: dict[str, Callable[[str], Outcome]] = {
    "path": _run_path,
    "module": _run_module,
    "code": _run_code,
}


def system_exit_code(exc: SystemExit) -> int:
    code = exc.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    with contextlib.suppress(Exception):
        print(code, file=sys.stderr)
    return 1
