"""``.hotswap/daemon.log``: created 0600 (it holds run output), capped in size by rotation, and
rejected frames logged at a bounded rate, so nobody can fill the disk by sending garbage.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from .workspace import DAEMON_LOG, state_dir

MAX_LOG_BYTES = 10 * 1024 * 1024  # then daemon.log becomes daemon.log.1 (one kept)
REJECTS_PER_WINDOW = 10
REJECT_WINDOW = 60.0


def log_path(workspace: Path) -> Path:
    return state_dir(workspace) / DAEMON_LOG


def open_log(workspace: Path) -> int:
    """The log's fd for appending, the file readable by its owner only (even if it existed)."""
    path = log_path(workspace)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.fchmod(fd, 0o600)
    return fd


class LogRotation:
    """Rotate the log when it passes ``cap`` bytes, if this process's stderr writes to it (a
    `hotswap serve` in a terminal is left alone). Everything written to fd 1 and 2 follows."""

    def __init__(self, workspace: Path, cap: int = MAX_LOG_BYTES) -> None:
        """Also make the log private if it is our stderr: a client that started us (the
        extension, an older CLI) may have created it with its umask."""
        self.path, self.cap = log_path(workspace), cap
        self.checked = 0.0
        if self._size() is not None:
            os.fchmod(2, 0o600)

    def _size(self) -> int | None:
        """The log's size if this process's stderr writes to it, else None."""
        try:
            ours, there = os.fstat(2), self.path.stat()
        except OSError:
            return None
        return ours.st_size if (ours.st_dev, ours.st_ino) == (there.st_dev, there.st_ino) else None

    def check(self, now: float) -> None:
        if now - self.checked < 1.0:
            return
        self.checked = now
        size = self._size()
        if size is None or size < self.cap:
            return
        os.replace(self.path, self.path.with_name(DAEMON_LOG + ".1"))
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)


class RejectLog:
    """Log at most REJECTS_PER_WINDOW rejected frames per REJECT_WINDOW, then how many more."""

    def __init__(self, log: logging.Logger) -> None:
        self.log = log
        self.window_start, self.logged, self.dropped = 0.0, 0, 0

    def rejected(self, reason: object) -> None:
        now = time.monotonic()
        if now - self.window_start > REJECT_WINDOW:
            if self.dropped:
                self.log.warning("%d more rejected messages not logged", self.dropped)
            self.window_start, self.logged, self.dropped = now, 0, 0
        if self.logged < REJECTS_PER_WINDOW:
            self.logged += 1
            self.log.warning("rejected a message from a client: %s", reason)
        else:
            self.dropped += 1
