"""Writing a synced diff into a mirror: every file staged in full first, then the deletes and
the renames into place, so a full disk fails before anything changed."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from .protocol import WriteFailed


class PlaceFailed(Exception):
    """Placing staged files failed part-way (the staged copies are removed)."""


def write_diff(root: Path, files: list[dict[str, Any]], deleted: list[str]) -> None:
    """Raises WriteFailed (nothing changed) or PlaceFailed (some of the diff is in place)."""
    temps = _stage(root, files)
    try:
        _place(root, temps, deleted)
    except OSError as exc:
        for tmp, _ in temps:
            Path(tmp).unlink(missing_ok=True)
        raise PlaceFailed(exc.strerror or str(exc)) from None


def _stage(root: Path, files: list[dict[str, Any]]) -> list[tuple[str, Path]]:
    temps: list[tuple[str, Path]] = []
    try:
        for item in files:
            # Staged at the root: a file's folder may exist only once the deletes are done
            # (a file `data` replaced by `data/x.py`).
            fd, tmp = tempfile.mkstemp(prefix=".hotswap-", dir=root)
            temps.append((tmp, root / item["path"]))
            with os.fdopen(fd, "wb") as f:
                f.write(item["data"])
    except BaseException as exc:
        for tmp, _ in temps:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise WriteFailed(
                f"sync: the daemon cannot write into {root}: {exc.strerror or exc}; "
                "nothing was changed"
            ) from None
        raise
    return temps


def _place(root: Path, temps: list[tuple[str, Path]], deleted: list[str]) -> None:
    for path in deleted:
        (root / path).unlink(missing_ok=True)
        prune_empty_parents(root, root / path)
    for tmp, final in temps:
        if final.is_dir() and not final.is_symlink():  # a folder replaced by a file
            shutil.rmtree(final)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(tmp, 0o644)
        os.replace(tmp, final)


def prune_empty_parents(root: Path, path: Path) -> None:
    parent = path.parent
    while parent != root and root in parent.parents:
        try:
            parent.rmdir()
        except OSError:
            return
        parent = parent.parent
