"""A run never sees a previous run: what a script changes in the worker is put back.

Each case prints the state it is about to change, then changes it. Plain python prints the
fresh state every time; so must hotswap, twice in a row on one worker (the second run is where
a leak would show). Output is compared byte for byte; one test chains every case on one worker.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Workspace, compare_runs, wait_until
from hotswap.entry import EntryError, python_command

CASES: dict[str, str] = {
    "stdout-redirected-to-devnull": """\
        import os

        print("visible", flush=True)
        os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
        print("silenced, as a C-output silencer left behind")
        """,
    "stdio-closed": """\
        import os
        import sys

        print("closing fds 0, 1 and 2", flush=True)
        sys.stderr.flush()
        for fd in (0, 1, 2):
            os.close(fd)
        """,
    "umask": """\
        import os

        print("umask", oct(os.umask(0o077)))
        """,
    "gc": """\
        import gc

        print("gc", gc.isenabled(), gc.get_threshold(), gc.get_debug())
        gc.disable()
        gc.set_threshold(5, 6, 7)
        """,
    "builtins": """\
        import builtins

        print("builtins", hasattr(builtins, "LEAKED"), abs(-1), "_" in vars(builtins))
        builtins.LEAKED = "added by a run"
        builtins.abs = lambda x: "replaced by a run"
        del builtins.divmod
        """,
    "sys-hooks-and-limits": """\
        import sys
        import threading

        print(
            "sys",
            sys.getrecursionlimit(),
            sys.getswitchinterval(),
            sys.get_int_max_str_digits(),
            sys.excepthook is sys.__excepthook__,
            sys.displayhook is sys.__displayhook__,
            sys.gettrace(),
            sys.getprofile(),
            threading.excepthook is threading.__excepthook__,
            sys.dont_write_bytecode,
        )
        sys.setrecursionlimit(5000)
        sys.setswitchinterval(0.05)
        sys.set_int_max_str_digits(1000)
        sys.excepthook = lambda *args: None
        sys.displayhook = lambda value: None
        threading.excepthook = lambda args: None
        sys.setprofile(lambda *args: None)
        sys.dont_write_bytecode = not sys.dont_write_bytecode
        """,
    "library-monkeypatch": """\
        import json
        import logging
        import os.path
        import tempfile

        print("patches", json.dumps([1]), os.path.join("a", "b"), hasattr(json, "added"))
        print("settings", tempfile.gettempdir(), logging.raiseExceptions, hasattr(json, "FLAG"))
        tempfile.tempdir = "/leaked/tmp"
        logging.raiseExceptions = False
        json.FLAG = 1
        json.dumps = lambda *args, **kwargs: "patched dumps"
        os.path.join = lambda *parts: "patched join"
        json.added = lambda: "added by a run"
        del json.loads
        """,
    "torch-monkeypatch": """\
        import torch

        print("relu", torch.nn.functional.relu(torch.tensor([-1.0, 2.0])))
        torch.nn.functional.relu = lambda x: x
        """,
    "torch-switches": """\
        import torch

        print(torch.tensor([1.23456789, 2.0]))
        print(
            torch.is_anomaly_enabled(),
            torch.are_deterministic_algorithms_enabled(),
            torch.get_float32_matmul_precision(),
            torch.get_num_threads(),
            torch.get_default_dtype(),
            torch.get_default_device(),
            torch.is_grad_enabled(),
            torch.tensor([1.0]).device,
        )
        torch.set_printoptions(precision=1)
        torch.autograd.set_detect_anomaly(True)
        torch.use_deterministic_algorithms(True)
        torch.set_float32_matmul_precision("medium")
        torch.set_num_threads(1)
        torch.set_default_dtype(torch.float64)
        torch.set_default_device("meta")
        torch.set_grad_enabled(False)
        """,
    "numpy-and-socket-switches": """\
        import socket

        import numpy

        print(numpy.array([1.23456789]), numpy.geterr()["divide"], socket.getdefaulttimeout())
        numpy.set_printoptions(precision=1)
        numpy.seterr(all="raise")
        socket.setdefaulttimeout(5)
        """,
    "multiprocessing-start-method": """\
        import multiprocessing as mp

        if __name__ == "__main__":
            print("start method set", mp.get_start_method(allow_none=True))
            mp.set_start_method("spawn")
            print("now", mp.get_start_method())
        """,
    "thread-names-and-daemon-threads": """\
        import threading
        import time

        time.sleep(0.4)  # a daemon thread a previous run left would print now
        print("first thread", threading.Thread(target=print).name)


        def late():
            time.sleep(0.3)
            print("a daemon thread printed after its run ended")


        threading.Thread(target=late, daemon=True).start()
        """,
    "seeds": """\
        import random

        import numpy
        import torch

        after_seed_1 = random.Random(1)
        after_seed_1.random()
        numpy_after_seed_1 = numpy.random.RandomState(1)
        numpy_after_seed_1.random()
        print("random fresh", random.random() != after_seed_1.random())
        print("numpy fresh", numpy.random.random() != numpy_after_seed_1.random())
        print("torch fresh", torch.initial_seed() != 1)
        random.seed(1)
        random.random()
        numpy.random.seed(1)
        numpy.random.random()
        torch.manual_seed(1)
        """,
    "forked-child-exits": """\
        import os
        import sys

        pid = os.fork()
        if pid == 0:
            print("child says bye", flush=True)
            sys.exit(3)
        _, status = os.waitpid(pid, 0)
        print("child exit code", os.waitstatus_to_exitcode(status))
        """,
}


def write_case(ws: Workspace, name: str) -> str:
    path = f"cases/{name.replace('-', '_')}.py"
    ws.write(path, CASES[name])
    return path


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    ws = Workspace(tmp_path_factory.mktemp("isolation") / "ws")
    try:
        yield ws
    finally:
        ws.stop()


@pytest.mark.parametrize("name", list(CASES))
def test_what_a_run_changes_is_put_back(shared: Workspace, name: str) -> None:
    compare_runs(shared, write_case(shared, name))


def test_all_cases_in_a_row_on_one_worker(workspace: Workspace) -> None:
    paths = [write_case(workspace, name) for name in CASES]
    expected = {path: workspace.python(path) for path in paths}
    pids = set()
    for _ in range(2):
        for path in paths:
            hot = workspace.run(path)
            plain = expected[path]
            assert (hot.returncode, hot.stdout, hot.stderr) == (
                plain.returncode,
                plain.stdout,
                plain.stderr,
            ), path
            pids |= {w["pid"] for w in workspace.status()["workers"]}
    assert len(pids) == 1, "one worker served every run"


def test_fresh_seeds_on_every_run(shared: Workspace) -> None:
    """As two python processes, two runs draw different numbers (no fixed torch seed)."""
    shared.write(
        "draw.py", "import random\nimport torch\nprint(random.random(), torch.initial_seed())\n"
    )
    draws = {shared.run("draw.py").stdout for _ in range(2)}
    assert len(draws) == 2


# -- what cannot be put back in place ----------------------------------------------------

STUBBORN_THREAD = """\
import threading
import time


