"""What ``hotswap status`` shows of a warm object: type, size, device, dtype, snapshot memory."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .warm import WarmEntry


def describe_entry(entry: WarmEntry) -> dict[str, Any]:
    params, nbytes, device, dtype = _measure(entry.value)
    return {
        "key": entry.key,
        "type": f"{type(entry.value).__module__}.{type(entry.value).__qualname__}",
        "parameters": params,
        "bytes": nbytes,
        "device": device,
        "dtype": dtype,
        "build_seconds": round(entry.build_seconds, 3),
        "hits": entry.hits,
        "reset": entry.reset,
        "snapshot_bytes": getattr(entry.snapshot, "nbytes", 0),
    }


Measure = tuple["int | None", int, "str | None", "str | None"]


def _measure(value: Any) -> Measure:
    """(parameter count, bytes, device, dtype) of a module, tensor or a shallow container of
    them; device and dtype are "mixed" when its tensors differ."""
    torch = sys.modules.get("torch")
    if torch is not None:
        if isinstance(value, torch.nn.Module):
            params = list(value.parameters())
            tensors = [*params, *value.buffers()]
            nbytes = sum(t.numel() * t.element_size() for t in tensors)
            device = _one({str(t.device) for t in tensors})
            dtype = _one({str(p.dtype) for p in params} or {str(t.dtype) for t in tensors})
            return sum(p.numel() for p in params), nbytes, device, dtype
        if isinstance(value, torch.Tensor):
            size = value.numel() * value.element_size()
            return value.numel(), size, str(value.device), str(value.dtype)
    items: list[Any] = []
    if isinstance(value, dict):
        items = list(value.values())
    elif isinstance(value, (list, tuple)):
        items = list(value)
    if items and torch is not None:
        parts = [_measure(v) for v in items[:64]]
        counted = [p for p in parts if p[0] is not None]
        if counted:
            device = _one({p[2] for p in counted if p[2]})
            dtype = _one({p[3] for p in counted if p[3]})
            return sum(p[0] or 0 for p in counted), sum(p[1] for p in parts), device, dtype
    return None, sys.getsizeof(value), None, None


def _one(values: set[str]) -> str | None:
    """The value all share, "mixed" when they differ, None when there is none."""
    return values.pop() if len(values) == 1 else ("mixed" if values else None)
