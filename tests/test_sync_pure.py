"""Level 1: workspace sync without sockets: path safety, the manifest digest, scanning with
ignore rules, and applying diffs to a mirror (all or nothing) or in place (never written).
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import hotswap.sync_daemon as hotswap_sync
import pytest
from hotswap.sync import Digest, FileEntry, digest_of, scan, sha256_bytes
from hotswap.sync_daemon import (
    SyncMismatch,
    UnsafePath,
    WorkspaceState,
    check_relative_path,
    resolve_inside,
)

# -- check_relative_path ---------------------------------------------------------------

UNSAFE_PATHS = [
    "/etc/x",
    "/",
    "C:/x",
    "C:\\x",
    "c:x",
    "\\\\server\\x",
    "\\x",
    "..",
    "../x",
    "a/../../x",
    "a/..",
    ".",
    "./x",
    "a/./b",
    "a//b",
    "a/",
    "/a/b",
    "",
    "a\0b",
    "x" * 256,
    "a/" + "é" * 128,  # 256 bytes in UTF-8, though only 128 characters
]


@pytest.mark.parametrize("path", UNSAFE_PATHS)
def test_unsafe_paths_are_rejected(path: str) -> None:
    with pytest.raises(UnsafePath):
        check_relative_path(path)


@pytest.mark.parametrize("path", [None, 3, b"a.py", ["a.py"]])
def test_non_string_paths_are_rejected(path: object) -> None:
    with pytest.raises(UnsafePath):
        check_relative_path(path)


@pytest.mark.parametrize(
    "path", ["a.py", "pkg/sub/mod.py", ".env", "..hidden", "a..b", "x" * 255, "é" * 127, "a b/c"]
)
def test_plain_relative_paths_are_accepted(path: str) -> None:
    assert check_relative_path(path) == path


# -- resolve_inside ----------------------------------------------------------------------


def test_resolve_inside_refuses_a_symlink_leaving_the_root(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "escape").symlink_to(outside)
    (root / "up").symlink_to("..")
    (root / "abs").symlink_to("/etc")
    for rel in ("escape/x.py", "up/outside/x.py", "abs/passwd", "escape"):
        with pytest.raises(UnsafePath, match="symbolic link"):
            resolve_inside(root, rel)


def test_resolve_inside_accepts_a_symlink_inside_the_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "real").mkdir(parents=True)
    (root / "alias").symlink_to("real")
    (root / "self").symlink_to(".")
    assert resolve_inside(root, "alias/x.py") == root / "alias" / "x.py"
    assert resolve_inside(root, "self/x.py") == root / "self" / "x.py"


def test_resolve_inside_refuses_a_fifo_and_a_device(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    os.mkfifo(root / "pipe")
    with pytest.raises(UnsafePath, match="FIFO"):
        resolve_inside(root, "pipe")
    with pytest.raises(UnsafePath):
        resolve_inside(root, "pipe/x.py")
    (root / "null").symlink_to("/dev/null")  # a device reached by a link: outside the root
    with pytest.raises(UnsafePath):
        resolve_inside(root, "null")


def test_resolve_inside_refuses_a_path_that_is_a_folder(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    with pytest.raises(UnsafePath, match="folder"):
        resolve_inside(tmp_path, "pkg")


def test_resolve_inside_accepts_paths_not_created_yet(tmp_path: Path) -> None:
    assert resolve_inside(tmp_path, "new/deep/x.py") == tmp_path / "new" / "deep" / "x.py"


# -- Digest --------------------------------------------------------------------------------


def test_digest_is_order_free_and_matches_digest_of() -> None:
    files = {f"pkg/m{i}.py": sha256_bytes(str(i).encode()) for i in range(50)}
    items = list(files.items())
    forward, backward = Digest(), Digest()
    for path, sha in items:
        forward.add(path, sha)
    for path, sha in reversed(items):
        backward.add(path, sha)
    assert forward.hex() == backward.hex() == digest_of(files)
    assert len(forward.hex()) == 64


def test_digest_remove_undoes_add_in_any_order() -> None:
    files = {f"f{i}": sha256_bytes(bytes([i])) for i in range(20)}
    digest = Digest(files)
    shuffled = list(files.items())
    random.Random(3).shuffle(shuffled)
    for path, sha in shuffled[:7]:
        digest.remove(path, sha)
    assert digest.hex() == digest_of(dict(shuffled[7:]))
    for path, sha in reversed(shuffled[:7]):
        digest.add(path, sha)
    assert digest.hex() == digest_of(files)
    assert Digest().hex() == digest_of({}) == "0" * 64


def test_digest_depends_on_paths_and_contents() -> None:
    sha_a, sha_b = sha256_bytes(b"a"), sha256_bytes(b"b")
    base = digest_of({"x.py": sha_a, "y.py": sha_b})
    assert digest_of({"x.py": sha_b, "y.py": sha_a}) != base  # contents swapped
    assert digest_of({"x.py": sha_a, "z.py": sha_b}) != base  # a file renamed
    assert digest_of({"x.py": sha_a}) != base  # a file gone


# -- scan ---------------------------------------------------------------------------------


def write(root: Path, rel: str, data: str | bytes = "x") -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        path.write_text(data)
    return path


def test_scan_hashes_files_with_posix_relative_paths(tmp_path: Path) -> None:
    write(tmp_path, "a.py", "print(1)\n")
    write(tmp_path, "pkg/sub/b.py", "B = 2\n")
    files, skipped = scan(tmp_path)
    assert set(files) == {"a.py", "pkg/sub/b.py"}
    assert files["a.py"].sha256 == sha256_bytes(b"print(1)\n")
    assert files["pkg/sub/b.py"].size == 6
    assert skipped == []


def test_scan_honours_gitignore_at_the_root_and_in_a_nested_folder(tmp_path: Path) -> None:
    write(tmp_path, ".gitignore", "*.log\n/data/\nbuild\n")
    write(tmp_path, "keep.py")
    write(tmp_path, "run.log")
    write(tmp_path, "data/big.bin")
    write(tmp_path, "src/data/kept.csv")  # /data/ is anchored to the root
    write(tmp_path, "src/build/out.o")
    write(tmp_path, "src/deep/x.log")
    write(tmp_path, "sub/.gitignore", "secret.txt\ncache/\n")
    write(tmp_path, "sub/secret.txt")
    write(tmp_path, "sub/public.txt")
    write(tmp_path, "sub/cache/c.bin")
    write(tmp_path, "other/secret.txt")  # sub/.gitignore does not reach its siblings
    files, _ = scan(tmp_path)
    assert set(files) == {
        ".gitignore",
        "keep.py",
        "src/data/kept.csv",
        "sub/.gitignore",
        "sub/public.txt",
        "other/secret.txt",
    }


def test_scan_honours_hotswapignore(tmp_path: Path) -> None:
    write(tmp_path, ".hotswapignore", "checkpoints/\n*.pt\n")
    write(tmp_path, "train.py")
    write(tmp_path, "model.pt")
    write(tmp_path, "checkpoints/step1.bin")
    write(tmp_path, "pkg/weights.pt")
    files, _ = scan(tmp_path)
    assert set(files) == {".hotswapignore", "train.py"}


def test_scan_skips_default_ignores_and_virtualenvs(tmp_path: Path) -> None:
    write(tmp_path, "main.py")
    for rel in (
        ".git/HEAD",
        ".venv/lib/site.py",
        "venv/bin/activate",
        "pkg/__pycache__/m.cpython-311.pyc",
        "pkg/stale.pyc",
        "node_modules/left-pad/index.js",
        ".hotswap/connection.json",
        "sub/.hotswap/sync-client.json",
        "env-custom/pyvenv.cfg",
        "env-custom/lib/python3.11/site-packages/torch.py",
    ):
        write(tmp_path, rel)
    write(tmp_path, "pkg/m.py")
    files, skipped = scan(tmp_path)
    assert set(files) == {"main.py", "pkg/m.py"}
    assert skipped == []


def test_scan_skips_files_over_the_limit_with_a_reason(tmp_path: Path) -> None:
    write(tmp_path, "small.py", b"x" * 100)
    write(tmp_path, "exact.bin", b"x" * 1000)
    write(tmp_path, "data/huge.bin", b"x" * 1001)
    files, skipped = scan(tmp_path, max_file_bytes=1000)
    assert set(files) == {"small.py", "exact.bin"}
    assert [s.path for s in skipped] == ["data/huge.bin"]
    assert "over the" in skipped[0].reason and "MB limit" in skipped[0].reason


def test_scan_reports_symlinks_as_skipped(tmp_path: Path) -> None:
    write(tmp_path, "real.py")
    (tmp_path / "link.py").symlink_to("real.py")
    files, skipped = scan(tmp_path)
    assert set(files) == {"real.py"}
    assert [s.path for s in skipped] == ["link.py"]


def test_scan_reuses_hashes_when_size_and_mtime_are_unchanged(tmp_path: Path) -> None:
    path = write(tmp_path, "m.py", "A = 1\n")
    first, _ = scan(tmp_path)
    st = path.stat()
    path.write_text("A = 2\n")  # same size...
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # ...and the old mtime
    reused, _ = scan(tmp_path, previous=first)
    assert reused["m.py"].sha256 == sha256_bytes(b"A = 1\n")  # not read again
    fresh, _ = scan(tmp_path)
    assert fresh["m.py"].sha256 == sha256_bytes(b"A = 2\n")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    rehashed, _ = scan(tmp_path, previous=first)
    assert rehashed["m.py"].sha256 == sha256_bytes(b"A = 2\n")


def test_scan_rehashes_when_previous_entry_has_another_size(tmp_path: Path) -> None:
    path = write(tmp_path, "m.py", "A = 1\n")
    st = path.stat()
    previous = {"m.py": FileEntry(st.st_size + 1, st.st_mtime_ns, "0" * 64)}
    files, _ = scan(tmp_path, previous=previous)
    assert files["m.py"].sha256 == sha256_bytes(b"A = 1\n")


# -- WorkspaceState: mirror ------------------------------------------------------------------


def item(path: str, data: bytes) -> dict[str, Any]:
    return {"path": path, "sha256": sha256_bytes(data), "data": data}


def target_of(files: dict[str, bytes]) -> str:
    return digest_of({p: sha256_bytes(d) for p, d in files.items()})


def disk_of(root: Path) -> dict[str, bytes]:
    """Every file under root (hidden state folder aside), with its bytes."""
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".hotswap" not in p.relative_to(root).parts
    }


def folders_of(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_dir()}


def mirror_with(root: Path, files: dict[str, bytes]) -> WorkspaceState:
    state = WorkspaceState(root, mirror=True)
    state.apply([item(p, d) for p, d in files.items()], [], target_of(files))
    return state


def test_mirror_apply_writes_files_and_acknowledges_the_state(tmp_path: Path) -> None:
    root = tmp_path / "mirror"
    files = {"main.py": b"import pkg.m\n", "pkg/m.py": b"X = 1\n", "pkg/__init__.py": b""}
    state = WorkspaceState(root, mirror=True)
    assert state.state() == digest_of({})
    staged = state.apply([item(p, d) for p, d in files.items()], [], target_of(files))
    assert staged == {p: sha256_bytes(d) for p, d in files.items()}
    assert disk_of(root) == files
    assert state.state() == target_of(files)
    assert state.files == staged
    assert not [p for p in root.rglob(".hotswap-*")]  # no temporary files left


def test_mirror_apply_changes_and_deletes(tmp_path: Path) -> None:
    root = tmp_path / "mirror"
    state = mirror_with(root, {"a.py": b"A\n", "b.py": b"B\n", "pkg/deep/c.py": b"C\n"})
    after = {"a.py": b"A2\n", "b.py": b"B\n"}
    state.apply([item("a.py", b"A2\n")], ["pkg/deep/c.py"], target_of(after))
    assert disk_of(root) == after
    assert "pkg" not in folders_of(root)  # emptied folders go too
    assert state.state() == target_of(after)
    assert set(state.files) == {"a.py", "b.py"}


def test_mirror_apply_rename_is_delete_plus_add(tmp_path: Path) -> None:
    root = tmp_path / "mirror"
    state = mirror_with(root, {"old_name.py": b"V = 1\n", "main.py": b"m\n"})
    after = {"new/name.py": b"V = 1\n", "main.py": b"m\n"}
    state.apply([item("new/name.py", b"V = 1\n")], ["old_name.py"], target_of(after))
    assert disk_of(root) == after
    assert state.state() == target_of(after)


def test_mirror_apply_a_file_becomes_a_folder(tmp_path: Path) -> None:
    """A file `util` deleted and `util/__init__.py` added, in one diff."""
    root = tmp_path / "mirror"
    state = mirror_with(root, {"util": b"a file named util\n", "main.py": b"M\n"})
    after = {"util/__init__.py": b"U\n", "main.py": b"M\n"}
    state.apply([item("util/__init__.py", b"U\n")], ["util"], target_of(after))
    assert disk_of(root) == after
    assert state.state() == target_of(after)


def test_mirror_apply_a_folder_becomes_a_file(tmp_path: Path) -> None:
    root = tmp_path / "mirror"
    state = mirror_with(root, {"tool/__init__.py": b"T\n", "tool/extra.py": b"E\n"})
    after = {"tool": b"now a file\n"}
    state.apply(
        [item("tool", b"now a file\n")], ["tool/__init__.py", "tool/extra.py"], target_of(after)
    )
    assert disk_of(root) == after
    assert state.state() == target_of(after)


def test_a_file_that_stays_cannot_become_a_folder(tmp_path: Path) -> None:
    """A crafted diff whose target names both `a` and `a/b.py` is refused before any write."""
    root = tmp_path / "mirror"
    state = mirror_with(root, {"a": b"A\n", "gone.py": b"G\n"})
    before = disk_of(root), state.state()
    impossible = {"a": b"A\n", "a/b.py": b"B\n"}
    with pytest.raises(UnsafePath, match="is a file"):
        state.apply([item("a/b.py", b"B\n")], ["gone.py"], target_of(impossible))
    with pytest.raises(UnsafePath, match="is a file"):
        state.apply(
            [item("x", b"X\n"), item("x/y.py", b"Y\n")],
            [],
            target_of({"a": b"A\n", "gone.py": b"G\n", "x": b"X\n", "x/y.py": b"Y\n"}),
        )
    assert (disk_of(root), state.state()) == before


def test_a_restarted_daemon_adopts_its_mirror(tmp_path: Path) -> None:
    root = tmp_path / "mirror"
    files = {"a.py": b"A\n", "pkg/b.py": b"B\n"}
    first = mirror_with(root, files)
    again = WorkspaceState(root, mirror=True)
    assert again.files == first.files
    assert again.state() == first.state() == target_of(files)


BAD_DIFFS = {
    "one unsafe path": lambda good: (
        [*good, item("../escape.py", b"E\n")],
        "unsafe",
    ),
    "an absolute path": lambda good: ([item("/tmp/abs.py", b"E\n"), *good], "unsafe"),
    "a damaged sha": lambda good: (
        [*good[:1], {**good[1], "data": good[1]["data"] + b"#"}],
        "mismatch",
    ),
    "no data in mirror mode": lambda good: (
        [*good[:1], {"path": good[1]["path"], "sha256": good[1]["sha256"]}],
        "mismatch",
    ),
    "a wrong target digest": lambda good: (good, "wrong-target"),
}


@pytest.mark.parametrize("case", sorted(BAD_DIFFS))
def test_a_rejected_mirror_diff_changes_nothing(tmp_path: Path, case: str) -> None:
    root = tmp_path / "mirror"
    outside = tmp_path / "escape.py"
    state = mirror_with(root, {"keep.py": b"K\n", "gone.py": b"G\n", "pkg/m.py": b"M\n"})
    before_disk, before_files, before_state = disk_of(root), dict(state.files), state.state()
    before_folders = folders_of(root)
    good = [item("keep.py", b"K2\n"), item("pkg/new.py", b"N\n")]
    files, kind = BAD_DIFFS[case](good)
    after = {"keep.py": b"K2\n", "pkg/new.py": b"N\n", "pkg/m.py": b"M\n"}
    target = target_of(after) if kind != "wrong-target" else target_of({"other": b""})
    expected = UnsafePath if kind == "unsafe" else SyncMismatch
    with pytest.raises(expected):
        state.apply(files, ["gone.py"], target)
    assert disk_of(root) == before_disk
    assert folders_of(root) == before_folders
    assert state.files == before_files and state.state() == before_state
    assert not outside.exists()
    assert not [p for p in root.rglob(".hotswap-*")]


def test_a_rejected_delete_changes_nothing(tmp_path: Path) -> None:
    root = tmp_path / "mirror"
    victim = tmp_path / "victim.txt"
    victim.write_text("not yours\n")
    (root).mkdir()
    (root / "link").symlink_to(tmp_path)
    state = mirror_with(root, {"keep.py": b"K\n"})
    before = disk_of(root), state.state()
    with pytest.raises(UnsafePath):
        state.apply([item("new.py", b"N\n")], ["link/victim.txt"], target_of({"keep.py": b"K\n"}))
    assert victim.read_text() == "not yours\n"
    assert (disk_of(root), state.state()) == before


def test_mirror_apply_never_writes_through_an_escaping_symlink(tmp_path: Path) -> None:
    root = tmp_path / "mirror"
    outside = tmp_path / "outside"
    outside.mkdir()
    root.mkdir()
    (root / "out").symlink_to(outside)
    state = WorkspaceState(root, mirror=True)
    with pytest.raises(UnsafePath):
        state.apply([item("out/x.py", b"X\n")], [], target_of({"out/x.py": b"X\n"}))
    assert list(outside.iterdir()) == []


def test_a_diff_against_a_stale_state_is_a_mismatch(tmp_path: Path) -> None:
    """Two clients: the second one's diff assumes a state the first one replaced."""
    root = tmp_path / "mirror"
    state = mirror_with(root, {"a.py": b"A\n"})
    state.apply([item("a.py", b"A from client 1\n")], [], target_of({"a.py": b"A from client 1\n"}))
    # client 2 still believes a.py is b"A\n" and adds b.py: its target includes its own a.py
    target2 = target_of({"a.py": b"A\n", "b.py": b"B\n"})
    with pytest.raises(SyncMismatch):
        state.apply([item("b.py", b"B\n")], [], target2)
    assert disk_of(root) == {"a.py": b"A from client 1\n"}