def stubborn():
    while True:
        try:
            time.sleep(0.05)
        except SystemExit:
            pass


threading.Thread(target=stubborn, name="stubborn", daemon=True).start()
print("started")
"""


def test_a_thread_that_cannot_be_stopped_is_named(workspace: Workspace) -> None:
    workspace.write("stubborn.py", STUBBORN_THREAD)
    hot = workspace.run("stubborn.py")
    assert (hot.returncode, hot.stdout) == (0, "started\n")
    assert "daemon thread 'stubborn' did not stop" in hot.stderr


CLOSES_WORKER_PIPES = """\
import os

print("closing what else points at my stdout", flush=True)
for fd in range(3, 1024):
    try:
        if fd != 1 and os.path.sameopenfile(fd, 1):
            os.close(fd)
    except OSError:
        pass
"""


def test_a_worker_that_cannot_be_put_back_is_replaced(workspace: Workspace) -> None:
    workspace.write("breaks_worker.py", CLOSES_WORKER_PIPES)
    workspace.write("hello.py", "print('hello')\n")
    assert workspace.run("hello.py").stdout == "hello\n"
    pid_before = workspace.status()["workers"][0]["pid"]
    first = workspace.run("breaks_worker.py")
    assert first.returncode == 0
    assert "the worker restarts so the next run starts clean" in first.stderr
    for _ in range(2):
        hot = workspace.run("hello.py")
        assert (hot.returncode, hot.stdout, hot.stderr) == (0, "hello\n", "")
    assert workspace.status()["workers"][0]["pid"] != pid_before


FORKS = """\
import os
import time
from pathlib import Path

ended = os.fork()
if ended == 0:
    os._exit(0)
sleeper = os.fork()
if sleeper == 0:
    time.sleep(60)
    os._exit(0)
reading, writing = os.pipe()
if os.fork() == 0:  # a daemonized grandchild: its parent exits at once
    grandchild = os.fork()
    if grandchild == 0:
        time.sleep(60)
        os._exit(0)
    os.write(writing, str(grandchild).encode())
    os._exit(0)
grandchild = int(os.read(reading, 100))
Path("pids").write_text(f"{ended} {sleeper} {grandchild}")
time.sleep(0.2)
"""


def _state(pid: int) -> str | None:
    """The process's state letter in /proc (Z: a zombie), None once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2]


