"""What ``hotswap status`` shows of a warm object: type, size, device, snapshot memory."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .warm import WarmEntry


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
        "reset": entry.reset,
        "snapshot_bytes": getattr(entry.snapshot, "nbytes", 0),
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