# -- WorkspaceState: in place -----------------------------------------------------------------


def snapshot(root: Path) -> dict[str, tuple[bytes, int]]:
    return {
        p.relative_to(root).as_posix(): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in root.rglob("*")
        if p.is_file()
    }


def in_place(root: Path) -> WorkspaceState:
    state = WorkspaceState(root, mirror=False)
    state.adopt_disk(1 << 30)
    return state


def test_in_place_apply_verifies_and_never_writes(tmp_path: Path) -> None:
    write(tmp_path, "a.py", "A\n")
    write(tmp_path, "b.py", "B\n")
    state = in_place(tmp_path)
    assert state.state() == target_of({"a.py": b"A\n", "b.py": b"B\n"})
    write(tmp_path, "a.py", "A2\n")
    write(tmp_path, "c.py", "C\n")
    (tmp_path / "b.py").unlink()
    before = snapshot(tmp_path)
    after = {"a.py": b"A2\n", "c.py": b"C\n"}
    sent = [{"path": p, "sha256": sha256_bytes(d)} for p, d in after.items()]  # no data
    state.apply(sent, ["b.py"], target_of(after))
    assert state.state() == target_of(after)
    assert snapshot(tmp_path) == before


def test_in_place_apply_raises_when_disk_differs_and_writes_nothing(tmp_path: Path) -> None:
    write(tmp_path, "a.py", "A\n")
    state = in_place(tmp_path)
    before_state = state.state()
    claimed = {"a.py": b"what the client saved\n"}
    before = snapshot(tmp_path)
    with pytest.raises(SyncMismatch, match="differs"):
        state.apply([item("a.py", claimed["a.py"])], [], target_of(claimed))
    with pytest.raises(SyncMismatch, match="differs"):  # a file that is not there at all
        state.apply(
            [{"path": "missing.py", "sha256": sha256_bytes(b"M")}],
            [],
            target_of({"a.py": b"A\n", "missing.py": b"M"}),
        )
    with pytest.raises(SyncMismatch, match="deleted"):
        state.apply([], ["a.py"], target_of({}))
    assert snapshot(tmp_path) == before
    assert state.state() == before_state


