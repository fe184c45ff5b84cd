"""Workspace manifests, shared by every client and the daemon: what is synced and its digest.

Pure logic (no sockets): scanning a workspace with its ignore rules (the sync_policy the daemon
announces), the manifest digest, and planning a diff. The daemon's half is sync_daemon.py.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

DEFAULT_MAX_FILE_BYTES = 50 * 1024 * 1024
CHUNK_BYTES = 8 * 1024 * 1024
DEFAULT_IGNORED_DIRS = frozenset(
    {
        ".git",
        ".hg",
        ".svn",
        ".hotswap",
        ".venv",
        "venv",
        "__pycache__",
        "node_modules",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        ".tox",
        ".nox",
        ".ipynb_checkpoints",
    }
)
"""Folder names never synced, at any depth (as the .gitignore lines `NAME/` would say), with
``*.pyc``/``*.pyo`` files and any folder holding a ``pyvenv.cfg`` (a virtualenv)."""
IGNORED_SUFFIXES = (".pyc", ".pyo")
IGNORE_FILES = (".gitignore", ".hotswapignore")
"""Read at the workspace root; only ``.gitignore`` is read in every folder below it too."""
VENV_MARKERS = ("pyvenv.cfg",)
_MODULUS = 1 << 256


class FileEntry(NamedTuple):
    size: int
    mtime_ns: int
    sha256: str


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _entry_term(path: str, sha: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{path}\0{sha}".encode()).digest(), "big")


class Digest:
    """An order-free digest of {path: sha256}: the sum of per-entry hashes modulo 2**256.

    Updating it costs one hash per changed file, so a one-file sync in a 10,000-file
    workspace never rehashes the rest.
    """

    def __init__(self, files: dict[str, str] | None = None) -> None:
        self.value = 0
        for path, sha in (files or {}).items():
            self.add(path, sha)

    def add(self, path: str, sha: str) -> None:
        self.value = (self.value + _entry_term(path, sha)) % _MODULUS

    def remove(self, path: str, sha: str) -> None:
        self.value = (self.value - _entry_term(path, sha)) % _MODULUS

    def hex(self) -> str:
        return f"{self.value:064x}"


def digest_of(files: dict[str, str]) -> str:
    return Digest(files).hex()


# -- scanning (client side) -----------------------------------------------------------


class IgnoreRules:
    """.gitignore (every folder's), .hotswapignore and the defaults, with git's matching."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._specs: dict[str, Any] = {}
        for name in IGNORE_FILES:
            self._load(root, "", name)

    def _load(self, folder: Path, rel: str, name: str = ".gitignore") -> None:
        try:
            lines = (folder / name).read_text(errors="replace").splitlines()
        except OSError:
            return
        import pathspec  # here: it costs ~15 ms to import, and many runs never need it

        self._specs[f"{rel}\0{name}"] = pathspec.GitIgnoreSpec.from_lines(lines)

    def enter(self, folder: Path, rel: str) -> None:
        self._load(folder, rel)

    def ignored(self, rel: str, is_dir: bool) -> bool:
        name = rel.rsplit("/", 1)[-1]
        if name in DEFAULT_IGNORED_DIRS if is_dir else name.endswith(IGNORED_SUFFIXES):
            return True
        for key, spec in self._specs.items():
            base = key.split("\0")[0]
            if base and not rel.startswith(base + "/"):
                continue
            sub = rel[len(base) + 1 :] if base else rel
            if spec.match_file(sub + "/" if is_dir else sub):
                return True
        return False


class Skipped(NamedTuple):
    path: str
    reason: str


def scan(
    root: Path,
    previous: dict[str, FileEntry] | None = None,
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
) -> tuple[dict[str, FileEntry], list[Skipped]]:
    """Every synced file under ``root``: relative POSIX path → size, mtime, sha256.

    A file whose size and mtime match ``previous`` keeps its hash without being read.
    """
    previous = previous or {}
    rules = IgnoreRules(root)
    files: dict[str, FileEntry] = {}
    skipped: list[Skipped] = []
    for rel, st in _walk(root, "", rules, skipped):
        if st.st_size > max_file_bytes:
            limit = max_file_bytes / (1024 * 1024)
            skipped.append(
                Skipped(rel, f"{st.st_size / (1024 * 1024):.1f} MB, over the {limit:g} MB limit")
            )
            continue
        old = previous.get(rel)
        if old is not None and (old.size, old.mtime_ns) == (st.st_size, st.st_mtime_ns):
            files[rel] = old
            continue
        try:
            sha = sha256_file(root / rel)
        except OSError as exc:
            skipped.append(Skipped(rel, f"unreadable: {exc.strerror}"))
            continue
        files[rel] = FileEntry(st.st_size, st.st_mtime_ns, sha)
    return files, skipped


def _walk(
    folder: Path, rel: str, rules: IgnoreRules, skipped: list[Skipped]
) -> Iterator[tuple[str, os.stat_result]]:
    if rel:
        rules.enter(folder, rel)
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError as exc:
        skipped.append(Skipped(rel or ".", f"unreadable folder: {exc.strerror}"))
        return
    for entry in entries:
        child = f"{rel}/{entry.name}" if rel else entry.name
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if stat.S_ISDIR(st.st_mode):
            if rules.ignored(child, True) or _is_venv(Path(entry.path)):
                continue
            yield from _walk(Path(entry.path), child, rules, skipped)
        elif stat.S_ISREG(st.st_mode) and not rules.ignored(child, False):
            yield child, st
        elif stat.S_ISLNK(st.st_mode) and not rules.ignored(child, False):
            skipped.append(Skipped(child, "a symbolic link (not synced)"))


def _is_venv(folder: Path) -> bool:
    return any((folder / marker).exists() for marker in VENV_MARKERS)


def sync_policy(max_file_bytes: int) -> dict[str, Any]:
    """The ``sync_policy`` record: what clients skip and how they chunk, as scan() does."""
    return {
        "max_file_bytes": max_file_bytes,
        "chunk_bytes": CHUNK_BYTES,
        "ignored_dirs": sorted(DEFAULT_IGNORED_DIRS),
        "ignored_suffixes": list(IGNORED_SUFFIXES),
        "ignore_files": list(IGNORE_FILES),
        "nested_ignore_files": [".gitignore"],
        "venv_markers": list(VENV_MARKERS),
        "sync_symlinks": False,
    }


def plan_diff(
    files: dict[str, FileEntry], acknowledged: dict[str, str]
) -> tuple[list[str], list[str]]:
    """(paths to send, paths to delete) to turn the acknowledged state into ``files``."""
    changed = [p for p, e in files.items() if acknowledged.get(p) != e.sha256]
    deleted = [p for p in acknowledged if p not in files]
    return changed, deleted


def chunk_paths(
    paths: list[str], files: dict[str, FileEntry], limit: int = CHUNK_BYTES
) -> Iterator[list[str]]:
    """Group paths into chunks of at most ``limit`` bytes (a bigger file travels alone)."""
    chunk: list[str] = []
    size = 0
    for path in paths:
        entry_size = files[path].size
        if chunk and size + entry_size > limit:
            yield chunk
            chunk, size = [], 0
        chunk.append(path)
        size += entry_size
    if chunk:
        yield chunk
