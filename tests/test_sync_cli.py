"""Level 3: mirror mode through the real CLI. Two folders on this machine stand for the editor's
workspace and the GPU box's mirror; the daemon is `hotswap serve --mirror MIRROR` in its own
process group, and `hotswap run --backend CONNECTION_FILE` drives it from the editor's folder.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import HOTSWAP, Workspace, base_env
from hotswap.client import DaemonClient, DaemonError
from hotswap.messages import MESSAGE_TYPES
from hotswap.protocol import validate
from hotswap.sync import CHUNK_BYTES, DEFAULT_IGNORED_DIRS, digest_of, sha256_bytes
from hotswap.sync_client import sync_workspace

EDITOR_PYPROJECT = """\
[project]
name = "editor"
version = "0"
"""


class MirrorDaemon:
    """`hotswap serve --mirror DIR` as a background process; its connection file is copied
    to the editor's side, as a user would with scp."""

    def __init__(self, mirror: Path, copies: Path) -> None:
        self.mirror = mirror
        self.copy = copies / "connection.json"
        self.procs: list[subprocess.Popen[bytes]] = []
        copies.mkdir(parents=True, exist_ok=True)

    @property
    def proc(self) -> subprocess.Popen[bytes]:
        return self.procs[-1]

    def start(self) -> None:
        log = open(self.mirror.parent / f"serve-{len(self.procs)}.log", "wb")  # noqa: SIM115
        with log:
            proc = subprocess.Popen(
                [HOTSWAP, "serve", "--mirror", str(self.mirror)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env=base_env(),
                cwd=self.mirror.parent,
                start_new_session=True,
            )
        self.procs.append(proc)
        source = self.mirror / ".hotswap" / "connection.json"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError, ValueError):
                if json.loads(source.read_text())["pid"] == proc.pid:
                    shutil.copyfile(source, self.copy)
                    return
            assert proc.poll() is None, self.log()
            time.sleep(0.05)
        raise AssertionError(f"serve --mirror wrote no connection file\n{self.log()}")

    def log(self) -> str:
        return "\n".join(p.read_text() for p in sorted(self.mirror.parent.glob("serve-*.log")))

    def stop(self) -> None:
        """Kill the newest daemon's whole process group (its workers too) and reap it."""
        proc = self.procs[-1]
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)

    def kill_all(self) -> None:
        for proc in self.procs:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=30)

    def client(self) -> DaemonClient:
        client = DaemonClient(json.loads(self.copy.read_text()), "test-sync")
        client.hello()
        return client


class Editor:
    """The editor's workspace: files are written here and run with `--backend`."""

    def __init__(self, root: Path, daemon: MirrorDaemon) -> None:
        self.root = root
        self.daemon = daemon
        root.mkdir(parents=True, exist_ok=True)
        self.write("pyproject.toml", EDITOR_PYPROJECT)

    def write(self, rel: str, text: str | bytes) -> Path:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(textwrap.dedent(text))
        return path

    def run(
        self, *args: str, ok: bool = True, cwd: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        backend = ["--backend", str(self.daemon.copy)]
        proc = subprocess.run(
            [HOTSWAP, "run", "--workspace", str(self.root), *backend, *args],
            capture_output=True,
            text=True,
            env=base_env(),
            cwd=cwd or self.root,
            timeout=180,
        )
        if ok:
            assert proc.returncode == 0, f"{proc}\n{self.daemon.log()}"
        return proc


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[MirrorDaemon]:
    mirror = tmp_path / "gpu-box" / "mirror"
    mirror.mkdir(parents=True)
    d = MirrorDaemon(mirror, tmp_path / "laptop" / "from-gpu-box")
    try:
        d.start()
        yield d
    finally:
        d.kill_all()


@pytest.fixture
def editor(tmp_path: Path, daemon: MirrorDaemon) -> Editor:
    return Editor(tmp_path / "laptop" / "project", daemon)


def synced_files(root: Path) -> dict[str, bytes]:
    """Every file of a folder but hotswap's own state and Python's byte-code caches."""
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
        and not {".hotswap", "__pycache__"} & set(p.relative_to(root).parts)
        and not p.name.startswith(".hotswap-")
    }


