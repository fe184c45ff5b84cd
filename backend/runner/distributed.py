"""A rank worker's warm process group: torch.distributed's default group, initialised by the
first run and handed to every later run that asks for the same one.

``init_process_group`` really initialises once; a later run's call with the same backend,
world size and rank returns at once (``is_initialized()`` stays true, the default group is the
warm one). ``destroy_process_group()`` of the default group does nothing: torch hangs when a
process destroys its default group and makes a new one. Subgroups (``new_group``) are the run's
own and are destroyed for real, when the run asks.
"""

from __future__ import annotations

import functools
import io
import os
import sys
from typing import Any

MISMATCH = "this run asked for another process group than the warm one"


class WarmGroup:
    """What the rank worker's warm default group is, and whether a run asked for another."""

    def __init__(self) -> None:
        self.restart: str | None = None  # set when the worker must be replaced after the run

    def install(self) -> None:
        """Import torch.distributed and put our two functions in place of torch's, in every
        module that exports them (the isolation copies namespaces later, patch included)."""
        import torch.distributed as dist
        from torch.distributed import distributed_c10d as c10d

        init = _warm_init(self, c10d.init_process_group, c10d)
        destroy = _warm_destroy(c10d.destroy_process_group, c10d)
        for module in (dist, c10d):
            module.init_process_group = init  # type: ignore[attr-defined]
            module.destroy_process_group = destroy  # type: ignore[attr-defined]

    def after_run(self) -> str | None:
        """Why the worker must restart after this run (then the daemon restarts every rank)."""
        reason, self.restart = self.restart, None
        return reason


def _wanted(backend: Any, world_size: int, rank: int) -> tuple[str | None, int, int]:
    """The group a call asks for: explicit arguments, else torchrun's environment."""
    size = world_size if world_size != -1 else int(os.environ.get("WORLD_SIZE", "-1"))
    me = rank if rank != -1 else int(os.environ.get("RANK", "-1"))
    return (str(backend).lower() if backend else None), size, me


def _warm_init(group: WarmGroup, original: Any, c10d: Any) -> Any:
    @functools.wraps(original)
    def init_process_group(
        backend: Any = None,
        init_method: Any = None,
        timeout: Any = None,
        world_size: int = -1,
        rank: int = -1,
        *args: Any,
        **kwargs: Any,
    ) -> None:
        if not c10d.is_initialized():
            original(backend, init_method, timeout, world_size, rank, *args, **kwargs)
            return
        want_backend, want_size, want_rank = _wanted(backend, world_size, rank)
        have = (c10d.get_backend(), c10d.get_world_size(), c10d.get_rank())
        same_backend = want_backend is None or want_backend == str(have[0]).lower()
        if same_backend and (want_size, want_rank) == have[1:]:
            sys.excepthook = _rank_excepthook(sys.excepthook, have[2])  # as torch's init does
            return  # the warm group: nothing more to do
        group.restart = MISMATCH
        raise RuntimeError(
            f"hotswap: this rank's process group is warm as (backend {have[0]}, world size "
            f"{have[1]}, rank {have[2]}) and this run asks for (backend {want_backend}, world "
            f"size {want_size}, rank {want_rank}); a process cannot make a second default "
            "group, so the rank workers restart after this run and the next run gets a fresh "
            "one (set --nproc-per-node to change the world size)"
        )

    return init_process_group


def _rank_excepthook(old_hook: Any, rank: int) -> Any:
    """What torch's init_process_group installs (and the run's end took back): uncaught
    errors printed with every line prefixed ``[rankN]: ``."""

    def _distributed_excepthook(*args: Any) -> None:
        old_stderr, sys.stderr = sys.stderr, io.StringIO()
        try:
            old_hook(*args)
        finally:
            buf, sys.stderr = sys.stderr, old_stderr
        lines = buf.getvalue().split("\n")
        sys.stderr.write("\n".join(f"[rank{rank}]: {s}" if s else "" for s in lines))
        sys.stderr.flush()

    return _distributed_excepthook


def _warm_destroy(original: Any, c10d: Any) -> Any:
    @functools.wraps(original)
    def destroy_process_group(group: Any = None) -> None:
        if group is None or group is c10d.GroupMember.WORLD:
            return  # the warm default group outlives the run
        original(group)

    return destroy_process_group


def collectives() -> int | None:
    """How many collectives the warm default group has run (every rank must agree after a
    run, or their next collectives would pair up wrongly), or None if there is none."""
    dist = sys.modules.get("torch.distributed")
    if dist is None or not dist.is_available() or not dist.is_initialized():
        return None
    default = dist.distributed_c10d._get_default_group()
    try:
        return int(default._get_sequence_number_for_group())
    except (AttributeError, RuntimeError):
        return None


def use_local_device() -> None:
    """With GPUs, each rank's current CUDA device is its LOCAL_RANK's (modulo the count), as
    scripts under torchrun expect before they call set_device themselves."""
    import torch

    if torch.cuda.is_available() and torch.cuda.device_count() > 0:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local % torch.cuda.device_count())
