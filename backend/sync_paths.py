"""Path safety on the daemon's side of sync: a diff's paths are relative names that stay inside
the workspace, and never lead through a symbolic link out of it or onto a device file."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from .protocol import MAX_PATH_BYTES

MAX_NAME_BYTES = 255


class UnsafePath(ValueError):
    """A path in a diff that could write outside the workspace or is not a plain file name."""


def check_relative_path(path: object) -> str:
    """A diff path must be a relative POSIX path of plain names, valid on this OS."""
    if not isinstance(path, str) or not path:
        raise UnsafePath(f"{path!r}: a path must be a non-empty string")
    if "\0" in path:
        raise UnsafePath(f"{path!r}: NUL is not allowed in a file name")
    if path.startswith(("/", "\\")) or (len(path) > 1 and path[1] == ":"):
        raise UnsafePath(f"{path!r}: absolute paths are not allowed; send workspace-relative paths")
    if len(path.encode()) > MAX_PATH_BYTES:
        raise UnsafePath(f"{path[:60]!r}…: longer than {MAX_PATH_BYTES} bytes")
    for name in path.split("/"):
        if name in ("", ".", ".."):
            raise UnsafePath(f"{path!r}: empty, '.' and '..' segments are not allowed")
        if len(name.encode()) > MAX_NAME_BYTES:
            raise UnsafePath(f"{path!r}: a name is longer than {MAX_NAME_BYTES} bytes")
    return path


def resolve_inside(root: Path, rel: str, folder_allowed: bool = False) -> Path:
    """``root/rel``, refusing symlinks that lead outside ``root`` and non-regular files
    (and folders, unless ``folder_allowed``: a diff replacing that folder by a file)."""
    check_relative_path(rel)
    real_root = os.path.realpath(root)
    current = Path(root)
    for name in rel.split("/"):
        current = current / name
        try:
            st = os.lstat(current)
        except (FileNotFoundError, NotADirectoryError):
            # The rest does not exist yet (or goes under a file the diff deletes, as when
            # a file `data` becomes a folder `data/`): nothing to follow.
            return Path(root) / rel
        if stat.S_ISLNK(st.st_mode):
            target = os.path.realpath(current)
            if not (target == real_root or target.startswith(real_root + os.sep)):
                raise UnsafePath(f"{rel!r}: goes through a symbolic link leaving the workspace")
        elif not (stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode)):
            raise UnsafePath(f"{rel!r}: {current} is a device, FIFO or socket")
    final = Path(root) / rel
    if final.is_dir() and not final.is_symlink() and not folder_allowed:
        raise UnsafePath(f"{rel!r}: is a folder on the daemon's side")
    return final
