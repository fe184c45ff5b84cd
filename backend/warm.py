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


RESETS = ("pristine", "keep")


class WarmEntry:
    __slots__ = (
        "build_seconds",
        "created",
        "fingerprint",
        "hits",
        "key",
        "reset",
        "snapshot",
        "value",
    )

    def __init__(self, key: str, value: Any, fingerprint: str, build_seconds: float = 0.0) -> None:
        self.key, self.value, self.fingerprint = key, value, fingerprint
        self.created = time.time()
        self.build_seconds = build_seconds
        self.hits = 0
        self.reset = "pristine"
        self.snapshot: Any = None  # a warm_restore.Snapshot, or the reason there is none


class WarmCache:
    """Objects cached by key; a key is rebuilt when its factory's code changes.

    Every run gets the object as its factory built it (``reset="pristine"``): what a run
    changed is put back after it and checked again when the next run asks for it; classes
    from the user's code are re-pointed to their edited versions. A per-key lock lets a
    prewarm thread and a run ask for the same key: the second caller waits for the first
    build and gets the same object.
    """

    def __init__(self, on_change: Callable[[], None] | None = None) -> None:
        self._entries: dict[str, WarmEntry] = {}
        self._locks: dict[str, threading.RLock] = {}
        self._guard = threading.Lock()
        self._on_change = on_change
        self._evicted: dict[str, str] = {}  # key → why it was dropped after a run
        self._served: set[str] = set()  # keys refreshed in this run
        self.reused: list[str] = []  # keys served from cache since the last reset_counters()

    def _lock_for(self, key: str) -> threading.RLock:
        with self._guard:
            return self._locks.setdefault(key, threading.RLock())

    def get_or_build(self, key: str, factory: Callable[[], T], reset: str = "pristine") -> T:
        fingerprint = f"{factory_fingerprint(factory)}/{reset}"
        with self._lock_for(key):
            entry = self._entries.get(key)
            why = self._evicted.pop(key, None)
            if entry is not None:
                why = (
                    "its factory, or a function of yours it calls, changed"
                    if entry.fingerprint != fingerprint
                    else self._refresh(entry)
                )
                if why is None:
                    entry.hits += 1
                    self.reused.append(key)
                    return entry.value
                self._drop(key)
            if why:
                say(f"warm {key!r} rebuilt: {why}", "rebuilt")
            value = self._build(key, factory, fingerprint, reset)
        self._changed()
        return value

    def _build(self, key: str, factory: Callable[[], T], fingerprint: str, reset: str) -> T:
        started = time.perf_counter()
        depth = getattr(_building, "depth", 0)
        _building.depth = depth + 1
        try:
            value = factory()
        finally:
            _building.depth = depth
        entry = WarmEntry(key, value, fingerprint, build_seconds=time.perf_counter() - started)
        entry.reset = reset
        from .warm_restore import take_snapshot

        entry.snapshot = take_snapshot(value, keep_values=reset == "pristine")
        if isinstance(entry.snapshot, str):
            say(
                f"warm {key!r} cannot be kept pristine ({entry.snapshot}), so it is built "
                "again in every run; pass reset='keep' to keep it as runs leave it",
                "rebuilt",
            )
        self._entries[key] = entry
        self._served.add(key)
        return value

    def _refresh(self, entry: WarmEntry) -> str | None:
        """Put the entry back and follow code edits, once per run; why it must be rebuilt."""
        if entry.key in self._served:
            return None
        self._served.add(entry.key)
        from .warm_follow import refresh

        return refresh(entry.value, entry.snapshot, entry.reset, f"warm {entry.key!r}: ")

    def begin_run(self, owns: Callable[[str], bool] | None) -> None:
        """A run starts: files that ``owns`` are the user's code; counters start over."""
        global _user_files
        _user_files = owns
        self._served = set()
        self.reset_counters()

    def after_run(self) -> None:
        """Put back what the run changed now, so memory it left (grads, copies) is freed."""
        from .warm_restore import restore

        evicted = False
        for key in self.keys():
            with self._lock_for(key):
                entry = self._entries.get(key)
                why = restore(entry.snapshot) if entry and entry.reset == "pristine" else None
                if why is not None:
                    evicted = self._drop(key)
                    self._evicted[key] = why
                    say(f"warm {key!r} dropped after the run: {why}", "evicted")
        self._served = set()
        if evicted:
            self._changed()  # the worker collects everything now, frozen objects too

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
        from .warm_describe import describe_entry

        with self._guard:
            entries = list(self._entries.values())
        return [describe_entry(e) for e in entries]

    def held_values(self) -> list[Any]:
        """Every warm value and its snapshot's copies: memory that is not a run's leftover."""
        with self._guard:
            entries = list(self._entries.values())
        held = [e.value for e in entries]
        for entry in entries:
            copies = getattr(entry.snapshot, "tensors", ())
            held += [getattr(t.store, "tensor", None) for t in copies]
        return held

    def reset_counters(self) -> None:
        self.reused = []

    def _drop(self, key: str) -> bool:
        with self._guard:
            return self._entries.pop(key, None) is not None

    def _changed(self) -> None:
        if self._on_change is not None:
            self._on_change()


