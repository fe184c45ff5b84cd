"""Monkeypatches a run makes to library modules (and builtins), found and undone after the run.

Each library module's namespace is copied when its import finishes (or when the worker starts);
after a run, namespaces that differ from their copy are compared entry by entry.
"""

from __future__ import annotations

import builtins
import importlib._bootstrap as bootstrap
import os
import sys
import types
from collections.abc import Callable
from typing import Any

from .errors import HOTSWAP_DIR

_MISSING = object()
_SKIPPED = frozenset({"__main__", "__mp_main__", "__hotswap_prewarm__", "sys", "builtins"})
_DEBUGGER_PREFIXES = ("debugpy", "pydevd", "_pydev", "_pydevd")

# Named as importlib's own frames, so that tracebacks (import.c's remove_importlib_frames) and
# warnings' stacklevel skip it as they skip importlib: the script sees python's frames.
_HOOK_SOURCE = """
def _find_and_load(name, import_):
    module = _original(name, import_)
    _loaded(name, module)
    return module
"""


def _tracked(name: str, module: Any) -> bool:
    if name in _SKIPPED or name.startswith(_DEBUGGER_PREFIXES):
        return False
    if not isinstance(module, types.ModuleType):
        return False
    filename = getattr(module, "__file__", None) or ""
    return not filename.startswith(HOTSWAP_DIR + os.sep)


def _patchable(value: Any) -> bool:
    """What monkeypatches rebind: functions, classes and other callables (not modules)."""
    return callable(value) and not isinstance(value, types.ModuleType)


class LibraryPatches:
    """Copies of library namespaces, and the undoing of what a run's own code rebound in them.

    A change is undone when the old or the new value is a function, class or other callable,
    unless the new value is a module (a submodule import) or comes from a library the run
    imported for the first time (that library's own import-time patch, which it relies on).
    Other rebinding (flags, caches a library keeps in its globals) is the library's own state.
    """

    def __init__(self, is_user_module: Callable[[types.ModuleType], bool]) -> None:
        self.is_user_module = is_user_module  # the current run's idea of the user's code
        self._copies: dict[str, tuple[types.ModuleType, dict[str, Any]]] = {}
        self._builtins = dict(builtins.__dict__)
        self.imported_in_run: set[str] = set()
        self.on_import: dict[str, Callable[[], None]] = {}  # first import of a module → call

    def install(self) -> None:
        """Hook first, copy after: the hook is part of importlib's namespace as we keep it."""
        original = bootstrap._find_and_load  # type: ignore[attr-defined]
        namespace = {"_original": original, "_loaded": self._loaded}
        exec(compile(_HOOK_SOURCE, "<frozen importlib._bootstrap>", "exec"), namespace)
        # import.c looks _find_and_load up on importlib._bootstrap at every first import.
        bootstrap._find_and_load = namespace["_find_and_load"]  # type: ignore[attr-defined]
        for name, module in list(sys.modules.items()):
            self._copy(name, module)

    def _loaded(self, name: str, module: Any) -> None:
        try:
            spec = getattr(module, "__spec__", None)
            if name in self._copies or getattr(spec, "_initializing", False):
                return  # a circular import: copied when its own import completes
            if self._copy(name, module):
                self.imported_in_run.add(name)
            callback = self.on_import.get(name)
            if callback is not None:
                callback()
        except Exception:  # never let our bookkeeping break the script's import
            pass

    def _copy(self, name: str, module: Any) -> bool:
        if not _tracked(name, module) or self.is_user_module(module):
            return False
        self._copies[name] = (module, module.__dict__.copy())
        return True

    def catch_up(self) -> None:
        """Copy modules imported outside our hook (prewarm, importlib.util.module_from_spec)."""
        if len(self._copies) < len(sys.modules):
            for name, module in list(sys.modules.items()):
                if name not in self._copies:
                    self._copy(name, module)
        self.imported_in_run.clear()

    def undo_builtins(self) -> None:
        """First of all (our own code looks names up there too), with dict methods only: a
        run may have replaced ``len`` or ``set``."""
        current, saved = builtins.__dict__, self._builtins
        for key in current.keys() - saved.keys():
            del current[key]
        current.update(saved)

    def undo(self) -> list[str]:
        """Put back what the run rebound; return 'module.name' of each undone change."""
        undone = []
        for name, (module, copy) in list(self._copies.items()):
            if sys.modules.get(name) is not module:
                del self._copies[name]  # purged or replaced: nothing left to protect
                continue
            namespace = module.__dict__
            if _same(namespace, copy):
                continue
            undone += self._undo_patches(namespace, copy, name)
            self._copies[name] = (module, namespace.copy())  # the library's own changes stay
        return undone

    def _undo_patches(
        self, namespace: dict[str, Any], copy: dict[str, Any], name: str
    ) -> list[str]:
        undone = []
        for key in set(namespace) | set(copy):
            old, new = copy.get(key, _MISSING), namespace.get(key, _MISSING)
            if old is new or not (_patchable(old) or _patchable(new)):
                continue
            if isinstance(new, types.ModuleType) or self._from_new_library(new):
                continue
            _put(namespace, key, old)
            undone.append(f"{name}.{key}")
        return undone

    def _from_new_library(self, value: Any) -> bool:
        origin = getattr(value, "__module__", None)
        return isinstance(origin, str) and origin in self.imported_in_run


def _same(namespace: dict[str, Any], copy: dict[str, Any]) -> bool:
    """Equal dicts compare values by identity first (in C): fast when nothing changed."""
    try:
        return len(namespace) == len(copy) and bool(namespace == copy)
    except Exception:  # a changed value whose == raises (arrays): compare one by one
        return False


def _put(namespace: dict[str, Any], key: str, value: Any) -> None:
    if value is _MISSING:
        namespace.pop(key, None)
    else:
        namespace[key] = value