def test_children_are_reaped_and_stop_ends_them(workspace: Workspace) -> None:
    workspace.write("forks.py", FORKS)
    assert workspace.run("forks.py").returncode == 0
    ended, sleeper, grandchild = map(int, (workspace.root / "pids").read_text().split())
    assert _state(ended) is None, "a child that ended is reaped, not left a zombie"
    assert _state(sleeper) not in (None, "Z") and _state(grandchild) not in (None, "Z")
    assert workspace.hotswap("stop").returncode == 0
    wait_until(
        lambda: all(_state(pid) in (None, "Z") for pid in (sleeper, grandchild)),
        "a process a run started outlived `hotswap stop`",
        10,
    )


# -- hotswap run takes what python takes --------------------------------------------------

PRINTS_ITSELF = """\
import sys

print("name", __name__, "spec", getattr(__spec__, "name", None), "file", globals().get("__file__"))
print("argv", sys.argv, "path0", repr(sys.path[0]), "package", __package__)
print("globals", list(globals()))
"""


def _write_python_forms(ws: Workspace) -> None:
    ws.write("forms/script.py", PRINTS_ITSELF)
    ws.write("forms/pkg/__init__.py", "")
    ws.write("forms/pkg/train.py", PRINTS_ITSELF + "raise ValueError('from a module')\n")
    ws.write("forms/pkg/__main__.py", PRINTS_ITSELF)
    ws.write("forms/pkg/broken.py", "def f(:\n    pass\n")
    ws.write("forms/app/__main__.py", PRINTS_ITSELF)
    (ws.root / "forms" / "empty_dir").mkdir(exist_ok=True)
    with zipfile.ZipFile(ws.root / "forms" / "app.zip", "w") as archive:
        archive.writestr("__main__.py", PRINTS_ITSELF)


FORMS = {
    "script-with-double-dash": ("script.py", "--", "a", "--b"),
    "module": ("-m", "pkg.train", "--lr", "3"),
    "package-module": ("-m", "pkg", "x"),
    "module-missing": ("-m", "no_such_module"),
    "module-syntax-error": ("-m", "pkg.broken"),
    "module-missing-parent": ("-m", "no_such_pkg.sub"),
    "code": ("-c", "import sys; print(sys.argv, __name__, __spec__); raise SystemExit(4)", "q"),
    "code-error": ("-c", "1/0"),
    "code-empty": ("-c", ""),
    "directory": ("app", "x"),
    "zip": ("app.zip", "y"),
    "directory-without-main": ("empty_dir",),
    "double-dash-first": ("--", "script.py", "z"),
}


@pytest.mark.parametrize("form", list(FORMS))
def test_every_form_python_takes(shared: Workspace, form: str) -> None:
    _write_python_forms(shared)
    argv = FORMS[form]
    here = shared.root / "forms"
    plain = shared.python(*argv, cwd=here)
    for _ in range(2):
        hot = shared.run(*argv, cwd=here)
        assert (hot.returncode, hot.stdout, hot.stderr) == (
            plain.returncode,
            plain.stdout,
            plain.stderr,
        ), f"hotswap differs from python for {argv}:\nPY {plain}\nHS {hot}"


def test_missing_module_argument_exits_2(shared: Workspace) -> None:
    hot = shared.run("-m")
    assert hot.returncode == 2 and "Argument expected for the -m option" in hot.stderr


def test_module_runs_under_its_spec_name(shared: Workspace) -> None:
    _write_python_forms(shared)
    plain = shared.python("-m", "pkg.train", cwd=shared.root / "forms")
    assert plain.stdout.startswith(
        f"name __main__ spec pkg.train file {shared.root / 'forms' / 'pkg' / 'train.py'}\n"
    )
    assert os.sep in plain.stdout.splitlines()[1]


@pytest.mark.parametrize(
    ("module", "code", "command", "expected"),
    [
        (None, None, ["train.py", "--", "a"], ("path", "train.py", ["--", "a"])),
        (None, None, ["--", "train.py", "-m"], ("path", "train.py", ["-m"])),
        (["pkg.train", "--lr", "3"], None, [], ("module", "pkg.train", ["--lr", "3"])),
        (["pkg"], None, ["a"], ("module", "pkg", ["a"])),  # -mpkg a
        (None, ["print(1)", "x"], [], ("code", "print(1)", ["x"])),
    ],
)
def test_command_lines_read_as_python_reads_them(
    module: list[str] | None,
    code: list[str] | None,
    command: list[str],
    expected: tuple[str, str, list[str]],
) -> None:
    assert tuple(python_command(module, code, command)) == expected


@pytest.mark.parametrize(("module", "command"), [([], []), (None, []), (None, ["--"])])
def test_a_command_line_without_an_entry_says_what_to_give(
    module: list[str] | None, command: list[str]
) -> None:
    with pytest.raises(EntryError, match="usage: hotswap run"):
        python_command(module, None, command)