def file_ids(root: Path) -> dict[str, tuple[int, int]]:
    """(inode, mtime) of every synced file: an atomic rewrite changes the inode."""
    return {
        rel: ((root / rel).stat().st_ino, (root / rel).stat().st_mtime_ns)
        for rel in synced_files(root)
    }


MAIN = """\
import sys
import helpers
print("main", helpers.greeting(), sys.argv[1:])
"""


# -- materializing and following edits -------------------------------------------------------------


def test_first_run_materializes_the_workspace_in_the_mirror(editor: Editor) -> None:
    editor.write("main.py", MAIN)
    editor.write("helpers.py", "def greeting():\n    return 'hi'\n")
    editor.write("pkg/__init__.py", "")
    editor.write("pkg/data/table.csv", "a,b\n1,2\n")
    editor.write("blob.bin", bytes(range(256)) * 40)
    proc = editor.run("main.py", "x", "--y")
    assert proc.stdout == "main hi ['x', '--y']\n"
    assert synced_files(editor.daemon.mirror) == synced_files(editor.root)
    assert "blob.bin" in synced_files(editor.daemon.mirror)


def test_edits_adds_deletes_and_renames_reach_the_mirror(editor: Editor) -> None:
    mirror = editor.daemon.mirror
    editor.write(
        "main.py",
        """\
        import os, importlib
        import helpers
        print(helpers.greeting())
        for name in ("extra", "pkg.old_name", "pkg.new_name"):
            try:
                print(name, importlib.import_module(name).VALUE)
            except ImportError:
                print(name, "missing")
        print(sorted(os.listdir("pkg")))
        """,
    )
    editor.write("helpers.py", "def greeting():\n    return 'v1'\n")
    editor.write("pkg/__init__.py", "")
    editor.write("pkg/old_name.py", "VALUE = 'old'\n")
    editor.write("gone.py", "VALUE = 'gone'\n")
    first = editor.run("main.py").stdout
    assert first.splitlines()[:4] == [
        "v1",
        "extra missing",
        "pkg.old_name old",
        "pkg.new_name missing",
    ]
    assert (mirror / "gone.py").exists()

    editor.write("helpers.py", "def greeting():\n    return 'v2, edited'\n")  # edit
    editor.write("extra.py", "VALUE = 'added'\n")  # add
    (editor.root / "gone.py").unlink()  # delete
    (editor.root / "pkg" / "old_name.py").rename(editor.root / "pkg" / "new_name.py")
    second = editor.run("main.py").stdout.splitlines()
    assert second[:4] == [
        "v2, edited",
        "extra added",
        "pkg.old_name missing",
        "pkg.new_name old",
    ]
    assert "old_name.py" not in second[4]
    assert not (mirror / "gone.py").exists()
    assert not (mirror / "pkg" / "old_name.py").exists()
    assert synced_files(mirror) == synced_files(editor.root)

    shutil.rmtree(editor.root / "pkg")  # a whole folder goes
    editor.write(
        "main.py", "import os\nprint(os.path.exists('pkg'), os.listdir('.').count('pkg'))\n"
    )
    assert editor.run("main.py").stdout == "False 0\n"
    assert synced_files(mirror) == synced_files(editor.root)


def test_ignored_files_never_reach_the_mirror(editor: Editor) -> None:
    editor.write(".gitignore", "outputs/\n*.log\n")
    editor.write(".hotswapignore", "checkpoints/\n*.pt\n")
    editor.write("data/.gitignore", "raw/\n")
    editor.write("main.py", "import os\nprint(sorted(os.listdir('.')))\n")
    ignored = [
        "outputs/run1.txt",
        "train.log",
        "sub/deep.log",
        "checkpoints/step1.bin",
        "weights.pt",
        "data/raw/huge.csv",
        ".venv/lib/site.py",
        "myenv/pyvenv.cfg",
        "myenv/lib/x.py",
        ".git/HEAD",
        "node_modules/m/index.js",
        "pkg/__pycache__/m.cpython-311.pyc",
    ]
    for rel in ignored:
        editor.write(rel, "ignored\n")
    editor.write("data/clean.csv", "kept\n")
    editor.write("sub/kept.py", "kept\n")
    proc = editor.run("main.py")
    mirror = editor.daemon.mirror
    for rel in ignored:
        assert not (mirror / rel).exists(), rel
    assert set(synced_files(mirror)) == {
        ".gitignore",
        ".hotswapignore",
        "data/.gitignore",
        "data/clean.csv",
        "main.py",
        "pyproject.toml",
        "sub/kept.py",
    }
    listed = eval(proc.stdout)  # the script sees the mirror: no ignored folder is there
    assert not {"outputs", "checkpoints", ".venv", "myenv", "node_modules", ".git"} & set(listed)


