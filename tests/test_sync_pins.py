"""Level 1: the states queued runs named, on a real mirror folder (no sockets).

A pinned state survives a later sync of another client: the contents that sync replaced are
kept, and the mirror is put back, deletes included, when the run starts; without them the
run is refused and the mirror is left as it is.
"""

from __future__ import annotations

from pathlib import Path

from hotswap.sync import digest_of, sha256_bytes
from hotswap.sync_daemon import WorkspaceState
from hotswap.sync_pins import MOVED_ON, PinnedStates


def sync_to(state: WorkspaceState, target: dict[str, bytes]) -> None:
    """What a client's sync does: send what differs, delete what is gone."""
    files = [
        {"path": p, "sha256": sha256_bytes(d), "data": d}
        for p, d in target.items()
        if state.files.get(p) != sha256_bytes(d)
    ]
    deleted = [p for p in state.files if p not in target]
    state.apply(files, deleted, digest_of({p: sha256_bytes(d) for p, d in target.items()}))


def on_disk(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in root.rglob("*")
        if p.is_file() and ".hotswap" not in p.parts
    }


A = {"main.py": b"import lib\n", "lib.py": b"WHO = 'a'\n", "pkg/a_only.py": b"a\n"}
B = {"main.py": b"import lib\n", "lib.py": b"WHO = 'b'\n", "b_only.py": b"b\n"}


def mirror_with_pins(tmp_path: Path) -> tuple[WorkspaceState, PinnedStates]:
    state = WorkspaceState(tmp_path / "mirror", mirror=True)
    pins = PinnedStates()
    state.before_write = pins.keep_replaced
    return state, pins


def test_a_pinned_state_is_put_back_with_what_a_later_sync_replaced(tmp_path: Path) -> None:
    state, pins = mirror_with_pins(tmp_path)
    sync_to(state, A)
    pins.pin("run-a", state)
    sync_to(state, B)  # another client, while run-a waits
    assert on_disk(state.root) == B
    pins.pin("run-b", state)

    assert pins.restore("run-a", state) is None
    assert on_disk(state.root) == A and state.files == {p: sha256_bytes(d) for p, d in A.items()}
    pins.release("run-a")
    assert pins.restore("run-b", state) is None, "B's files were kept when A's came back"
    assert on_disk(state.root) == B
    pins.release("run-b")
    assert pins.pins == {} and pins.kept == {}, "nothing is kept once no run waits"


def test_a_state_whose_contents_are_gone_is_refused_and_nothing_changes(tmp_path: Path) -> None:
    state, pins = mirror_with_pins(tmp_path)
    sync_to(state, A)
    pins.pin("run-a", state)
    state.before_write = None  # as if the replaced contents had not been kept
    sync_to(state, B)
    assert pins.restore("run-a", state) == MOVED_ON
    assert on_disk(state.root) == B


def test_in_place_a_moved_state_is_refused(tmp_path: Path) -> None:
    (tmp_path / "lib.py").write_bytes(b"WHO = 'saved first'\n")
    state, pins = WorkspaceState(tmp_path, mirror=False), PinnedStates()
    state.adopt_disk(1 << 20)
    pins.pin("run", state)
    assert pins.restore("run", state) is None, "the same state: nothing to do"
    (tmp_path / "lib.py").write_bytes(b"WHO = 'saved later'\n")
    state.apply(
        [{"path": "lib.py", "sha256": sha256_bytes(b"WHO = 'saved later'\n")}],
        [],
        (digest_of({"lib.py": sha256_bytes(b"WHO = 'saved later'\n")})),
    )
    refused = pins.restore("run", state)
    assert refused is not None and refused.startswith(MOVED_ON)
    assert (tmp_path / "lib.py").read_bytes() == b"WHO = 'saved later'\n", "never written"
