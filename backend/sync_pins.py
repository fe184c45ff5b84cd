"""The workspace states of runs waiting in the queue: a run executes exactly the state it named.

A run's state is pinned when the daemon accepts it. If another client syncs meanwhile, the
contents that sync replaces are kept while a pinned state needs them, and the mirror is put
back to the run's state when the run starts; in place (the user's own folder, never written),
or when a file is missing, the run is refused and its client syncs and submits it again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .sync import sha256_bytes

if TYPE_CHECKING:
    from .sync_daemon import WorkspaceState

log = logging.getLogger("hotswap.daemon")
MAX_PINS = 256

MOVED_ON = (
    "the workspace was synced to another state while this run waited in the queue, and the "
    "daemon cannot put this run's files back"
)


@dataclass
class Pin:
    state: str
    files: dict[str, str] | None  # path → sha256 in mirror mode; None in place


class PinnedStates:
    """Pins by run id, and the file contents (by sha256) that pins need and syncs replaced."""

    def __init__(self) -> None:
        self.pins: dict[str, Pin] = {}
        self.kept: dict[str, bytes] = {}

    def pin(self, run_id: str, workspace: WorkspaceState) -> None:
        files = dict(workspace.files) if workspace.mirror else None
        self.pins[run_id] = Pin(workspace.state(), files)
        while len(self.pins) > MAX_PINS:  # a run refused after its pin (a bad cwd) never ends
            self.release(next(iter(self.pins)))  # the oldest: if still queued, it resyncs

    def release(self, run_id: str) -> None:
        """The run started or ended: its state needs nothing more."""
        if self.pins.pop(run_id, None) is not None and self.kept:
            needed = self._needed()
            self.kept = {sha: data for sha, data in self.kept.items() if sha in needed}

    def keep_replaced(self, workspace: WorkspaceState, paths: list[str]) -> None:
        """Before a mirror write replaces or deletes ``paths``: keep what pinned states need."""
        if not self.pins:
            return
        needed = self._needed()
        for path in paths:
            sha = workspace.files.get(path)
            if sha in needed and sha not in self.kept:
                try:
                    data = (workspace.root / path).read_bytes()
                except OSError:
                    continue
                if sha256_bytes(data) == sha:
                    self.kept[sha] = data

    def restore(self, run_id: str, workspace: WorkspaceState) -> str | None:
        """Put ``workspace`` in the state run ``run_id`` named, if it moved on; None when it is
        in that state, else why the run cannot start (it must resync)."""
        pin = self.pins.get(run_id)
        if pin is None or pin.state == workspace.state():
            return None
        if pin.files is None:
            return f"{MOVED_ON} (it never writes the folder it serves in place)"
        files, deleted = self._diff(pin.files, workspace)
        if files is None:
            return MOVED_ON
        try:
            workspace.apply(files, deleted, pin.state)
        except Exception as exc:  # the mirror cannot be written: refuse rather than run wrong files
            log.warning("cannot put back the state of run %s: %s", run_id, exc)
            return MOVED_ON
        log.info("put back the workspace state of run %s (%d files)", run_id, len(files))
        return None

    def _diff(
        self, target: dict[str, str], workspace: WorkspaceState
    ) -> tuple[list[dict[str, object]] | None, list[str]]:
        """The sync diff from the mirror's files to ``target``; None if contents are missing."""
        present = {sha: path for path, sha in workspace.files.items()}
        files: list[dict[str, object]] = []
        for path, sha in target.items():
            if workspace.files.get(path) == sha:
                continue
            data = self.kept.get(sha)
            if data is None and sha in present:
                data = (workspace.root / present[sha]).read_bytes()
            if data is None or sha256_bytes(data) != sha:
                return None, []
            files.append({"path": path, "sha256": sha, "data": data})
        return files, [path for path in workspace.files if path not in target]

    def _needed(self) -> set[str]:
        return {sha for pin in self.pins.values() for sha in (pin.files or {}).values()}
