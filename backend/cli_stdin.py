"""The CLI's own stdin, read in a thread: what it reads is sent on to the run as ``stdin``
requests (the main loop wakes on ``wake_r``)."""

from __future__ import annotations

import os
import queue
import sys
import threading


class StdinForwarder:
    """Reads our stdin in a thread; the main loop sends what it read as ``stdin`` requests."""

    def __init__(self) -> None:
        self.chunks: queue.Queue[tuple[bytes, bool]] = queue.Queue()
        self.wake_r, self._wake_w = os.pipe()
        threading.Thread(target=self._read, name="stdin", daemon=True).start()

    def _read(self) -> None:
        try:
            fd = sys.stdin.fileno()
        except (AttributeError, ValueError, OSError):
            fd = -1
        while True:
            try:
                data = os.read(fd, 65536) if fd >= 0 else b""
            except OSError:
                data = b""
            self.chunks.put((data, not data))
            os.write(self._wake_w, b"x")
            if not data:
                return
