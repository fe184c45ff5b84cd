"""Warm objects follow code edits: instances re-pointed to the freshly imported class.

Only methods may change under a live object. When its construction changed (``__init__`` or a
method it calls, bases, ``__slots__``) or its class is gone, the warm entry is rebuilt instead.
"""

from __future__ import annotations

import dis
import importlib
import importlib.util
import sys
import types
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

_CONSTRUCTION = ("__init__", "__new__", "__post_init__", "__setstate__")


class MustRebuild(Exception):
    """Why a warm object cannot follow the new code in place."""


@dataclass
class FollowPlan:
    classes: list[tuple[Any, type]] = field(default_factory=list)
    attrs: list[tuple[Any, str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def apply(self) -> list[Any]:
        """Re-point the objects; the objects that changed."""
        for obj, cls in self.classes:
            try:
                obj.__class__ = cls
            except TypeError as exc:
                raise MustRebuild(
                    f"{cls.__qualname__} cannot replace the old class: {exc}"
                ) from exc
        for obj, name, value in self.attrs:
            obj.__dict__[name] = value
        return [o for o, _ in self.classes] + [o for o, _, _ in self.attrs]


def refresh(value: Any, snapshot: Any, reset: str, prefix: str) -> str | None:
    """Before a run gets a warm value: put it back, then follow code edits. None, or why
    the value must be rebuilt instead."""
    from .warm import say
    from .warm_restore import live_objects, restore

    if reset == "pristine" and (why := restore(snapshot)) is not None:
        return why
    try:
        plan = plan_follow(live_objects(value))
        changed = plan.apply()
    except MustRebuild as exc:
        return str(exc)
    if changed and hasattr(snapshot, "adopt"):
        snapshot.adopt(changed)
    for note in plan.notes:
        say(prefix + note, "updated")
    return None


def plan_follow(objects: Iterable[Any]) -> FollowPlan:
    """What re-pointing ``objects`` to today's code takes. Raises MustRebuild."""
    plan, fresh_of = FollowPlan(), _FreshClasses()
    noted: set[type] = set()
    for obj in objects:
        old = type(obj)
        new = fresh_of(old)
        if new is not None and new is not old:
            plan.classes.append((obj, new))
            if old not in noted:
                noted.add(old)
                plan.notes += method_changes(old, new)
        for name, value in list(getattr(obj, "__dict__", {}).items()):
            _plan_attr(plan, obj, name, value)
    return plan


class _FreshClasses:
    """Old class → new class (None when it is not the user's or is already current)."""

    def __init__(self) -> None:
        self.known: dict[type, type | None] = {}

    def __call__(self, cls: type) -> type | None:
        if cls not in self.known:
            self.known[cls] = self._resolve(cls)
        return self.known[cls]

    def _resolve(self, cls: type) -> type | None:
        current = _lookup(sys.modules.get(cls.__module__), cls.__qualname__)
        if current is cls or not _is_user_class(cls):
            return None
        if "<locals>" in cls.__qualname__:
            raise MustRebuild(
                f"{cls.__name__} is defined inside a function, so its new code cannot be found "
                "(define it at module level to keep it warm across edits)"
            )
        new = _lookup(_fresh_module(cls.__module__), cls.__qualname__)
        if not isinstance(new, type):
            raise MustRebuild(f"class {cls.__qualname__} is gone from {_where(cls)}")
        check_construction(cls, new)
        return new


def _plan_attr(plan: FollowPlan, obj: Any, name: str, value: Any) -> None:
    """Methods bound at construction (``inner.forward = fn.__get__(inner)``) and functions
    stored on the object follow the function of the same name."""
    func = value.__func__ if isinstance(value, types.MethodType) else value
    if not isinstance(func, types.FunctionType) or not _user_function(func):
        return
    if "<locals>" in func.__qualname__:
        return  # made while the object was built (a lambda): __init__'s own check covers it
    if isinstance(value, types.MethodType) and value.__self__ is not obj:
        return
    new = _lookup(_fresh_module(func.__module__), func.__qualname__)
    if isinstance(new, (classmethod, staticmethod)):
        new = new.__func__
    if not isinstance(new, types.FunctionType):
        raise MustRebuild(
            f"{type(obj).__name__}.{name} holds {func.__qualname__}, which is gone from "
            f"{func.__code__.co_filename}"
        )
    if new is func:
        return
    bound = new.__get__(obj) if isinstance(value, types.MethodType) else new
    plan.attrs.append((obj, name, bound))
    if code_digest(new) != code_digest(func):
        plan.notes.append(f"{type(obj).__name__}.{name} now runs the new {new.__qualname__}")


def check_construction(old: type, new: type) -> None:
    """Raise MustRebuild if instances of ``new`` would be built differently from ``old``."""
    names = [_name(c) for c in old.__mro__], [_name(c) for c in new.__mro__]
    if names[0] != names[1]:
        raise MustRebuild(f"the base classes of {old.__qualname__} changed")
    for before, after in zip(old.__mro__, new.__mro__, strict=True):
        if before is after:
            continue
        if repr(vars(before).get("__slots__")) != repr(vars(after).get("__slots__")):
            raise MustRebuild(f"{before.__qualname__}.__slots__ changed")
        for method in _construction_methods(before) | _construction_methods(after):
            if code_digest(vars(before).get(method)) != code_digest(vars(after).get(method)):
                raise MustRebuild(f"{before.__qualname__}.{method} changed")


def _construction_methods(cls: type) -> set[str]:
    """``__init__`` and the methods of the class it calls on self (transitively)."""
    found: set[str] = set()
    pending = [n for n in _CONSTRUCTION if n in vars(cls)]
    while pending:
        name = pending.pop()
        if name in found:
            continue
        found.add(name)
        code = getattr(_function(vars(cls).get(name)), "__code__", None)
        if code is not None:
            pending += [n for n in _attrs_read(code) if _function(vars(cls).get(n)) is not None]
    return found


def method_changes(old: type, new: type) -> list[str]:
    """``GPT.forward``-style names of the methods that differ between two versions of a class."""
    changes = []
    for before, after in zip(old.__mro__, new.__mro__, strict=True):
        if before is after:
            continue
        for name in sorted(set(vars(before)) | set(vars(after))):
            a, b = _function(vars(before).get(name)), _function(vars(after).get(name))
            if (a is not None or b is not None) and code_digest(a) != code_digest(b):
                state = "added" if a is None else "removed" if b is None else "updated"
                changes.append(f"{after.__qualname__}.{name} {state} in place")
    return changes


def _function(value: Any) -> Any:
    if isinstance(value, (staticmethod, classmethod)):
        return value.__func__
    if isinstance(value, property):
        return value.fget
    return value if isinstance(value, types.FunctionType) else None


def code_digest(value: Any) -> str | None:
    func = _function(value)
    if func is None:
        return None
    from .warm import code_fingerprint

    return code_fingerprint(func.__code__, func.__defaults__)


def _attrs_read(code: types.CodeType) -> set[str]:
    """Attribute names the code reads (``self.build()``), not those it sets (``x.forward = f``)."""
    names = {
        str(ins.argval)
        for ins in dis.get_instructions(code)
        if ins.opname in ("LOAD_ATTR", "LOAD_METHOD", "LOAD_SUPER_ATTR")
    }
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _attrs_read(const)
    return names


def _name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _where(cls: type) -> str:
    file = _class_file(cls)
    return file.rsplit("/", 1)[-1] if file else cls.__module__


def _lookup(module: Any, qualname: str) -> Any:
    value = module
    for part in qualname.split("."):
        if value is None:
            return None
        value = getattr(value, part, None) if part != "<locals>" else None
    return value


def _fresh_module(name: str) -> Any:
    """Today's module of that name, imported now if this run has not imported it yet."""
    if name in sys.modules or name == "__main__":
        return sys.modules.get(name)
    try:
        return importlib.import_module(name)
    except Exception as exc:
        raise MustRebuild(f"importing {name} failed ({type(exc).__name__}: {exc})") from exc


def _is_user_class(cls: type) -> bool:
    if cls.__module__ in ("__main__", "__mp_main__"):
        return True
    if cls.__module__.startswith("__hotswap"):  # a prewarm script's own classes stay as built
        return False
    file = _class_file(cls)
    return file is not None and _owns(file)


def _user_function(func: types.FunctionType) -> bool:
    return _owns(func.__code__.co_filename)


def _owns(filename: str) -> bool:
    from .warm import is_user_file

    return is_user_file(filename)


def _class_file(cls: type) -> str | None:
    """The file a class was defined in: its methods say so even after its module was purged."""
    for value in vars(cls).values():
        func = _function(value)
        if func is not None:
            return str(func.__code__.co_filename)
    module = sys.modules.get(cls.__module__)
    file = getattr(module, "__file__", None)
    if file:
        return str(file)
    try:
        spec = importlib.util.find_spec(cls.__module__)
    except (ImportError, ValueError):
        return None
    return spec.origin if spec is not None else None
