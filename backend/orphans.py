"""Worker pids recorded in ``.hotswap/workers.json``, so a daemon that starts can end the workers
a killed predecessor left behind (they hold warm objects and, on a GPU box, its memory).

A pid is only killed if the process still is that worker: same start time, and a command line
of ``hotswap.runner`` for this workspace. A pid the kernel gave to another process is left alone.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import time
from collections.abc import Iterable
from pathlib import Path

from .workspace import proc_cmdline, proc_stat, state_dir, write_private_json

log = logging.getLogger("hotswap.daemon")

WORKERS_FILE = "workers.json"


def start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (field 22 of /proc/PID/stat)."""
    try:
        return int((proc_stat(pid) or [])[19])
    except (IndexError, ValueError):
        return None


def is_worker_of(pid: int, workspace: Path) -> bool:
    argv = proc_cmdline(pid) or []
    return "hotswap.runner" in argv and str(workspace) in argv


def record_workers(workspace: Path, pids: Iterable[int]) -> None:
    """Write the pids (with their start times) of the workers now alive."""
    entries = [{"pid": pid, "start": start_time(pid)} for pid in pids]
    with contextlib.suppress(OSError):
        write_private_json(state_dir(workspace) / WORKERS_FILE, {"workers": entries})


def end_orphans(workspace: Path, timeout: float = 5.0) -> list[int]:
    """Kill the recorded workers that are still ours and wait until they are gone."""
    try:
        data = json.loads((state_dir(workspace) / WORKERS_FILE).read_text())
        entries = list(data["workers"])
    except (OSError, ValueError, KeyError, TypeError):
        return []
    killed = []
    for entry in entries:
        pid, start = entry.get("pid"), entry.get("start")
        if not isinstance(pid, int) or pid <= 0 or pid == os.getpid():
            continue
        if start_time(pid) == start and is_worker_of(pid, workspace):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
                log.warning("ended worker pid %d left by a previous daemon", pid)
    deadline = time.monotonic() + timeout
    while any(start_time(pid) is not None for pid in killed) and time.monotonic() < deadline:
        time.sleep(0.02)  # a zombie still counts until its parent (init) reaps it
    return killed
