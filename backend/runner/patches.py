"""Monkeypatches a run makes to library modules (and builtins), found and undone after the run.

Each library module's namespace is copied when its import finishes (or when the worker starts);
after a run, namespaces that differ from their copy are compared entry by entry.
"""

from __future__ import annotations

import builtins
import ctypes
import functools
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


_ROUTINES = (
    type,
    types.FunctionType,
    types.BuiltinFunctionType,
    types.MethodType,
    functools.partial,
)


def _patchable(value: Any) -> bool:
    """What monkeypatches rebind: functions, methods, classes, partials."""
    return isinstance(value, _ROUTINES)


_SCALARS = (bool, int, float, str, type(None))


def _public_setting(key: str, value: Any) -> bool:
    """A public flag or setting of a module; private ones (``_initialized``) are a library's
    own bookkeeping."""
    return not key.startswith("_") and (value is _MISSING or type(value) in _SCALARS)


def _dict_version_reader() -> Callable[[dict[str, Any]], int] | None:
    """PEP 509's version tag of a dict (CPython 3.11 to 3.13 keep one, changed by every
    write), read through ctypes: one read per module tells whether its namespace changed.
    None when this interpreter's dicts do not pass a self-test; then namespaces are compared."""
    offset = 3 * ctypes.sizeof(ctypes.c_ssize_t)  # after ob_refcnt, ob_type and ma_used

    def version(d: dict[str, Any]) -> int:
        return ctypes.c_uint64.from_address(id(d) + offset).value

    if sys.implementation.name != "cpython" or not (3, 11) <= sys.version_info[:2] <= (3, 13):
        return None
    probe: dict[str, Any] = {"x": 0}
    seen = [version(probe)]
    for value in (1, 2):
        probe["x"] = value
        seen.append(version(probe))
    return version if len(set(seen)) == 3 and seen[0] != 0 else None


class LibraryPatches:
    """Copies of library namespaces, and the undoing of what a run's own code rebound in them.

    Undone: a function, class or other callable that was deleted or replaced, unless the new
    value is a function or class of a library (a library's own patch, or its lazy loading) or
    a module (a submodule import); and a public setting (a number, string, bool or None under
    a name without ``_``). Private globals (caches, ``_initialized`` flags) are the library's
    own state and stay.
    """

    def __init__(self, is_user_module: Callable[[types.ModuleType], bool]) -> None:
        self.is_user_module = is_user_module  # the current run's idea of the user's code
        self._copies: dict[str, tuple[types.ModuleType, dict[str, Any], int]] = {}
        self._seen: set[str] = set()  # names of modules looked at (copied or not ours to keep)
        self._builtins = dict(builtins.__dict__)
        self._version = _dict_version_reader() or (lambda d: -1)
        self.on_import: dict[str, Callable[[], None]] = {}  # first import of a module → call

    def install(self) -> None:
        """Hook first, copy after: the hook is part of importlib's namespace as we keep it."""
        original = bootstrap._find_and_load  # type: ignore[attr-defined]
        namespace = {"_original": original, "_loaded": self._loaded}
        exec(compile(_HOOK_SOURCE, "<frozen importlib._bootstrap>", "exec"), namespace)
        # import.c looks _find_and_load up on importlib._bootstrap at every first import.
        bootstrap._find_and_load = namespace["_find_and_load"]  # type: ignore[attr-defined]
        self.catch_up()

    def _loaded(self, name: str, module: Any) -> None:
        try:
            spec = getattr(module, "__spec__", None)
            if name in self._seen or getattr(spec, "_initializing", False):
                return  # a circular import: copied when its own import completes
            self._copy(name, module)
            callback = self.on_import.get(name)
            if callback is not None:
                callback()
        except Exception:  # never let our bookkeeping break the script's import
            pass

    def _copy(self, name: str, module: Any) -> None:
        self._seen.add(name)
        if _tracked(name, module) and not self.is_user_module(module):
            namespace = module.__dict__
            self._copies[name] = (module, namespace.copy(), self._version(namespace))

    def catch_up(self) -> None:
        """Copy modules imported outside our hook (prewarm, importlib.util.module_from_spec)."""
        for name in sys.modules.keys() - self._seen:
            module = sys.modules.get(name)
            if module is not None:
                self._copy(name, module)

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
        version = self._version
        for name, (module, copy, seen_version) in list(self._copies.items()):
            namespace = module.__dict__
            if version(namespace) == seen_version != -1:
                continue
            if sys.modules.get(name) is not module:
                del self._copies[name]  # purged or replaced: nothing left to protect
                self._seen.discard(name)
                continue
            if not _same(namespace, copy):
                undone += self._undo_patches(namespace, copy, name)
            self._copies[name] = (module, namespace.copy(), version(namespace))
        return undone

    def _undo_patches(
        self, namespace: dict[str, Any], copy: dict[str, Any], name: str
    ) -> list[str]:
        undone = []
        for key in namespace.keys() | copy.keys():
            old, new = copy.get(key, _MISSING), namespace.get(key, _MISSING)
            if old is not new and self._is_patch(key, old, new):
                _put(namespace, key, old)
                undone.append(f"{name}.{key}")
        return undone

    def _is_patch(self, key: str, old: Any, new: Any) -> bool:
        if new is not _MISSING and self._user_type(type(new)):
            return True  # an object of the script's own class (a callable stand-in)
        if _public_setting(key, old) and _public_setting(key, new):
            return True  # tempfile.tempdir = ...: a library left alone keeps it or redoes it
        if new is _MISSING or not _patchable(new):
            return _patchable(old)
        return not self._library_defined(new)

    def _user_type(self, cls: type) -> bool:
        module = sys.modules.get(cls.__module__)
        return module is not None and (module.__name__ == "__main__" or self.is_user_module(module))

    def _library_defined(self, value: Any) -> bool:
        """A function or class whose module is a library's (not the script's)."""
        if not isinstance(value, (type, types.FunctionType, types.BuiltinFunctionType)):
            return False
        module = sys.modules.get(getattr(value, "__module__", None) or "__main__")
        if module is None or module.__name__ == "__main__":
            return False
        return not self.is_user_module(module)


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
