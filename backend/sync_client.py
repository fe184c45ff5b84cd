"""The client half of workspace sync: send the daemon what changed since it last acknowledged,
following the daemon's sync_policy; and ``sync_then_run``, the one way a Python client runs.

Used by the CLI; the extension implements the same steps in TypeScript (docs/protocol.md).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .client import DaemonClient, DaemonError
from .protocol import new_id
from .sync import (
    FileEntry,
    Skipped,
    chunk_paths,
    digest_of,
    plan_diff,
    scan,
    sha256_bytes,
)
from .workspace import state_dir, write_private_json

Progress = Callable[[int, int, int, int], None]  # bytes done, bytes total, files done, total


class SyncCache:
    """What this client last hashed and what the daemon last acknowledged, kept on disk."""

    def __init__(self, path: Path, daemon: str) -> None:
        self.path, self.daemon = path, daemon
        self.entries: dict[str, FileEntry] = {}
        self.acked: dict[str, str] | None = None
        self.state: str | None = None
        self.mode = ""
        self._load()

    def _load(self) -> None:
        try:
            data = json.loads(self.path.read_text())
            self.entries = {p: FileEntry(*e) for p, e in data["entries"].items()}
            if data.get("daemon") == self.daemon:
                self.acked, self.state, self.mode = data["acked"], data["state"], data["mode"]
        except (OSError, ValueError, KeyError, TypeError):
            pass

    def save(self) -> None:
        write_private_json(
            self.path,
            {
                "daemon": self.daemon,
                "entries": {p: list(e) for p, e in self.entries.items()},
                "acked": self.acked,
                "state": self.state,
                "mode": self.mode,
            },
            compact=True,
        )


def daemon_identity(client: DaemonClient) -> str:
    c = client.connection
    return f"{c['address']}|{c['pid']}|{c.get('started', '')}"


def sync_then_run(
    client: DaemonClient,
    root: Path,
    run: dict[str, Any],
    on_progress: Progress | None = None,
    on_skip: Callable[[Skipped], None] | None = None,
) -> dict[str, Any]:
    """Sync ``root``, then send the ``run`` request naming that state; return the run_reply
    body. On ``resync`` (another client synced in between), sync again from the daemon's
    manifest and send the run once more, once."""
    for attempt in (1, 2):
        state = sync_workspace(client, root, on_progress, on_skip, resync=attempt == 2)
        try:
            return client.request("run", {**run, "root": str(root), "state": state})["body"]
        except DaemonError as exc:
            if exc.ename != "resync" or attempt == 2:
                raise
    raise AssertionError("unreachable")


def sync_workspace(
    client: DaemonClient,
    root: Path,
    on_progress: Progress | None = None,
    on_skip: Callable[[Skipped], None] | None = None,
    resync: bool = False,
    on_reply: Callable[[dict[str, Any]], None] | None = None,
) -> str:
    """Bring the daemon to this workspace's saved state; return that state's digest.

    ``resync`` asks for the daemon's manifest first: our acknowledged state may be stale
    even when nothing changed here (another client synced since). ``on_reply`` sees each
    sync_reply body (the bench reads its ``elapsed_ms``).
    """
    policy = client.sync_policy()
    cache = SyncCache(state_dir(root) / "sync-client.json", daemon_identity(client))
    files, skipped = scan(root, cache.entries, policy["max_file_bytes"])
    before = (dict(cache.entries), cache.acked, cache.state)
    cache.entries = files
    if resync or cache.acked is None or cache.state is None:
        _fetch_manifest(client, root, cache)
    if on_skip is not None and cache.mode != "in_place":  # in place, nothing needs to travel
        for item in skipped:
            on_skip(item)
    chunk_bytes = policy["chunk_bytes"]
    try:
        _push(client, root, files, cache, chunk_bytes, on_progress, on_reply)
    except DaemonError as exc:
        if exc.ename != "resync":
            raise
        _fetch_manifest(client, root, cache)  # lost message, restarted daemon, other client
        _push(client, root, files, cache, chunk_bytes, on_progress, on_reply)
    if (cache.entries, cache.acked, cache.state) != before:
        cache.save()
    assert cache.state is not None
    return cache.state


def _fetch_manifest(client: DaemonClient, root: Path, cache: SyncCache) -> None:
    body = client.request("manifest", {"root": str(root)}, timeout=120)["body"]
    cache.acked, cache.state, cache.mode = dict(body["files"]), body["state"], body["mode"]


def _push(
    client: DaemonClient,
    root: Path,
    files: dict[str, FileEntry],
    cache: SyncCache,
    chunk_bytes: int,
    on_progress: Progress | None,
    on_reply: Callable[[dict[str, Any]], None] | None = None,
) -> None:
    assert cache.acked is not None and cache.state is not None
    changed, deleted = plan_diff(files, cache.acked)
    target = digest_of({p: e.sha256 for p, e in files.items()})
    if not changed and not deleted and cache.state == target:
        return
    send_data = cache.mode != "in_place"
    total_bytes = sum(files[p].size for p in changed) if send_data else 0
    transaction, done_bytes, done_files = new_id(), 0, 0
    chunks = list(chunk_paths(changed, files, chunk_bytes)) or [[]]
    for index, chunk in enumerate(chunks):
        items = [_file_item(root, path, files[path], send_data) for path in chunk]
        final = index == len(chunks) - 1
        reply = client.request(
            "sync",
            {
                "root": str(root),
                "base": cache.state,
                "target": target,
                "files": items,
                "deleted": deleted if final else [],
                "transaction": transaction,
                "final": final,
                "total_files": len(changed),
                "total_bytes": total_bytes,
            },
            timeout=300,
        )["body"]
        if on_reply is not None:
            on_reply(reply)
        done_files += len(items)
        done_bytes += sum(len(i.get("data", b"")) for i in items)
        if on_progress is not None:
            on_progress(done_bytes, total_bytes, done_files, len(changed))
    cache.acked = {p: e.sha256 for p, e in files.items()}
    cache.state, cache.mode = reply["state"], reply["mode"]


def _file_item(root: Path, path: str, entry: FileEntry, send_data: bool) -> dict[str, Any]:
    if not send_data:
        return {"path": path, "sha256": entry.sha256}
    data = (root / path).read_bytes()
    if sha256_bytes(data) != entry.sha256:
        raise DaemonError(
            "changed_during_sync", f"{path} changed while it was being synced", "run again"
        )
    return {"path": path, "sha256": entry.sha256, "data": data}


__all__ = ["SyncCache", "sync_then_run", "sync_workspace"]
