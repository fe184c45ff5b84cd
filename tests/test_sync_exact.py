"""Level 3: a run executes exactly the state its request named, and shows the editor's paths.

Two editors (two folders, two `hotswap run --backend` processes) queue runs against one
`hotswap serve --mirror`; an in-place workspace queues runs while its files change; and what a
script prints on stderr about the workspace (tracebacks it prints itself, logging, warnings)
reads in the editor's terms.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from conftest import HOTSWAP, Workspace, base_env, wait_until
from hotswap.paths import StreamMapper
from test_sync_cli import Editor, MirrorDaemon, daemon, editor  # the same fixtures

__all__ = ["daemon", "editor"]


def start(argv: list[str], cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=base_env(),
        cwd=cwd,
    )


def editor_run(ed: Editor, *args: str) -> subprocess.Popen[str]:
    backend = ["--backend", str(ed.daemon.copy)]
    return start([HOTSWAP, "run", "--workspace", str(ed.root), *backend, *args], ed.root)


def workspace_run(ws: Workspace, *args: str) -> subprocess.Popen[str]:
    return start([HOTSWAP, "run", "--workspace", str(ws.root), *args], ws.root)


SLOW = """\
import os
import time
while not os.path.exists({gate!r}):
    time.sleep(0.02)
print("slow done")
"""


def finish(proc: subprocess.Popen[str]) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, out, err


def waiting_runs(status: dict[str, Any]) -> int:
    return sum(1 for r in status["runs"] if r["state"] == "pending")


def test_a_queued_run_runs_its_own_editors_files(tmp_path: Path, daemon: MirrorDaemon) -> None:
    first = Editor(tmp_path / "laptop" / "first", daemon)
    second = Editor(tmp_path / "desktop" / "second", daemon)
    gate = tmp_path / "gate"
    for ed, who in ((first, "first"), (second, "second")):
        ed.write("main.py", "import lib\nprint(lib.WHO)\n")
        ed.write("lib.py", f"WHO = {who!r}\n")
        ed.write("slow.py", SLOW.format(gate=str(gate)))
    second.write("only_second.py", "")
    client = daemon.client()
    procs = [editor_run(first, "slow.py")]
    try:
        wait_until(lambda: client.request("status")["body"]["runs"], "the slow run never came")
        procs.append(editor_run(first, "--queue", "main.py"))
        wait_until(lambda: waiting_runs(client.request("status")["body"]) == 1, "A never queued")
        procs.append(editor_run(second, "--queue", "main.py"))
        wait_until(lambda: waiting_runs(client.request("status")["body"]) == 2, "B never queued")
        assert (daemon.mirror / "only_second.py").exists(), "the mirror moved on to B's state"
        gate.touch()
        results = [finish(proc) for proc in procs]
    finally:
        client.close()
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    assert results[0] == (0, "slow done\n", "")
    assert results[1] == (0, "first\n", ""), "A's queued run printed A's lib.py"
    assert results[2] == (0, "second\n", ""), "and B's run B's"


def test_a_queued_run_whose_state_is_gone_in_place_resyncs_once(
    workspace: Workspace, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    workspace.write("slow.py", SLOW.format(gate=str(gate)))
    workspace.write("main.py", "import lib\nprint(lib.WHO)\n")
    workspace.write("lib.py", "WHO = 'saved first'\n")
    assert workspace.run("main.py").stdout == "saved first\n"  # the daemon is up
    procs = [workspace_run(workspace, "slow.py")]
    try:
        wait_until(lambda: workspace.status()["runs"][-1]["state"] == "running", "no slow run")
        procs.append(workspace_run(workspace, "--queue", "main.py"))
        wait_until(lambda: waiting_runs(workspace.status()) == 1, "the queued run never came")
        workspace.write("lib.py", "WHO = 'saved later'\n")  # the editor saves again
        procs.append(workspace_run(workspace, "--queue", "main.py"))  # and its state is synced
        wait_until(lambda: waiting_runs(workspace.status()) == 2, "the second one never came")
        gate.touch()
        results = [finish(proc) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    assert results[1:] == [(0, "saved later\n", ""), (0, "saved later\n", "")]
    reasons = [r.get("reason") for r in workspace.status()["runs"]]
    assert reasons.count("resync") == 1, "the first queued run was refused, then sent again"


PRINTS = {
    "main.py": """\
        import logging
        import traceback
        import warnings

        import helper

        try:
            helper.fail()
        except ValueError:
            traceback.print_exc()
        logging.basicConfig(format="%(pathname)s:%(lineno)d %(message)s")
        try:
            helper.fail()
        except ValueError:
            logging.exception("caught")
        warnings.warn("careful")
        helper.warn()
        print(__file__)
        """,
    "helper.py": """\
        import warnings


        def fail():
            raise ValueError("from helper")


        def warn():
            warnings.warn("from helper", stacklevel=1)
        """,
}


def test_stderr_shows_editor_paths_stdout_stays_as_written(editor: Editor) -> None:
    for rel, text in PRINTS.items():
        editor.write(rel, text)
    plain = subprocess.run(
        [sys.executable, "main.py"], capture_output=True, text=True, cwd=editor.root
    )
    hot = editor.run("main.py")
    assert hot.stderr == plain.stderr, "stderr reads as python's in the editor's folder"
    assert str(editor.daemon.mirror) not in hot.stderr
    assert plain.stderr.count(str(editor.root / "helper.py")) == 3  # two tracebacks, a warning
    assert hot.stdout == f"{editor.daemon.mirror / 'main.py'}\n", "print(__file__) unmapped"


MANY = """\
import os
import sys
root = os.path.dirname(os.path.abspath(__file__))
lines = "".join(f"{root}/pkg/module_{i}.py:{i}: a warning\\n" for i in range(6000))
os.write(2, lines.encode())  # one write of ~400 KB: the daemon reads it in many pieces
print("written")
"""


def test_a_mirror_path_split_between_two_reads_is_mapped(editor: Editor) -> None:
    editor.write("many.py", MANY)
    hot = editor.run("many.py")
    expected = "".join(f"{editor.root}/pkg/module_{i}.py:{i}: a warning\n" for i in range(6000))
    assert (hot.stdout, hot.stderr) == ("written\n", expected)


def test_the_stream_mapper_holds_back_a_root_split_anywhere() -> None:
    text = b'  File "/srv/m/main.py", line 3\n/srv/m/x.py:4: W\n/srv/mx/a /srv/m\n50/'
    expected = text.replace(b"/srv/m/", b"/home/me/p/")
    for cut in range(len(text) + 1):
        mapper = StreamMapper(("/srv/m", "/home/me/p"))
        out = mapper.feed(text[:cut]) + mapper.feed(text[cut:])
        assert mapper.held == b"/", "only the start of a root waits"
        assert out + mapper.flush() == expected, cut
