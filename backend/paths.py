"""Path mapping, once: client paths into the daemon's mirror and back, as path_mapping records.

In mirror mode the daemon runs a copy of the client's workspace kept elsewhere; every path a
run shows the user (tracebacks, debugger frames) is mapped back to the client's own folder.
"""

from __future__ import annotations

import os
from typing import Any

HOTSWAP_DIR = os.path.dirname(os.path.abspath(__file__))
"""The hotswap package's folder: frames from files under it are ours, not the user's."""

PathMap = tuple[str, str]
"""(daemon root, client root) of a mirrored workspace."""


def map_prefix(path: str, source: str, target: str) -> str:
    """``path`` with its ``source`` root replaced by ``target`` (unchanged if outside it)."""
    if path == source:
        return target
    if path.startswith(source.rstrip("/") + "/"):
        return target.rstrip("/") + path[len(source.rstrip("/")) :]
    return path


def path_mappings(path_map: PathMap | None) -> list[dict[str, str]]:
    """The ``path_mapping`` records a client or debugger needs: empty unless mirrored."""
    if path_map is None:
        return []
    daemon_root, client_root = path_map
    return [{"localRoot": client_root, "remoteRoot": daemon_root}]


def map_run_into_mirror(fields: dict[str, Any], path_map: PathMap) -> dict[str, Any]:
    """A run's entry, cwd, PWD and PYTHONPATH moved from the client's root into the mirror."""
    daemon_root, client_root = path_map

    def to_mirror(path: str) -> str:
        return map_prefix(path, client_root, daemon_root)

    env = dict(fields["env"])
    if "PWD" in env:
        env["PWD"] = to_mirror(env["PWD"])
    if env.get("PYTHONPATH"):
        env["PYTHONPATH"] = os.pathsep.join(map(to_mirror, env["PYTHONPATH"].split(os.pathsep)))
    entry = fields["entry"]
    return {
        **fields,
        "entry": to_mirror(entry) if os.path.isabs(entry) else entry,
        "cwd": to_mirror(fields["cwd"]),
        "env": env,
        "workspace": daemon_root,
        "path_map": [daemon_root, client_root],
    }


class StreamMapper:
    """A run's stderr bytes with the mirror's root shown as the client's, by the rule of
    tracebacks (``map_prefix``: the root followed by ``/``), so that ``traceback.print_exc()``,
    ``logging.exception`` and ``warnings.warn`` read in the editor's terms. A root split over
    two writes is held back until the next one, or ``flush``."""

    def __init__(self, path_map: PathMap) -> None:
        daemon_root, client_root = path_map
        self.source = (daemon_root.rstrip("/") + "/").encode()
        self.target = (client_root.rstrip("/") + "/").encode()
        self.held = b""

    def feed(self, data: bytes) -> bytes:
        """What can be shown of ``data`` now, mapped."""
        data = self.held + data
        last = data.rfind(self.source)
        after = last + len(self.source) if last >= 0 else 0
        cut = len(data) - _partial_match(data[after:], self.source)
        self.held = data[cut:]
        return data[:cut].replace(self.source, self.target)

    def flush(self) -> bytes:
        """What is held back (the start of a root that never came): as it was written."""
        held, self.held = self.held, b""
        return held


def _partial_match(tail: bytes, pattern: bytes) -> int:
    """The length of the longest end of ``tail`` that begins ``pattern`` (shorter than it)."""
    for size in range(min(len(tail), len(pattern) - 1), 0, -1):
        if tail.endswith(pattern[:size]):
            return size
    return 0
