"""The daemon's half of workspace sync: applying diffs, chunked transfers (path safety is in
sync_paths.py, the states of queued runs in sync_pins.py).

In place (the daemon sees the client's own folder) files are verified, never written; in
mirror mode a copy is kept and runs execute from it. The shared scanning is in sync.py.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from .protocol import ProtocolError, ResyncNeeded, UnsafePathError, WriteFailed
from .sync import DEFAULT_MAX_FILE_BYTES, Digest, scan, sha256_bytes, sha256_file
from .sync_paths import UnsafePath, check_relative_path, resolve_inside
from .sync_pins import PinnedStates

__all__ = [
    "SyncMismatch",
    "Syncer",
    "UnsafePath",
    "WorkspaceState",
    "check_relative_path",
    "resolve_inside",
]

STAGING_TTL_SECONDS = 600.0


# -- applying a diff (daemon side) -----------------------------------------------------


class SyncMismatch(Exception):
    """The diff does not apply to the daemon's state: the client must resync."""


class WorkspaceState:
    """The daemon's acknowledged view of a workspace: {path: sha256} and its digest.

    ``mirror`` keeps a copy under ``root`` and writes it; in place, ``root`` is the user's own
    folder and is only checked against what the client sent, never written.
    """

    def __init__(self, root: Path, mirror: bool) -> None:
        self.root = root
        self.mirror = mirror
        self.files: dict[str, str] = {}
        self.digest = Digest()
        self.dirty = False
        self.before_write: Callable[[WorkspaceState, list[str]], None] | None = None
        if mirror:
            root.mkdir(parents=True, exist_ok=True)
            self.adopt_disk(1 << 62, self._load_record())

    def adopt_disk(self, max_file_bytes: int, record: dict[str, str] | None = None) -> None:
        """What is on disk is the state: a restarted daemon keeps its mirror, and in place
        the client's folder is ours to read, so only files that differ need to travel.

        With a mirror's ``record`` (the synced files it last saved), only recorded files whose
        content is intact count: files a script wrote into the mirror are not the client's to
        delete, and a record that fell behind only costs a resend.
        """
        found, _ = scan(self.root, max_file_bytes=max_file_bytes)
        for path, entry in found.items():
            if record is None or record.get(path) == entry.sha256:
                self.files[path] = entry.sha256
                self.digest.add(path, entry.sha256)

    @property
    def _record_path(self) -> Path:
        return self.root / ".hotswap" / "mirror-files.json"

    def _load_record(self) -> dict[str, str] | None:
        try:
            record = json.loads(self._record_path.read_text())
        except (OSError, ValueError):
            return None
        return record if isinstance(record, dict) else None

    def save_record(self) -> None:
        """Persist the mirror's synced file list (called off the sync's hot path). A full
        disk leaves it for the next call: the record only spares a restarted daemon resends."""
        if not self.mirror or not self.dirty:
            return
        tmp = self._record_path.with_suffix(".tmp")
        try:
            self._record_path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps(self.files, separators=(",", ":")))
            os.replace(tmp, self._record_path)
        except OSError:
            tmp.unlink(missing_ok=True)
            return
        self.dirty = False

    def state(self) -> str:
        return self.digest.hex()

    def apply(
        self, files: list[dict[str, Any]], deleted: Iterable[str], target: str
    ) -> dict[str, str]:
        """Apply all or nothing; return the new {path: sha}. Raises UnsafePath, SyncMismatch."""
        deleted = list(deleted)
        staged = self._check(files, deleted, target)
        if self.mirror:
            if self.before_write is not None:  # what queued runs' states need is kept
                self.before_write(self, [*staged, *deleted])
            self._write(files, deleted)
        else:
            self._verify_on_disk(files, deleted)
        self._commit(staged, deleted)
        return staged

    def _check(
        self, files: list[dict[str, Any]], deleted: list[str], target: str
    ) -> dict[str, str]:
        for item in files:  # every path first: no hashing for a diff refused anyway
            if not isinstance(item, dict):
                raise UnsafePath(f"{item!r:.60}: each file must be a map of path, sha256, data")
            check_relative_path(item.get("path"))
        for path in deleted:
            check_relative_path(path)
        staged: dict[str, str] = {}
        for item in files:
            path = item["path"]
            data, sha = item.get("data"), item.get("sha256")
            if not isinstance(sha, str):
                raise SyncMismatch(f"{path}: no sha256")
            if (data is not None or self.mirror) and (
                not isinstance(data, bytes) or sha256_bytes(data) != sha
            ):
                raise SyncMismatch(f"{path}: content does not match its sha256 (damaged message)")
            if self.mirror:
                resolve_inside(self.root, path, self._folder_goes(path, deleted))
            staged[path] = str(sha)
        for path in deleted:
            if self.mirror:
                resolve_inside(self.root, path)
        _check_no_file_as_folder(staged, self.files, set(deleted))
        digest = Digest()
        digest.value = self.digest.value
        for path in deleted:
            if path in self.files:
                digest.remove(path, self.files[path])
        for path, sha in staged.items():
            if path in self.files and path not in deleted:
                digest.remove(path, self.files[path])
            digest.add(path, sha)
        if digest.hex() != target:
            raise SyncMismatch(
                "after this diff the workspace would not match the client's manifest"
            )
        return staged

    def _folder_goes(self, path: str, deleted: list[str]) -> bool:
        """True if the diff deletes every synced file under the folder ``path``."""
        inside = [p for p in self.files if p.startswith(path + "/")]
        return bool(inside) and set(inside) <= set(deleted)

    def _write(self, files: list[dict[str, Any]], deleted: list[str]) -> None:
        """Write the diff (mirror_write.py). If placing the staged files fails, the mirror
        is read again, so its state tells the truth and the next sync sends what is missing."""
        from .mirror_write import PlaceFailed, write_diff  # here: the CLI imports this module

        try:
            write_diff(self.root, files, deleted)
        except PlaceFailed as exc:
            old, self.files, self.digest, self.dirty = self.files, {}, Digest(), True
            self.adopt_disk(1 << 62, old)
            raise WriteFailed(
                f"sync: the daemon could not finish writing {self.root}: {exc}; it was read "
                "again, and the next sync sends what is missing"
            ) from None

    def _verify_on_disk(self, files: list[dict[str, Any]], deleted: list[str]) -> None:
        for item in files:
            on_disk = self.root / item["path"]
            try:
                sha = sha256_file(on_disk)
            except OSError:
                sha = ""
            if sha != item["sha256"]:
                raise SyncMismatch(
                    f"{item['path']}: the file on the daemon's disk differs from what the "
                    "client sent (saved since? another machine?); save and run again"
                )
        for path in deleted:
            if (self.root / path).is_file():
                raise SyncMismatch(
                    f"{path}: the client deleted it but it exists on the daemon's disk"
                )

    def _commit(self, staged: dict[str, str], deleted: list[str]) -> None:
        self.dirty = True
        for path in deleted:
            sha = self.files.pop(path, None)
            if sha is not None:
                self.digest.remove(path, sha)
        for path, sha in staged.items():
            old = self.files.get(path)
            if old is not None:
                self.digest.remove(path, old)
            self.files[path] = sha
            self.digest.add(path, sha)


