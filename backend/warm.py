"""The warm cache: objects that outlive runs inside the runner worker.

Under plain ``python`` there is no cache and :func:`warm` simply calls the factory, so a
script written for hotswap keeps working without it.
"""

from __future__ import annotations

import sys
import threading
import time
import types
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

T = TypeVar("T")

_SIMPLE = (type(None), bool, int, float, complex, str, bytes)


class WarmEntry:
    __slots__ = ("build_seconds", "created", "fingerprint", "hits", "key", "value")

    def __init__(self, key: str, value: Any, fingerprint: str, build_seconds: float = 0.0) -> None:
        self.key, self.value, self.fingerprint = key, value, fingerprint
        self.created = time.time()
        self.build_seconds = build_seconds
        self.hits = 0


class WarmCache:
    """Objects cached by key; a key is rebuilt when its factory's code changes.

    A per-key lock lets a prewarm thread and a run ask for the same key: the second caller
    waits for the first build and gets the same object.
    """

    def __init__(self, on_change: Callable[[], None] | None = None) -> None:
        self._entries: dict[str, WarmEntry] = {}
        self._locks: dict[str, threading.RLock] = {}
        self._guard = threading.Lock()
        self._on_change = on_change
        self.reused: list[str] = []  # keys served from cache since the last reset_counters()

    def _lock_for(self, key: str) -> threading.RLock:
        with self._guard:
            return self._locks.setdefault(key, threading.RLock())

    def get_or_build(self, key: str, factory: Callable[[], T]) -> T:
        fingerprint = factory_fingerprint(factory)
        with self._lock_for(key):
            entry = self._entries.get(key)
            if entry is not None and entry.fingerprint == fingerprint:
                entry.hits += 1
                self.reused.append(key)
                return entry.value
            if entry is not None:
                self._drop(key)
            started = time.perf_counter()
            value = factory()
            self._entries[key] = WarmEntry(
                key, value, fingerprint, build_seconds=time.perf_counter() - started
            )
        self._changed()
        return value

    def forget(self, key: str) -> bool:
        with self._lock_for(key):
            found = self._drop(key)
        if found:
            self._changed()
        return found

    def clear(self) -> list[str]:
        keys = self.keys()
        for key in keys:
            with self._lock_for(key):
                self._drop(key)
        if keys:
            self._changed()
        return keys

    def keys(self) -> list[str]:
        with self._guard:
            return list(self._entries)

    def describe(self) -> list[dict[str, Any]]:
        with self._guard:
            entries = list(self._entries.values())
        return [describe_entry(e) for e in entries]

    def reset_counters(self) -> None:
        self.reused = []

    def _drop(self, key: str) -> bool:
        with self._guard:
            return self._entries.pop(key, None) is not None

    def _changed(self) -> None:
        if self._on_change is not None:
            self._on_change()


_cache: WarmCache | None = None


def install(cache: WarmCache | None) -> None:
    """Make ``cache`` the process's warm cache (the runner worker does this at start)."""
    global _cache
    _cache = cache


def active_cache() -> WarmCache | None:
    return _cache


def warm(key: str, factory: Callable[[], T]) -> T:
    """Return the object cached under ``key``, building it with ``factory()`` if needed.

    Under hotswap the same object (by identity) comes back run after run, until the
    factory's code changes. Under plain ``python`` this is just ``factory()``.
    """
    if not isinstance(key, str) or not key:
        raise TypeError(f"hotswap.warm: key must be a non-empty str, got {key!r}")
    if not callable(factory):
        raise TypeError(f"hotswap.warm: factory must be callable, got {type(factory).__name__}")
    if _cache is None:
        return factory()
    return _cache.get_or_build(key, factory)


def forget(key: str) -> bool:
    """Drop the warm object under ``key``; True if there was one."""
    return _cache.forget(key) if _cache is not None else False


def warm_keys() -> list[str]:
    """Keys of the warm objects held by this process (empty outside hotswap)."""
    return _cache.keys() if _cache is not None else []


# -- fingerprints ---------------------------------------------------------------------


def factory_fingerprint(factory: Callable[..., Any]) -> str:
    """A digest of what the factory would do: its code and its simple captured values."""
    import hashlib  # here, not at the top: `import hotswap` stays light for plain python

    h = hashlib.sha256()
    _digest_callable(h, factory, depth=0)
    return h.hexdigest()[:16]