def test_a_folder_whose_files_stay_cannot_become_a_file(tmp_path: Path) -> None:
    root = tmp_path / "mirror"
    state = mirror_with(root, {"tool/__init__.py": b"T\n", "tool/extra.py": b"E\n"})
    before = disk_of(root), state.state()
    target = target_of({"tool": b"F\n", "tool/extra.py": b"E\n"})
    with pytest.raises(UnsafePath, match="is a folder"):
        state.apply([item("tool", b"F\n")], ["tool/__init__.py"], target)
    assert (disk_of(root), state.state()) == before


# -- the daemon's staging of chunked transfers -----------------------------------------


def _chunk(base: str, transaction: str, files: dict[str, bytes], final: bool) -> dict[str, Any]:
    return {
        "root": "/the/editor/workspace",
        "base": base,
        "target": target_of(files),
        "files": [item(p, d) for p, d in files.items()],
        "deleted": [],
        "transaction": transaction,
        "final": final,
    }


def test_a_transfer_whose_client_went_quiet_is_forgotten(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "ws").mkdir()
    syncer = hotswap_sync.Syncer(tmp_path / "ws", tmp_path / "mirror")
    base = syncer.manifest("/the/editor/workspace")["state"]
    assert syncer.receive(_chunk(base, "dead", {"a.py": b"A\n"}, final=False)) is None
    assert syncer.staged("dead")["files"], "the first chunk is held until the last one"
    monkeypatch.setattr(hotswap_sync, "STAGING_TTL_SECONDS", 0.0)
    assert syncer.receive(_chunk(base, "live", {"b.py": b"B\n"}, final=False)) is None
    assert syncer.staged("dead")["files"] == []


def test_applying_a_diff_drops_transfers_based_on_the_old_state(tmp_path: Path) -> None:
    (tmp_path / "ws").mkdir()
    syncer = hotswap_sync.Syncer(tmp_path / "ws", tmp_path / "mirror")
    base = syncer.manifest("/the/editor/workspace")["state"]
    syncer.receive(_chunk(base, "stale", {"a.py": b"A\n"}, final=False))
    done = syncer.receive(_chunk(base, "whole", {"b.py": b"B\n"}, final=True))
    assert done is not None and done["state"] == target_of({"b.py": b"B\n"})
    assert syncer.staged("stale")["files"] == []
    assert (tmp_path / "mirror" / "b.py").read_bytes() == b"B\n"