def _check_no_file_as_folder(
    staged: dict[str, str], files: dict[str, str], deleted: set[str]
) -> None:
    """A new file's folders must not be files that stay: caught here, before anything is
    written, rather than half-way through the writes."""
    for path in staged:
        parts = path.split("/")
        for depth in range(1, len(parts)):
            parent = "/".join(parts[:depth])
            if parent in staged or (parent in files and parent not in deleted):
                raise UnsafePath(f"{path!r}: {parent!r} is a file, not a folder")


# -- the daemon's sync service ---------------------------------------------------------


class Syncer:
    """Chooses in-place or mirror mode, stages chunked diffs, and maps run paths.

    In place (the daemon sees the client's own folder): files are verified, never written.
    Mirror (``--mirror DIR``, or a client folder that is not the daemon's workspace): a copy
    is kept under the mirror root and runs execute from it.
    """

    def __init__(
        self,
        workspace: Path,
        mirror_root: Path | None,
        max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
    ) -> None:
        self.workspace = workspace
        self.mirror_root = mirror_root
        self.max_file_bytes = max_file_bytes
        self._states: dict[bool, WorkspaceState] = {}
        self._staging: dict[str, dict[str, Any]] = {}
        self.pins = PinnedStates()

    def is_mirror(self, client_root: str) -> bool:
        return self.mirror_root is not None or Path(client_root) != self.workspace

    def state_for(self, client_root: str) -> WorkspaceState:
        mirror = self.is_mirror(client_root)
        if mirror not in self._states:
            root = (self.mirror_root or self.workspace / ".hotswap" / "mirror") if mirror else None
            self._states[mirror] = WorkspaceState(root or self.workspace, mirror)
            self._states[mirror].before_write = self.pins.keep_replaced
            if not mirror:
                self._states[mirror].adopt_disk(self.max_file_bytes)
        return self._states[mirror]

    def manifest(self, client_root: str) -> dict[str, Any]:
        state = self.state_for(client_root)
        return {
            "state": state.state(),
            "mode": "mirror" if state.mirror else "in_place",
            "files": dict(state.files),
            "daemon_root": str(state.root),
        }

    def sync(self, body: dict[str, Any]) -> dict[str, Any] | None:
        """A ``sync`` request: its reply body once the final chunk is applied, else None.

        Nothing changes on a refusal (``resync`` or ``unsafe_path``)."""
        try:
            result = self.receive(body)
        except SyncMismatch as exc:
            self.abandon(body["transaction"])
            hint = "send the full manifest (the client does this)"
            raise ResyncNeeded(str(exc), hint=hint) from None
        except UnsafePath as exc:
            self.abandon(body["transaction"])
            raise UnsafePathError(f"sync rejected, nothing was changed: {exc}") from None
        return result if result is None else {**result, "applied": True}

    def progress(self, body: dict[str, Any]) -> dict[str, Any]:
        """The ``sync_progress`` event after a chunk of ``body``'s transaction."""
        files = self.staged(body["transaction"])["files"]
        return {
            "transaction": body["transaction"],
            "files_done": len(files),
            "files_total": body.get("total_files", len(files)),
            "bytes_done": sum(len(f.get("data") or b"") for f in files),
            "bytes_total": body.get("total_bytes", 0),
        }

    def receive(self, body: dict[str, Any]) -> dict[str, Any] | None:
        """Stage one chunk; on the final one apply the whole diff. None until then."""
        state = self.state_for(body["root"])
        if body["base"] != state.state():
            self._staging.pop(body["transaction"], None)
            raise SyncMismatch(
                "the daemon's workspace state is not the base this diff was made against"
            )
        self._drop_stale_staging()
        staged = self._staging.setdefault(
            body["transaction"], {"files": [], "deleted": [], "started": time.monotonic()}
        )
        staged["files"].extend(body["files"])
        staged["deleted"].extend(body["deleted"])
        if not body["final"]:
            return None
        del self._staging[body["transaction"]]
        state.apply(staged["files"], staged["deleted"], body["target"])
        self._staging.clear()  # every other transfer was based on the state just replaced
        return {"state": state.state(), "mode": "mirror" if state.mirror else "in_place"}

    def _drop_stale_staging(self) -> None:
        """Forget transfers whose client went quiet (it died mid-sync): their chunks are memory."""
        now = time.monotonic()
        for transaction, staged in list(self._staging.items()):
            if now - staged["started"] > STAGING_TTL_SECONDS:
                del self._staging[transaction]

    def save_records(self) -> None:
        for state in self._states.values():
            state.save_record()

    def staged(self, transaction: str) -> dict[str, Any]:
        return self._staging.get(transaction, {"files": [], "deleted": []})

    def abandon(self, transaction: str) -> None:
        self._staging.pop(transaction, None)

    def check_run(
        self, client_root: str | None, state: str | None, run_id: str = ""
    ) -> tuple[str, str] | None:
        """Refuse a run whose ``state`` is not the workspace's, else pin that state for when
        the run starts; return its (daemon, client) path map in mirror mode."""
        if state is not None:
            if client_root is None:
                raise ProtocolError("run: a state needs the client's root")
            if state != self.state_for(client_root).state():
                raise ResyncNeeded(
                    "run: the daemon's workspace is not in the state this run names",
                    hint="sync the workspace again (the client does this by itself)",
                )
            self.pins.pin(run_id, self.state_for(client_root))
        if client_root is None or not self.is_mirror(client_root):
            return None
        return str(self.state_for(client_root).root), client_root

    def prepare(self, run_id: str) -> str | None:
        """A run starts: put the workspace in the state it named; None, or why it cannot."""
        pin = self.pins.pins.get(run_id)
        if pin is None:
            return None
        why = self.pins.restore(run_id, self._states[pin.files is not None])
        self.pins.release(run_id)
        return why

    def release(self, run_id: str) -> None:
        """A run ended (or was dropped) before it started: forget its state."""
        self.pins.release(run_id)