_user_files: Callable[[str], bool] | None = None  # the current run's "is this the user's file"
_building = threading.local()  # .depth: factories running in this thread


def is_building() -> bool:
    """True inside a warm factory (what it loads is kept once, as part of its object)."""
    return getattr(_building, "depth", 0) > 0


def is_user_file(filename: str) -> bool:
    return _user_files is not None and _user_files(filename)


_notices: Callable[[str, str], bool] | None = None  # the worker's: a notice to the run's client


def say(message: str, kind: str = "note") -> None:
    """Tell the user what hotswap did (``kind``: one of protocol.NOTICE_KINDS): in the run's
    header, apart from the script's output; on stderr when no run hears it (a prewarm)."""
    if _notices is None or not _notices(kind, message):
        print(f"hotswap: {message}", file=sys.stderr, flush=True)


_cache: WarmCache | None = None


def install(cache: WarmCache | None, notices: Callable[[str, str], bool] | None = None) -> None:
    """Make ``cache`` the process's warm cache, and ``notices(kind, text)`` (False when no
    run hears it) where ``say`` goes: the runner worker does this at start."""
    global _cache, _notices
    _cache, _notices = cache, notices


def active_cache() -> WarmCache | None:
    return _cache


def warm(key: str, factory: Callable[[], T], reset: str = "pristine") -> T:
    """Return the object cached under ``key``, building it with ``factory()`` if needed.

    Under hotswap the same object (by identity) comes back run after run, until the
    factory's code changes, and each run gets it as ``factory()`` returned it: what earlier
    runs changed (weights, dtypes, devices, modes, layers, hooks, configs) is put back.
    ``reset="keep"`` hands it out as the last run left it instead (to train across runs).
    Under plain ``python`` this is just ``factory()``.
    """
    if not isinstance(key, str) or not key:
        raise TypeError(f"hotswap.warm: key must be a non-empty str, got {key!r}")
    if not callable(factory):
        raise TypeError(f"hotswap.warm: factory must be callable, got {type(factory).__name__}")
    if reset not in RESETS:
        raise ValueError(f"hotswap.warm: reset must be 'pristine' or 'keep', got {reset!r}")
    if _cache is None:
        return factory()
    return _cache.get_or_build(key, factory, reset)


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
        _digest_globals(h, code, getattr(obj, "__globals__", {}), depth)
        return
    # A class or builtin is told apart by its own name (type(obj) is just `type`), and a
    # class by its __init__'s code too, so warm("m", ModelA) → warm("m", ModelB) rebuilds.
    named = obj if hasattr(obj, "__qualname__") else type(obj)
    h.update(f"{getattr(named, '__module__', '')}.{named.__qualname__}".encode())
    if isinstance(obj, type) and isinstance(vars(obj).get("__init__"), types.FunctionType):
        _digest_callable(h, vars(obj)["__init__"], depth + 1)


def _digest_globals(h: Any, code: types.CodeType, namespace: dict[str, Any], depth: int) -> None:
    """Module-level simple values the code reads (``lambda: load(SIZE)`` rebuilds when SIZE
    does), and the user's own functions it calls (``load`` edited in model.py)."""
    for name in sorted(_names_read(code) & namespace.keys()):
        value = namespace[name]
        if _is_simple(value):
            h.update(f"{name}={value!r}".encode())
        elif _is_user_function(value):
            h.update(f"{name}=".encode())
            _digest_callable(h, value, depth + 1)


def _is_user_function(value: Any) -> bool:
    """A function outside installed libraries, the stdlib and hotswap. Decided by the file
    alone (not by the run's workspace), so a prewarm thread and a run agree on fingerprints."""
    if not isinstance(value, types.FunctionType):
        return False
    file = value.__code__.co_filename
    return (
        not file.startswith("<")
        and not file.startswith(_LIBRARY_PREFIXES)
        and not any(marker in file for marker in _LIBRARY_MARKERS)
    )


_LIBRARY_MARKERS = ("/site-packages/", "/dist-packages/", "\\site-packages\\")
_LIBRARY_PREFIXES = (
    *{p.rstrip("/\\") + "/lib/" for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)},
    __file__.rsplit("/", 1)[0] + "/",
)


def code_fingerprint(code: types.CodeType, defaults: Any = None) -> str:
    """A digest of one function's code (and defaults): equal when the source did not change."""
    import hashlib

    h = hashlib.sha256()
    _digest_code(h, code)
    h.update(repr(defaults).encode())
    return h.hexdigest()[:16]


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
