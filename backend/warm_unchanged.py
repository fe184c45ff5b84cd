"""The fast path of a restore: has anything in a snapshot changed at all?

Most runs leave a warm model untouched. Rather than asking each tensor and container in turn
(a few microseconds each, milliseconds for a large model), the state that matters is read
into flat lists and compared with the lists taken after the last restore, mostly in C.
"""

from __future__ import annotations

from typing import Any


class Unchanged:
    """Compares a snapshot's objects, containers and tensors with a baseline, as a whole."""

    def __init__(self, objects: list[Any], containers: list[Any], tensors: list[Any]) -> None:
        self.objects = objects
        self.containers = containers
        self.dicts = [c for c in containers if isinstance(c, dict)]
        self.sequences = [c for c in containers if isinstance(c, list)]
        self.sets = [c for c in containers if isinstance(c, set)]
        self.tensors = [s.tensor for s in tensors]
        self.flags = [s.trained for s in tensors]
        self.baseline: tuple[Any, ...] = ()
        self.rebase()

    def rebase(self) -> None:
        """The state as it is now is the one to compare with (after a restore)."""
        self.baseline = self._measure()

    def holds(self) -> bool:
        try:
            return bool(self._measure() == self.baseline)
        except Exception:  # a tensor compared with another: something changed
            return False

    def _measure(self) -> tuple[Any, ...]:
        ts = self.tensors
        return (
            [type(o) for o in self.objects],
            list(map(len, self.containers)),
            [v for d in self.dicts for v in d.values()],
            [k for d in self.dicts for k in d],
            [v for s in self.sequences for v in s],
            [frozenset(s) for s in self.sets],
            [t._version for t in ts],
            [t.data_ptr() for t in ts],
            [t.dtype for t in ts],
            [t.requires_grad for t in ts],
            [t.grad is None for t in ts],
            [t._backward_hooks for t in ts],
            [t._post_accumulate_grad_hooks for t in ts],
            [f[0] for f in self.flags],
        )