def test_a_file_over_the_limit_is_skipped_with_a_warning(editor: Editor) -> None:
    # The limit is the daemon's ([tool.hotswap] of its workspace, told in hello_reply), not
    # the editor's: the editor's pyproject says 50 MB, the daemon's says 1.
    limits = "\n[tool.hotswap]\nmax_file_mb = {}\n"
    editor.write("pyproject.toml", EDITOR_PYPROJECT + limits.format(50))
    (editor.daemon.mirror / "pyproject.toml").write_text(EDITOR_PYPROJECT + limits.format(1))
    editor.daemon.stop()
    editor.daemon.start()
    editor.write("data/big.bin", b"\0" * (2 * 1024 * 1024))
    editor.write("data/small.bin", b"\0" * 1000)
    editor.write("main.py", "import os\nprint(os.path.exists('data/big.bin'))\n")
    proc = editor.run("main.py")
    assert proc.stdout == "False\n"
    assert "not synced: data/big.bin" in proc.stderr
    assert "max_file_mb" in proc.stderr
    assert "small.bin" not in proc.stderr
    assert not (editor.daemon.mirror / "data" / "big.bin").exists()
    assert (editor.daemon.mirror / "data" / "small.bin").exists()


def test_hello_tells_the_sync_policy_of_the_daemons_workspace(tmp_path: Path) -> None:
    mirror = tmp_path / "gpu-box" / "mirror"
    mirror.mkdir(parents=True)
    (mirror / "pyproject.toml").write_text(EDITOR_PYPROJECT + "\n[tool.hotswap]\nmax_file_mb = 3\n")
    daemon = MirrorDaemon(mirror, tmp_path / "copies")
    try:
        daemon.start()
        client = daemon.client()
        try:
            policy = client.daemon["sync_policy"] if client.daemon else {}
        finally:
            client.close()
    finally:
        daemon.kill_all()
    assert policy == {
        "max_file_bytes": 3 * 1024 * 1024,
        "chunk_bytes": CHUNK_BYTES,
        "ignored_dirs": sorted(DEFAULT_IGNORED_DIRS),
        "ignored_suffixes": [".pyc", ".pyo"],
        "ignore_files": [".gitignore", ".hotswapignore"],
        "nested_ignore_files": [".gitignore"],
        "venv_markers": ["pyvenv.cfg"],
        "sync_symlinks": False,
    }


def test_a_subfolder_cwd_and_an_absolute_entry_are_mapped_into_the_mirror(editor: Editor) -> None:
    editor.write("tools/show.py", "import os, sys\nprint(os.getcwd(), sys.argv[0])\n")
    mirror = editor.daemon.mirror
    proc = editor.run(str(editor.root / "tools" / "show.py"), cwd=editor.root / "tools")
    assert proc.stdout == f"{mirror / 'tools'} {mirror / 'tools' / 'show.py'}\n"


def test_backend_as_an_address_needs_the_key_in_the_environment(editor: Editor) -> None:
    editor.write("main.py", "print('over tcp')\n")
    connection = json.loads(editor.daemon.copy.read_text())
    argv = [HOTSWAP, "run", "--workspace", str(editor.root), "--backend", connection["address"]]
    without = subprocess.run(
        [*argv, "main.py"], capture_output=True, text=True, env=base_env(), timeout=60
    )
    assert without.returncode == 1 and "HOTSWAP_KEY" in without.stderr
    with_key = subprocess.run(
        [*argv, "main.py"],
        capture_output=True,
        text=True,
        env=base_env(HOTSWAP_KEY=connection["key"]),
        cwd=editor.root,
        timeout=180,
    )
    assert (with_key.returncode, with_key.stdout) == (0, "over tcp\n"), with_key.stderr
    assert (editor.daemon.mirror / "main.py").read_text() == "print('over tcp')\n"


