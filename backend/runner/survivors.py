"""What a run left alive beyond warm objects: the largest arrays, and which module holds them.

Tensors the run created that are still alive (gc lists them until the collector freezes
them), then, only if there are some or the process grew, who holds them: library module
globals two levels deep (``lib.CACHE['x']``, ``lib.Cls.attr``) and ``sys.last_value``.
"""

from __future__ import annotations

import gc
import sys
import types
import warnings
from collections.abc import Iterable, Iterator
from typing import Any

MIN_BYTES = 1 << 20  # smaller survivors are not worth a line
LIMIT = 3  # the footer names this many
_CONTAINER_ITEMS = 1_000  # bigger containers (tables, registries) are not searched


def find_survivors(warm_values: Iterable[Any], grew: bool) -> list[dict[str, Any]]:
    """The largest arrays alive beyond warm objects: ``survivor`` records, largest first.

    Called before the collector freezes what the run created, so gc lists it: big tensors
    among it are survivors. Where they are held (library globals) is looked for only then,
    or when the process ``grew`` (arrays gc does not track, such as numpy's)."""
    kinds = _array_types()
    if not kinds:
        return []
    with warnings.catch_warnings():  # deprecated library globals warn when they are read
        warnings.simplefilter("ignore")
        found = _Found(kinds, _warm_pointers(warm_values))
        tensor = getattr(sys.modules.get("torch"), "Tensor", None)
        for obj in gc.get_objects() if tensor is not None else ():
            if found.array(obj):
                found.note(obj, None)
        if found.by_id or grew:
            _name_holders(found)
    return sorted(found.by_id.values(), key=lambda s: -s["bytes"])[:LIMIT]


def _array_types() -> tuple[type, ...]:
    kinds = [getattr(sys.modules.get("torch"), "Tensor", None)]
    kinds.append(getattr(sys.modules.get("numpy"), "ndarray", None))
    return tuple(k for k in kinds if isinstance(k, type))


class _Found:
    """Arrays found so far by id, and which types are arrays (decided once per type)."""

    def __init__(self, kinds: tuple[type, ...], warm: set[int]) -> None:
        self.kinds, self.warm = kinds, warm
        self.by_id: dict[int, dict[str, Any]] = {}
        self.is_array: dict[type, bool] = {}

    def array(self, value: Any) -> bool:
        kind = type(value)
        known = self.is_array.get(kind)
        if known is None:
            known = self.is_array[kind] = issubclass(kind, self.kinds)
        return known

    def note(self, value: Any, where: str | None) -> None:
        entry = self.by_id.get(id(value))
        if entry is not None:  # seen by gc: now we know who holds it
            entry["held_by"] = entry["held_by"] or where
            return
        size, detail, pointer = _describe(value)
        if size >= MIN_BYTES and pointer not in self.warm:
            name = f"{type(value).__module__}.{type(value).__qualname__}"
            self.by_id[id(value)] = {"type": name, "bytes": size, "detail": detail}
            self.by_id[id(value)]["held_by"] = where


def _describe(array: Any) -> tuple[int, str, int]:
    """(bytes, "float32[4096, 1024] cpu", data pointer) of a tensor or an ndarray."""
    shape = ", ".join(str(n) for n in array.shape)
    if hasattr(array, "element_size"):  # torch
        dtype = str(array.dtype).removeprefix("torch.")
        size = array.numel() * array.element_size()
        return size, f"{dtype}[{shape}] {array.device}", array.data_ptr()
    return int(array.nbytes), f"{array.dtype}[{shape}]", array.ctypes.data


def _name_holders(found: _Found) -> None:
    """Library module globals (two levels deep) and ``sys.last_value``'s frames that hold
    arrays. A million values are looked at: names are made only for the ones that match."""
    for name, module in list(sys.modules.items()):
        if not isinstance(module, types.ModuleType) or name.split(".")[0] == "hotswap":
            continue
        for attr, value in list(vars(module).items()):
            if attr.startswith("__"):  # __builtins__, __spec__: the same in every module
                continue
            if found.array(value):
                found.note(value, f"{name}.{attr}")
                continue
            for style, key, item in _inside(value):
                if found.array(item):
                    inner = f"[{key!r:.40}]" if style == "[" else f".{key}"
                    found.note(item, f"{name}.{attr}{inner}")
    last = getattr(sys, "last_value", None)
    tb = last.__traceback__ if last is not None else None
    while tb is not None:
        for local, value in list(tb.tb_frame.f_locals.items()):
            if found.array(value):
                found.note(value, f"sys.last_value ({tb.tb_frame.f_code.co_name}: {local})")
        tb = tb.tb_next


def _inside(value: Any) -> Iterator[tuple[str, Any, Any]]:
    """One level down: a container's items ("[", key, item), an object's attributes (".",
    name, item). Types are read with type(), never isinstance(): a lazy or
    deprecated object must not wake up."""
    kind = type(value)
    try:
        if kind is dict and len(value) <= _CONTAINER_ITEMS:
            for key, item in list(value.items()):
                yield "[", key, item
        elif kind in (list, tuple, set) and len(value) <= _CONTAINER_ITEMS:
            for index, item in enumerate(list(value)):
                yield "[", index, item
        elif kind not in _OPAQUE and not issubclass(kind, type):  # classes hold methods
            attrs = object.__getattribute__(value, "__dict__")
            if type(attrs) in (dict, types.MappingProxyType):
                for attr, item in list(attrs.items()):
                    yield ".", attr, item
    except Exception:  # no __dict__, or items that cannot be listed: nothing to look into
        return


_OPAQUE = (types.ModuleType, types.FunctionType, types.BuiltinFunctionType, types.MethodType)


def _warm_pointers(values: Iterable[Any]) -> set[int]:
    """Data pointers of the tensors warm objects and their snapshots hold."""
    torch = sys.modules.get("torch")
    pointers: set[int] = set()
    if torch is None:
        return pointers
    pending, seen = list(values), set[int]()
    while pending:
        value = pending.pop()
        if id(value) in seen or len(seen) > 1_000_000:
            continue
        seen.add(id(value))
        if issubclass(type(value), torch.Tensor):
            pointers.add(value.data_ptr())
        elif issubclass(type(value), torch.nn.Module):
            pending += list(value.state_dict(keep_vars=True).values())
        elif type(value) is dict:
            pending += list(value.values())
        elif type(value) in (list, tuple):
            pending += list(value)
    return pointers
