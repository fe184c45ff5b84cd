"""What the daemon says about itself: the ``hello`` reply and status's ``daemon`` record."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from . import __version__
from .protocol import FEATURES, PROTOCOL_VERSION
from .sync import sync_policy


def hello_body(workspace: Path, max_file_bytes: int) -> dict[str, Any]:
    return {
        "protocol_version": PROTOCOL_VERSION,
        "version": __version__,
        "features": FEATURES,
        "daemon_pid": os.getpid(),
        "workspace": str(workspace),
        "sync_policy": sync_policy(max_file_bytes),
    }


def status_daemon(workspace: Path, address: str, started: float, stopping: bool) -> dict[str, Any]:
    return {
        "pid": os.getpid(),
        "workspace": str(workspace),
        "address": address,
        "started": started,
        "version": __version__,
        "protocol_version": PROTOCOL_VERSION,
        "stopping": stopping,
    }
