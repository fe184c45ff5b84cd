"""Executing the run's entry as ``__main__``, in each form python takes: a script path, a
directory or zip file with ``__main__.py``, ``-m MODULE`` and ``-c CODE``."""

from __future__ import annotations

import builtins
import contextlib
import dis
import importlib.machinery
import io
import os
import runpy
import sys
import types
import zipimport
from collections.abc import Callable
from typing import Any

from .errors import KEYBOARD_INTERRUPT_EXIT, PathMap, print_uncaught

ENTRY_KINDS = ("path", "module", "code")

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
        code_ = KEYBOARD_INTERRUPT_EXIT if isinstance(exc, KeyboardInterrupt) else 1
        return code_, error


def _run_path(entry: str) -> Outcome:
    if is_package_entry(entry):
        return _run_runpy(lambda: runpy._get_main_module_details(runpy._Error))  # type: ignore[attr-defined]
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
    return _run_runpy(lambda: runpy._get_module_details(name, runpy._Error), alter_argv=True)  # type: ignore[attr-defined]


def _run_runpy(details: Callable[[], Any], alter_argv: bool = False) -> Outcome:
    """What ``runpy._run_module_as_main`` does, python's own frames included."""
    module = _install_main()
    try:
        _, spec, code = details()
    except runpy._Error as exc:  # type: ignore[attr-defined]
        raise SystemExit(f"{sys.executable}: {exc}") from None
    if alter_argv:
        sys.argv[0] = spec.origin
    module.__dict__.update(
        __name__="__main__",
        __file__=spec.origin,
        __cached__=spec.cached,
        __doc__=None,
        __loader__=spec.loader,
        __package__=spec.parent,
        __spec__=spec,
    )
    _runpy_frames()(code, module.__dict__)
    return 0, None


def _install_main() -> types.ModuleType:
    """A fresh ``__main__``, starting with what the interpreter puts there (pylifecycle.c)."""
    module = types.ModuleType("__main__")
    module.__annotations__ = {}
    module.__builtins__ = builtins  # type: ignore[attr-defined]
    sys.modules["__main__"] = module
    return module


_trampoline: Callable[[Any, dict[str, Any]], None] | None = None


def _runpy_frames() -> Callable[[Any, dict[str, Any]], None]:
    """exec() under two frames that read as python's ``<frozen runpy>`` ones in tracebacks
    (same file name, function names and line numbers as this python's runpy)."""
    global _trampoline
    if _trampoline is None:
        outer = _line_of(runpy._run_module_as_main, "_run_code")  # type: ignore[attr-defined]
        inner = _line_of(runpy._run_code, "exec")  # type: ignore[attr-defined]
        lines = [""] * max(outer, inner, 2)
        if outer == inner:  # not this python's layout: keep the names, lose the numbers
            outer, inner = 2, 1
        lines[inner - 1] = "def _run_code(code, run_globals): exec(code, run_globals)"
        lines[outer - 1] = "def _run_module_as_main(code, g): _run_code(code, g)"
        namespace: dict[str, Any] = {}
        exec(compile("\n".join(lines), "<frozen runpy>", "exec"), namespace)
        _trampoline = namespace["_run_module_as_main"]
    return _trampoline


def _line_of(func: Any, name: str) -> int:
    with contextlib.suppress(Exception):
        for instruction in dis.get_instructions(func):
            positions = getattr(instruction, "positions", None)
            if instruction.argval == name and positions is not None:
                return int(positions.lineno or 1)
    return 1


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