@pytest.mark.parametrize("form", ["file", "address"])
def test_stop_with_a_backend_stops_that_daemon_and_nothing_else(editor: Editor, form: str) -> None:
    """The daemon's pid belongs to its host: the CLI must not wait for it or kill it here
    (pid 0 of an address once made `stop` SIGKILL its own process group)."""
    connection = json.loads(editor.daemon.copy.read_text())
    backend = str(editor.daemon.copy) if form == "file" else connection["address"]
    stop = subprocess.run(
        [HOTSWAP, "stop", "--workspace", str(editor.root), "--backend", backend, "--timeout", "1"],
        capture_output=True,
        text=True,
        env=base_env(HOTSWAP_KEY=connection["key"]),
        timeout=60,
        start_new_session=True,  # if it kills its process group, only itself goes
    )
    assert (stop.returncode, stop.stderr) == (0, ""), stop
    assert "stopped" in stop.stdout
    assert editor.daemon.proc.wait(timeout=30) == 0


# -- paths shown to the user -----------------------------------------------------------------------


BROKEN = {
    "main.py": """\
        from pkg import mod
        print(__file__)
        mod.explode()
        """,
    "pkg/__init__.py": "",
    "pkg/mod.py": """\
        def explode():
            raise ValueError("from the module")
        """,
}


def test_tracebacks_show_editor_paths_but_file_is_the_mirror(editor: Editor) -> None:
    for rel, text in BROKEN.items():
        editor.write(rel, text)
    proc = editor.run("main.py", ok=False)
    mirror, root = editor.daemon.mirror, editor.root
    assert proc.returncode == 1
    assert proc.stdout == f"{mirror / 'main.py'}\n"
    assert f'File "{root / "main.py"}", line 3, in <module>' in proc.stderr
    assert f'File "{root / "pkg" / "mod.py"}", line 2, in explode' in proc.stderr
    assert str(mirror) not in proc.stderr
    assert proc.stderr.rstrip().endswith("ValueError: from the module")


def test_run_finished_error_frames_show_editor_paths(editor: Editor) -> None:
    for rel, text in BROKEN.items():
        editor.write(rel, text)
    client = editor.daemon.client()
    try:
        state = sync_workspace(client, editor.root)
        reply = client.request("run", run_body(editor.root, state, "main.py"))
        events = events_until_finished(client, reply["body"]["run_id"])
    finally:
        client.close()
    [started] = [e for e in events if e["type"] == "run_started"]
    mapping = {"localRoot": str(editor.root), "remoteRoot": str(editor.daemon.mirror)}
    assert started["body"]["path_mappings"] == [mapping]
    [finished] = [e for e in events if e["type"] == "run_finished"]
    error = finished["body"]["error"]
    assert error["type"] == "ValueError" and error["message"] == "from the module"
    assert [(f["file"], f["line"]) for f in error["frames"]] == [
        (str(editor.root / "main.py"), 3),
        (str(editor.root / "pkg" / "mod.py"), 2),
    ]


def run_body(root: Path, state: str, entry: str, *args: str) -> dict[str, Any]:
    return {
        "entry": entry,
        "args": list(args),
        "cwd": str(root),
        "env": base_env(),
        "root": str(root),
        "state": state,
    }


