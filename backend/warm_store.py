"""Where a snapshot keeps a tensor's values: the model's own safetensors file when the tensor
still equals it there (read back memory-mapped, no second copy), else a host copy (pinned for
GPU tensors, so copying back is fast)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any


class CannotRestore(Exception):
    """The object cannot be put back as its factory built it; the entry must be rebuilt."""


def checksum(tensor: Any) -> int:
    """A bit-sensitive sum over the tensor's bytes, as 64-bit words when they fit (integer sums
    wrap around, so the result does not depend on the order torch adds in)."""
    torch = sys.modules["torch"]
    flat = tensor.detach().contiguous().reshape(-1).view(torch.uint8)
    for dtype, size in ((torch.int64, 8), (torch.int32, 4)):
        if flat.numel() % size == 0:
            try:
                return int(flat.view(dtype).sum(dtype=torch.int64).item())
            except RuntimeError:  # storage offset not aligned to the word size
                continue
    return int(flat.sum(dtype=torch.int64).item())


class HostCopy:
    __slots__ = ("tensor",)

    def __init__(self, tensor: Any) -> None:
        torch = sys.modules["torch"]
        t = tensor.detach()
        if t.device.type == "meta":
            raise CannotRestore("it holds tensors on the meta device")
        if t.device.type == "cpu":
            self.tensor = t.clone()
        else:
            pin = t.device.type == "cuda" and torch.cuda.is_available()
            self.tensor = torch.empty_like(t, device="cpu", pin_memory=pin)
            self.tensor.copy_(t)

    @property
    def nbytes(self) -> int:
        return int(self.tensor.numel() * self.tensor.element_size())

    def values(self) -> Any:
        return self.tensor


class FileCopy:
    """A tensor of a safetensors file, read again only when a run changed it."""

    __slots__ = ("file", "name", "stamp")

    nbytes = 0

    def __init__(self, file: str, name: str) -> None:
        self.file, self.name, self.stamp = file, name, _stamp(file)

    def values(self) -> Any:
        if _stamp(self.file) != self.stamp:
            raise CannotRestore(f"{self.file} changed on disk since it was loaded")
        return _opened(self.file, self.stamp).get_tensor(self.name)


_open_files: dict[str, tuple[tuple[int, int], Any]] = {}


def close_files() -> None:
    """Unmap the files a restore read (a deleted checkpoint must not stay mapped)."""
    _open_files.clear()


def _opened(file: str, stamp: tuple[int, int]) -> Any:
    """The file, memory-mapped once (re-reading its header for every tensor costs more than
    the tensor)."""
    known = _open_files.get(file)
    if known is None or known[0] != stamp:
        from safetensors import safe_open

        known = _open_files[file] = (stamp, safe_open(file, framework="pt"))
    return known[1]


def _stamp(file: str) -> tuple[int, int]:
    try:
        stat = os.stat(file)
    except OSError as exc:
        raise CannotRestore(f"{file} is gone ({exc.strerror})") from None
    return stat.st_size, stat.st_mtime_ns


def file_copies(model: Any) -> dict[int, FileCopy]:
    """id(tensor) → its place in the model's local safetensors files, for the tensors that
    hold exactly the file's values (checked once, here)."""
    folder = getattr(model, "name_or_path", None)
    if not isinstance(folder, str) or not folder or not os.path.isdir(folder):
        return {}
    try:
        from safetensors import safe_open
    except ImportError:
        return {}
    tensors = dict(model.state_dict(keep_vars=True))
    found: dict[int, FileCopy] = {}
    for file in sorted(Path(folder).glob("*.safetensors")):
        try:
            with safe_open(str(file), framework="pt") as weights:
                for name in weights.keys():  # noqa: SIM118 (not a dict)
                    tensor = tensors.get(name)
                    fresh = tensor is not None and id(tensor) not in found
                    if fresh and _same(weights.get_tensor(name), tensor):
                        found[id(tensor)] = FileCopy(str(file), name)
        except (OSError, RuntimeError, ValueError):
            continue  # an unreadable file: those tensors get host copies
    return found


def _same(stored: Any, tensor: Any) -> bool:
    torch = sys.modules["torch"]
    t = tensor.detach()
    return bool(
        t.device.type != "meta"
        and stored.dtype == t.dtype
        and stored.shape == t.shape
        and torch.equal(stored, t.cpu())
    )
