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