def events_until_finished(client: DaemonClient, run_id: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        msg = client.recv(timeout=1)
        if msg is None:
            continue
        validate(msg)
        events.append(msg)
        if msg["type"] == "run_finished" and msg["body"]["run_id"] == run_id:
            return events
    raise AssertionError(f"no run_finished for {run_id}: {events}")


# -- restarts and several clients ------------------------------------------------------------------


def test_a_restarted_daemon_gets_only_the_changed_files(editor: Editor) -> None:
    daemon = editor.daemon
    editor.write("main.py", "import a, b\nprint(a.V, b.V)\n")
    editor.write("a.py", "V = 'a1'\n")
    editor.write("b.py", "V = 'b1'\n")
    for i in range(20):
        editor.write(f"lib/m{i}.py", f"N = {i}\n")
    assert editor.run("main.py").stdout == "a1 b1\n"
    before = file_ids(daemon.mirror)

    subprocess.run(
        [HOTSWAP, "stop", "--workspace", str(editor.root), "--backend", str(daemon.copy)],
        capture_output=True,
        env=base_env(),
        timeout=60,
    )
    daemon.stop()
    daemon.start()  # a new daemon on the same mirror, with a new key and address
    editor.write("a.py", "V = 'a2, after the restart'\n")
    assert editor.run("main.py").stdout == "a2, after the restart b1\n"

    after = file_ids(daemon.mirror)
    assert after["a.py"] != before["a.py"]
    assert {p: after[p] for p in before if p != "a.py"} == {
        p: v for p, v in before.items() if p != "a.py"
    }  # nothing else was rewritten
    assert synced_files(daemon.mirror) == synced_files(editor.root)


def test_two_clients_each_run_exactly_their_own_state(tmp_path: Path, daemon: MirrorDaemon) -> None:
    first = Editor(tmp_path / "laptop" / "first", daemon)
    second = Editor(tmp_path / "desktop" / "second", daemon)
    for editor, who in ((first, "first"), (second, "second")):
        editor.write("main.py", "import lib\nprint(lib.WHO)\n")
        editor.write("lib.py", f"WHO = {who!r}\n")
        editor.write("shared.py", "S = 1\n")
    second.write("only_second.py", "")
    assert first.run("main.py").stdout == "first\n"
    assert second.run("main.py").stdout == "second\n"
    assert (daemon.mirror / "only_second.py").exists()
    # unchanged since its last run: its acknowledged state is stale, it must resync
    assert first.run("main.py").stdout == "first\n"
    assert synced_files(daemon.mirror) == synced_files(first.root)
    assert second.run("main.py").stdout == "second\n"
    first.write("lib.py", "WHO = 'first, edited'\n")
    assert first.run("main.py").stdout == "first, edited\n"
    assert second.run("main.py").stdout == "second\n"
    assert synced_files(daemon.mirror) == synced_files(second.root)


# -- crafted requests ------------------------------------------------------------------------------


UNSAFE_FORMS = [
    "/tmp/hotswap-escape.py",
    "../escape.py",
    "sub/../../escape.py",
    "C:/escape.py",
    "C:\\escape.py",
    "\\\\server\\share\\escape.py",
    "./main.py",
    "a//b.py",
    "nul\0.py",
    "x" * 256 + ".py",
    "",
    "outside-link/escape.py",  # a symlink in the mirror leading out of it
    "fifo",  # a FIFO in the mirror
]


def test_each_unsafe_path_form_is_refused_and_changes_nothing(
    tmp_path: Path, editor: Editor
) -> None:
    mirror = editor.daemon.mirror
    outside = tmp_path / "outside"
    outside.mkdir()
    editor.write("main.py", "print('ok')\n")
    client = editor.daemon.client()
    try:
        state = sync_workspace(client, editor.root)
        (mirror / "outside-link").symlink_to(outside)
        os.mkfifo(mirror / "fifo")
        before = file_ids(mirror)
        acked = {p: sha256_bytes(d) for p, d in synced_files(editor.root).items()}
        for path in UNSAFE_FORMS:
            data = b"print('pwned')\n"
            good = {"path": "fine.py", "sha256": sha256_bytes(b"F\n"), "data": b"F\n"}
            bad = {"path": path, "sha256": sha256_bytes(data), "data": data}
            target = digest_of({**acked, "fine.py": good["sha256"], path: bad["sha256"]})
            for files, deleted in (([good, bad], []), ([good], [path])):
                with pytest.raises(DaemonError) as info:
                    client.request("sync", sync_body(editor.root, state, target, files, deleted))
                assert info.value.ename == "unsafe_path", (path, info.value)
                assert file_ids(mirror) == before, path
        manifest = client.request("manifest", {"root": str(editor.root)})
        validate(manifest)
        assert manifest["body"]["state"] == state
    finally:
        client.close()
    assert list(outside.iterdir()) == []
    assert not Path("/tmp/hotswap-escape.py").exists()
    assert not (tmp_path / "gpu-box" / "escape.py").exists()
    assert editor.run("main.py").stdout == "ok\n"  # the daemon serves on


def test_a_diff_against_an_unknown_base_is_told_to_resync(editor: Editor) -> None:
    editor.write("main.py", "print('ok')\n")
    client = editor.daemon.client()
    try:
        state = sync_workspace(client, editor.root)
        before = file_ids(editor.daemon.mirror)
        new = {"path": "new.py", "sha256": sha256_bytes(b"N\n"), "data": b"N\n"}
        acked = {p: sha256_bytes(d) for p, d in synced_files(editor.root).items()}
        target = digest_of({**acked, "new.py": new["sha256"]})
        for base in ("0" * 64, "f" * 64, digest_of({"other.py": sha256_bytes(b"")})):
            with pytest.raises(DaemonError) as info:
                client.request("sync", sync_body(editor.root, base, target, [new], []))
            assert info.value.ename == "resync"
        with pytest.raises(DaemonError) as info:  # the right base, a target it cannot reach
            client.request("sync", sync_body(editor.root, state, "1" * 64, [new], []))
        assert info.value.ename == "resync"
        assert file_ids(editor.daemon.mirror) == before
        reply = client.request("sync", sync_body(editor.root, state, target, [new], []))
        validate(reply)
        assert reply["body"]["state"] == target and reply["body"]["applied"] is True
        assert (editor.daemon.mirror / "new.py").read_bytes() == b"N\n"
    finally:
        client.close()


def sync_body(
    root: Path, base: str, target: str, files: list[dict[str, Any]], deleted: list[str]
) -> dict[str, Any]:
    return {
        "root": str(root),
        "base": base,
        "target": target,
        "files": files,
        "deleted": deleted,
        "transaction": os.urandom(8).hex(),
        "final": True,
    }


# -- a large first sync ----------------------------------------------------------------------------


def generate_workspace(root: Path, files: int = 300, total_mb: int = 20) -> None:
    size = total_mb * 1024 * 1024 // files
    for i in range(files):
        path = root / f"data/part{i % 10}/f{i:03d}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(i.to_bytes(4, "big") * (size // 4))


def test_a_large_first_sync_prints_progress(editor: Editor) -> None:
    generate_workspace(editor.root)
    editor.write("main.py", "import os\nprint(len(os.listdir('data/part3')))\n")
    proc = editor.run("main.py")
    assert proc.stdout == "30\n"
    progress = [line for line in proc.stderr.splitlines() if line.startswith("hotswap: synced")]
    assert progress, proc.stderr
    assert "302/302 files" in progress[-1] and "(100%)" in progress[-1]
    assert synced_files(editor.daemon.mirror) == synced_files(editor.root)


def test_a_large_first_sync_sends_progress_events(editor: Editor) -> None:
    generate_workspace(editor.root)
    client = editor.daemon.client()
    try:
        sync_workspace(client, editor.root)
        events = list(client.backlog)
    finally:
        client.close()
    for msg in events:
        validate(msg)
    progress = [m["body"] for m in events if m["type"] == "sync_progress"]
    assert MESSAGE_TYPES["sync_progress"].kind == "event"
    assert len(progress) >= 2  # 20 MB in chunks of at most 8 MB
    assert {p["files_total"] for p in progress} == {301}
    assert {p["bytes_total"] for p in progress} == {
        sum(len(d) for d in synced_files(editor.root).values())
    }
    done = [p["bytes_done"] for p in progress]
    assert done == sorted(done) and 0 < done[0] < done[-1] < progress[0]["bytes_total"]
    assert len({p["transaction"] for p in progress}) == 1
    assert synced_files(editor.daemon.mirror) == synced_files(editor.root)


# -- in place --------------------------------------------------------------------------------------


def test_in_place_runs_never_write_to_the_workspace(workspace: Workspace) -> None:
    workspace.write("main.py", "import helpers\nprint(helpers.V)\n")
    workspace.write("helpers.py", "V = 'v1'\n")
    workspace.write("pkg/data.txt", "data\n")
    before = file_ids(workspace.root)
    proc = workspace.run("main.py")
    assert (proc.returncode, proc.stdout) == (0, "v1\n"), proc.stderr
    assert file_ids(workspace.root) == before
    workspace.write("helpers.py", "V = 'v2'\n")
    before = file_ids(workspace.root)
    proc = workspace.run("main.py")
    assert (proc.returncode, proc.stdout) == (0, "v2\n"), proc.stderr
    assert file_ids(workspace.root) == before
    assert not (workspace.root / ".hotswap" / "mirror").exists()