def _digest_callable(h: Any, obj: Any, depth: int) -> None:
    if depth > 4:
        return
    if isinstance(obj, types.MethodType):
        _digest_callable(h, obj.__func__, depth + 1)
        return
    func = getattr(obj, "func", None)
    if func is not None and hasattr(obj, "args") and hasattr(obj, "keywords"):  # partial
        _digest_callable(h, func, depth + 1)
        _digest_values(h, [*obj.args, *sorted(obj.keywords.items())], depth)
        return
    code = getattr(obj, "__code__", None)
    if isinstance(code, types.CodeType):
        _digest_code(h, code)
        _digest_values(h, obj.__defaults__ or (), depth)
        _digest_values(h, sorted((obj.__kwdefaults__ or {}).items()), depth)
        cells = obj.__closure__ or ()
        _digest_values(h, [_cell_value(c) for c in cells], depth)
        _digest_simple_globals(h, code, getattr(obj, "__globals__", {}))
        return
    # A class or builtin is told apart by its own name (type(obj) is just `type`), and a
    # class by its __init__'s code too, so warm("m", ModelA) → warm("m", ModelB) rebuilds.
    named = obj if hasattr(obj, "__qualname__") else type(obj)
    h.update(f"{getattr(named, '__module__', '')}.{named.__qualname__}".encode())
    if isinstance(obj, type) and isinstance(vars(obj).get("__init__"), types.FunctionType):
        _digest_callable(h, vars(obj)["__init__"], depth + 1)


def _digest_simple_globals(h: Any, code: types.CodeType, namespace: dict[str, Any]) -> None:
    """Module-level simple values the code reads: ``lambda: load(SIZE)`` rebuilds when SIZE does."""
    for name in sorted(_names_read(code) & namespace.keys()):
        if _is_simple(namespace[name]):
            h.update(f"{name}={namespace[name]!r}".encode())


def _names_read(code: types.CodeType) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _names_read(const)
    return names


def _cell_value(cell: Any) -> Any:
    try:
        return cell.cell_contents
    except ValueError:  # an empty cell
        return None


def _digest_code(h: Any, code: types.CodeType) -> None:
    h.update(code.co_code)
    h.update(repr((code.co_names, code.co_varnames, code.co_freevars)).encode())
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            _digest_code(h, const)
        else:
            h.update(repr(const).encode())


def _is_simple(value: Any) -> bool:
    return isinstance(value, _SIMPLE) or (
        isinstance(value, tuple) and all(isinstance(v, _SIMPLE) for v in value)
    )


def _digest_values(h: Any, values: Iterable[Any], depth: int) -> None:
    for value in values:
        if _is_simple(value):
            h.update(repr(value).encode())
        elif callable(value) and hasattr(value, "__code__"):
            _digest_callable(h, value, depth + 1)
        else:
            h.update(type(value).__qualname__.encode())


# -- descriptions for status ----------------------------------------------------------


def describe_entry(entry: WarmEntry) -> dict[str, Any]:
    params, nbytes, device = _measure(entry.value)
    return {
        "key": entry.key,
        "type": f"{type(entry.value).__module__}.{type(entry.value).__qualname__}",
        "parameters": params,
        "bytes": nbytes,
        "device": device,
        "build_seconds": round(entry.build_seconds, 3),
        "hits": entry.hits,
    }


def _measure(value: Any) -> tuple[int | None, int, str | None]:
    """(parameter count, bytes, device) of a module, tensor or a shallow container of them."""
    torch = sys.modules.get("torch")
    if torch is not None:
        if isinstance(value, torch.nn.Module):
            tensors = [*value.parameters(), *value.buffers()]
            params = sum(p.numel() for p in value.parameters())
            device = str(tensors[0].device) if tensors else None
            return params, sum(t.numel() * t.element_size() for t in tensors), device
        if isinstance(value, torch.Tensor):
            return value.numel(), value.numel() * value.element_size(), str(value.device)
    items: list[Any] = []
    if isinstance(value, dict):
        items = list(value.values())
    elif isinstance(value, (list, tuple)):
        items = list(value)
    if items and torch is not None:
        parts = [_measure(v) for v in items[:64]]
        counted = [p for p in parts if p[0] is not None]
        if counted:
            devices = {p[2] for p in counted if p[2]}
            device = devices.pop() if len(devices) == 1 else ("mixed" if devices else None)
            return sum(p[0] or 0 for p in counted), sum(p[1] for p in parts), device
    return None, sys.getsizeof(value), None
