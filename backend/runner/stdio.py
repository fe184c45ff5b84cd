"""The worker's own output pipes to the daemon, kept on spare descriptors, so that fds 1 and 2
can be pointed back at them after a run that closed or redirected them."""

from __future__ import annotations

import os


def _identity(fd: int) -> tuple[int, int] | None:
    try:
        st = os.fstat(fd)
    except OSError:
        return None
    return st.st_dev, st.st_ino


class WorkerPipes:
    def __init__(self) -> None:
        # os.dup's copies are not inherited by the run's subprocesses.
        self._spare = {fd: os.dup(fd) for fd in (1, 2)}
        self._identity = {fd: _identity(fd) for fd in (1, 2)}

    def put_back(self) -> str | None:
        """Point fds 1 and 2 at the daemon's pipes again; a reason if that cannot be done."""
        for fd, spare in self._spare.items():
            if _identity(spare) != self._identity[fd]:
                return f"the run closed the worker's own output pipe (descriptor {spare})"
            if _identity(fd) != self._identity[fd]:
                os.dup2(spare, fd)
        return None
