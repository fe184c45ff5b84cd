"""A run is ``python ENTRY ARGS``, as far as the script can tell.

Every behaviour the issue lists, through the real CLI against a real daemon, compared with
plain ``python`` running the same script: byte for byte where the output should be identical.
"""

from __future__ import annotations

import hashlib
import os
import re
import signal
import subprocess
from collections.abc import Iterator

import pytest
from conftest import REPO, Workspace, base_env, compare_runs


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    """One daemon for the tests whose scripts cannot disturb each other (each its own files)."""
    ws = Workspace(tmp_path_factory.mktemp("parity") / "ws")
    try:
        yield ws
    finally:
        ws.stop()


def outcome(proc: subprocess.CompletedProcess[str]) -> tuple[int, str, str]:
    return proc.returncode, proc.stdout, proc.stderr


# -- who the script is ----------------------------------------------------------------

IDENTITY = """\
import os
import sys

print("globals", list(globals()))
print("name", __name__, "spec", __spec__, "package", __package__, "cached", __cached__)
print("file", __file__, os.path.isabs(__file__))
print("main", sys.modules["__main__"].__file__ == __file__)
print("argv", sys.argv)
print("path0", sys.path[0])
print("cwd", os.getcwd())
"""


def test_main_module_argv_and_path_are_pythons(shared: Workspace) -> None:
    shared.write("identity.py", IDENTITY)
    args = ("a", "--x", "-v", "--", "two words", "--y=1", "ünï")
    plain, _ = compare_runs(shared, "identity.py", *args)
    assert f"file {shared.root / 'identity.py'} True\n" in plain.stdout
    assert f"argv ['identity.py', {', '.join(map(repr, args))}]\n" in plain.stdout
    assert f"path0 {shared.root}\n" in plain.stdout


@pytest.mark.parametrize(
    ("script", "cwd"),
    [("tools/deep/identity.py", "."), ("identity.py", "sub"), ("tools/deep/identity.py", "sub")],
    ids=["script-in-subfolder", "run-from-subdirectory", "both"],
)
def test_script_folder_and_client_cwd(shared: Workspace, script: str, cwd: str) -> None:
    shared.write(script, IDENTITY)
    here = shared.root / cwd
    here.mkdir(exist_ok=True)
    entry = os.path.relpath(shared.root / script, here)
    plain, _ = compare_runs(shared, entry, "--x", cwd=here)
    assert f"file {here}{os.sep}{entry} True\n" in plain.stdout, "python keeps '..' in __file__"
    assert f"path0 {(shared.root / script).parent}\n" in plain.stdout
    assert f"cwd {here.resolve()}\n" in plain.stdout


def test_python_path_is_pythons(shared: Workspace) -> None:
    """All of sys.path, also with the client's PYTHONPATH (which comes right after the folder)."""
    shared.write("syspath.py", "import sys\nfor p in sys.path:\n    print(p)\n")
    compare_runs(shared, "syspath.py")
    extra = shared.root / "extra_lib"
    extra.mkdir(exist_ok=True)
    plain, _ = compare_runs(shared, "syspath.py", env=base_env(PYTHONPATH=str(extra)))
    assert plain.stdout.splitlines()[:2] == [str(shared.root), str(extra)]


ENVIRON = """\
import os
import subprocess

print("FOO", os.environ.get("FOO"), "SET_BY_RUN", os.environ.get("SET_BY_RUN"))
subprocess.run(["sh", "-c", 'echo "child sees FOO=${FOO-unset}"'], check=True)
os.environ["SET_BY_RUN"] = "leaked"
os.environ.pop("HOME", None)
print("done", flush=True)
"""


def test_client_environment_is_seen_and_a_runs_changes_are_gone(shared: Workspace) -> None:
    shared.write("environ.py", ENVIRON)
    with_foo, _ = compare_runs(shared, "environ.py", env=base_env(FOO="bar"))
    assert with_foo.stdout.startswith("FOO bar SET_BY_RUN None\nchild sees FOO=bar\n")
    without, _ = compare_runs(shared, "environ.py")
    assert without.stdout.startswith("FOO None SET_BY_RUN None\nchild sees FOO=unset\n")
    shared.write("home.py", "import os\nprint(os.environ.get('HOME'))\n")
    plain, _ = compare_runs(shared, "home.py")
    assert plain.stdout == f"{os.environ.get('HOME')}\n", "what the last run deleted is back"


# -- workspace modules are read again every run -----------------------------------------

USES_HELPER = """\
import helper

print("helper says", helper.VALUE)
try:
    import extra
except ImportError as exc:
    print("no extra:", exc)
else:
    print("extra says", extra.VALUE)
"""


def test_edited_added_and_deleted_modules_are_seen(shared: Workspace) -> None:
    # Each edit changes the file's size: python's bytecode cache, like ours, trusts mtime and size.
    shared.write("mods/main.py", USES_HELPER)
    shared.write("mods/helper.py", "VALUE = 'first'\n")
    plain, _ = compare_runs(shared, "mods/main.py")
    assert plain.stdout == "helper says first\nno extra: No module named 'extra'\n"

    shared.write("mods/helper.py", "VALUE = 'second, after an edit'\n")
    plain, _ = compare_runs(shared, "mods/main.py")
    assert plain.stdout.startswith("helper says second, after an edit\n")

    shared.write("mods/extra.py", "VALUE = 'a new module'\n")
    plain, _ = compare_runs(shared, "mods/main.py")
    assert plain.stdout.endswith("extra says a new module\n")

    (shared.root / "mods" / "extra.py").unlink()
    plain, _ = compare_runs(shared, "mods/main.py")
    assert plain.stdout.endswith("no extra: No module named 'extra'\n")

    (shared.root / "mods" / "helper.py").unlink()
    plain, _ = compare_runs(shared, "mods/main.py")
    assert plain.returncode == 1
    assert plain.stderr.endswith("ModuleNotFoundError: No module named 'helper'\n")


def test_edited_package_module_is_seen(shared: Workspace) -> None:
    shared.write("pkgs/main.py", "from lib.sub import VALUE\nprint(VALUE)\n")
    shared.write("pkgs/lib/__init__.py", "")
    shared.write("pkgs/lib/sub.py", "VALUE = 1\n")
    assert compare_runs(shared, "pkgs/main.py")[0].stdout == "1\n"
    shared.write("pkgs/lib/sub.py", "VALUE = 'two'\n")
    assert compare_runs(shared, "pkgs/main.py")[0].stdout == "two\n"


# -- what one run changes, the next one does not see -------------------------------------

MESS = """\
import io
import logging
import os
import signal
import sys
import warnings


class Shout:
    def __init__(self, stream):
        self.stream = stream

    def write(self, text):
        return self.stream.write(text.upper())

    def flush(self):
        self.stream.flush()


os.chdir("/")
sys.path.append("/leaked/path")
sys.argv.append("--leaked")
os.environ["LEAKED"] = "yes"
logging.basicConfig(level=logging.DEBUG)
logging.getLogger("app").addHandler(logging.StreamHandler(sys.stdout))
logging.getLogger("app").setLevel(logging.DEBUG)
warnings.simplefilter("error")
signal.signal(signal.SIGTERM, lambda *args: None)
signal.signal(signal.SIGUSR1, lambda *args: None)
sys.excepthook = lambda *args: print("leaked hook")
sys.stdout = Shout(sys.stdout)
print("shouted")
sys.stderr = io.StringIO()
print("swallowed", file=sys.stderr)
"""

CHECK = """\
import logging
import os
import signal
import sys
import warnings

print("cwd", os.getcwd())
print("leaked path", "/leaked/path" in sys.path)
print("argv", sys.argv)
print("environ", os.environ.get("LEAKED"))
print("root", logging.root.handlers, logging.getLevelName(logging.root.level))
print("app", logging.getLogger("app").handlers, logging.getLogger("app").level)
print("filters", len(warnings.filters), warnings.filters[:3])
for sig in (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT, signal.SIGPIPE, signal.SIGCHLD):
    handler = signal.getsignal(sig)
    print(signal.Signals(sig).name, getattr(handler, "name", handler))
print("excepthook", sys.excepthook is sys.__excepthook__)
print("streams", type(sys.stdout).__name__, type(sys.stderr).__name__)
warnings.warn("only a warning")
logging.getLogger("app").info("app info is not shown")
logging.warning("root warning")
print("finished")
"""


def test_a_runs_changes_to_the_process_are_put_back(shared: Workspace) -> None:
    shared.write("restore/mess.py", MESS)
    shared.write("restore/check.py", CHECK)
    fresh, _ = compare_runs(shared, "restore/check.py")
    messy, _ = compare_runs(shared, "restore/mess.py")
    assert messy.stdout == "SHOUTED\n" and messy.stderr == ""
    after, _ = compare_runs(shared, "restore/check.py")
    assert outcome(after) == outcome(fresh)
    assert "root [] WARNING\n" in fresh.stdout and "SIGTERM SIG_DFL\n" in fresh.stdout
    assert "UserWarning: only a warning" in fresh.stderr
    assert fresh.stderr.endswith("WARNING:root:root warning\n")


ONCE_PER_LOCATION = """\
import copy
import warnings

import noisy


class Fragile:
    def __deepcopy__(self, memo):
        warnings.warn("deepcopy is costly", stacklevel=2)  # location: inside the stdlib's copy.py
        return Fragile()


noisy.poke()
noisy.poke()
copy.deepcopy(Fragile())
warnings.warn("a DeprecationWarning from __main__", DeprecationWarning)
with warnings.catch_warnings():
    warnings.simplefilter("once")
    for _ in range(2):
        warnings.warn("once per run")
print("done")
"""


def test_once_per_location_warnings_show_on_every_run(shared: Workspace) -> None:
    shared.write("warn/once.py", ONCE_PER_LOCATION)
    shared.write(
        "warn/noisy.py",
        "import warnings\n\n\ndef poke():\n    warnings.warn('from a workspace module')\n",
    )
    plain, _ = compare_runs(shared, "warn/once.py")
    assert plain.stderr.count("UserWarning: from a workspace module") == 1
    assert f"{os.sep}copy.py:" in plain.stderr and "UserWarning: deepcopy is costly" in plain.stderr
    assert plain.stderr.count("UserWarning: once per run") == 1
    assert "DeprecationWarning: a DeprecationWarning from __main__" in plain.stderr


# -- the end of a run ---------------------------------------------------------------------

AT_EXIT = """\
import atexit
import sys

import exit_helper


def bye(who):
    print("bye", who)


def boom():
    settings = {}
    return settings["atexit handler failed"]


def never():
    print("unregistered handler ran")


atexit.register(bye, "first")
atexit.register(boom)
atexit.register(never)
atexit.unregister(never)


@atexit.register
def last():
    print("last registered, first to run", file=sys.stderr)


print("main done")
"""


def without_addresses(text: str) -> str:
    return re.sub(r" at 0x[0-9a-f]+>", " at 0x...>", text)


def test_atexit_handlers_run_once_at_the_end_of_the_run(shared: Workspace) -> None:
    """python names the failed handler by its repr: the address differs between processes."""
    shared.write("atexit/main.py", AT_EXIT)
    shared.write("atexit/exit_helper.py", "import atexit\n\natexit.register(print, 'helper')\n")
    plain = shared.python("atexit/main.py")
    assert plain.stdout == "main done\nbye first\nhelper\n", "LIFO, each once"
    assert plain.stderr.startswith(
        "last registered, first to run\nException ignored in atexit callback: <function boom at"
    )
    assert plain.stderr.endswith("KeyError: 'atexit handler failed'\n")
    for _ in range(2):
        hot = shared.run("atexit/main.py")
        assert (hot.returncode, hot.stdout) == (plain.returncode, plain.stdout)
        assert without_addresses(hot.stderr) == without_addresses(plain.stderr)


THREADS = """\
import atexit
import threading
import time


def late():
    time.sleep(0.5)
    print("thread finished")


atexit.register(print, "atexit ran")
threading.Thread(target=late).start()
print("main done")
"""


def test_non_daemon_threads_are_waited_for_before_atexit(shared: Workspace) -> None:
    shared.write("threads.py", THREADS)
    plain, _ = compare_runs(shared, "threads.py")
    assert plain.stdout == "main done\nthread finished\natexit ran\n"


# -- exit codes and errors ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("statement", "code"),
    [
        ("sys.exit(3)", 3),
        ("sys.exit('message to stderr')", 1),
        ("sys.exit(None)", 0),
        ("sys.exit()", 0),
        ("sys.exit(256)", 0),
        ("sys.exit(-1)", 255),
        ("raise SystemExit(True)", 1),
        ("sys.exit(2.5)", 1),
        ("raise SystemExit('a', 'b')", 1),
    ],
)
def test_exit_codes_are_pythons(shared: Workspace, statement: str, code: int) -> None:
    name = f"exit_{hashlib.sha1(statement.encode()).hexdigest()[:8]}.py"
    shared.write(name, f"import sys\n\nprint('before')\n{statement}\nprint('after')\n")
    plain, _ = compare_runs(shared, name)
    assert plain.returncode == code and plain.stdout == "before\n"


ERRORS = {  # case: (script, the last line python prints)
    "uncaught": (
        """\
        def divide(a, b):
            return a / b


        print("working")
        result = divide(1, 0)
        """,
        "ZeroDivisionError: division by zero",
    ),
    "in-a-module": (
        """\
        import deep_module

        deep_module.lookup({"a": 1}, "missing")
        """,
        "KeyError: 'missing'",
    ),
    "chained-cause": (
        """\
        class ConfigError(Exception):
            pass


        def load(settings):
            try:
                return settings["lr"]
            except KeyError as exc:
                raise ConfigError("no learning rate") from exc


        load({})
        """,
        "ConfigError: no learning rate",
    ),
    "chained-context": (
        """\
        try:
            [][1]
        except IndexError:
            int("not a number")
        """,
        "ValueError: invalid literal for int() with base 10: 'not a number'",
    ),
    "syntax-error": (
        """\
        print("never printed")
        x = (1,
        print(x)
        """,
        "SyntaxError: '(' was never closed",
    ),
    "syntax-error-in-module": ("import broken_module\n", "SyntaxError: invalid syntax"),
    "custom-excepthook": (
        """\
        import sys


        def hook(kind, value, tb):
            print("custom hook:", kind.__name__, value, tb.tb_lineno, file=sys.stderr)


        sys.excepthook = hook
        raise LookupError("handled by the hook")
        """,
        "custom hook: LookupError handled by the hook 9",
    ),
}


@pytest.mark.parametrize("case", list(ERRORS))
def test_uncaught_errors_print_as_python_prints_them(shared: Workspace, case: str) -> None:
    script, last_line = ERRORS[case]
    shared.write(f"errors/{case}.py", script)
    shared.write(
        "errors/deep_module.py",
        "def lookup(table, key):\n    return table[key]  # KeyError\n",
    )
    shared.write("errors/broken_module.py", "def f(:\n    pass\n")
    plain, _ = compare_runs(shared, f"errors/{case}.py")
    assert plain.returncode == 1
    assert plain.stderr.splitlines()[-1] == last_line


def test_uncaught_keyboard_interrupt_exits_130(shared: Workspace) -> None:
    """python kills itself with SIGINT (the shell shows 130); the hotswap client exits 130."""
    shared.write("errors/interrupt.py", "print('started')\nraise KeyboardInterrupt\n")
    plain = shared.python("errors/interrupt.py")
    assert plain.returncode == -signal.SIGINT
    for _ in range(2):
        hot = shared.run("errors/interrupt.py")
        assert hot.returncode == 128 + signal.SIGINT
        assert (hot.stdout, hot.stderr) == (plain.stdout, plain.stderr)
    assert plain.stderr.endswith("    raise KeyboardInterrupt\nKeyboardInterrupt\n")


def test_missing_entry_is_reported_as_python_does(shared: Workspace) -> None:
    """python names itself by argv[0] (a full path here); hotswap cannot know that name."""
    plain = shared.python("no_such_script.py")
    hot = shared.run("no_such_script.py")
    assert plain.returncode == hot.returncode == 2
    assert plain.stdout == hot.stdout == ""
    message = f": can't open file '{shared.root}/no_such_script.py': [Errno 2] No such file"
    assert message in plain.stderr
    assert hot.stderr.split(": ", 1)[1] == plain.stderr.split(": ", 1)[1]


BACKEND_FRAME = f'  File "{REPO / "backend"}{os.sep}'


def without_hotswap_frames(traceback_text: str) -> str:
    """Python's traceback without the frames of hotswap's own files (the warm() call)."""
    kept, skipping = [], False
    for line in traceback_text.splitlines(keepends=True):
        if line.startswith('  File "'):
            skipping = line.startswith(BACKEND_FRAME)
        elif not line.startswith("    "):
            skipping = False
        if not skipping:
            kept.append(line)
    return "".join(kept)


FAILING_FACTORY = """\
import hotswap


def build():
    raise ValueError("factory failed")


model = hotswap.warm("broken", build)
"""


def test_error_in_a_warm_factory_hides_hotswaps_frames(shared: Workspace) -> None:
    shared.write("factory.py", FAILING_FACTORY)
    plain = shared.python("factory.py")
    assert BACKEND_FRAME in plain.stderr, "plain python goes through hotswap.warm itself"
    expected = without_hotswap_frames(plain.stderr)
    for _ in range(2):
        hot = shared.run("factory.py")
        assert (hot.returncode, hot.stdout) == (1, "")
        assert hot.stderr == expected
    assert 'in build\n    raise ValueError("factory failed")\n' in expected


# -- pickle, multiprocessing, DataLoader workers -----------------------------------------

PICKLES = """\
from __future__ import annotations

import pickle
import typing
from dataclasses import dataclass


@dataclass
class Point:
    x: int
    y: int


class Plain:
    def __init__(self):
        self.items = [1, 2]


data = pickle.dumps(Point(1, 2), protocol=4)
print(data.hex())
print(pickle.loads(data), type(pickle.loads(data)) is Point)
print(pickle.loads(pickle.dumps(Plain())).items)
print(typing.get_type_hints(Point))
"""


def test_classes_defined_in_the_script_pickle(shared: Workspace) -> None:
    shared.write("pickles.py", PICKLES)
    plain, _ = compare_runs(shared, "pickles.py")
    assert "Point(x=1, y=2) True\n[1, 2]\n" in plain.stdout


SPAWN_POOL = """\
import multiprocessing


def square(x):
    return x * x


def greet(name):
    print("hello from", name, __name__)


if __name__ == "__main__":
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(2) as pool:
        print(pool.map(square, range(10)), flush=True)
    child = ctx.Process(target=greet, args=("a spawned child",))
    child.start()
    child.join()
    print("child exit code", child.exitcode)
"""


def test_multiprocessing_spawn_pool_runs_functions_of_the_script(shared: Workspace) -> None:
    shared.write("spawn_pool.py", SPAWN_POOL)
    plain, _ = compare_runs(shared, "spawn_pool.py")
    assert plain.stdout == (
        "[0, 1, 4, 9, 16, 25, 36, 49, 64, 81]\n"
        "hello from a spawned child __mp_main__\n"
        "child exit code 0\n"
    )


DATALOADER = """\
import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset


class Squares(Dataset):
    def __len__(self):
        return 5

    def __getitem__(self, i):
        return torch.tensor([i * i])


if __name__ == "__main__":
    data = TensorDataset(torch.arange(8).float().unsqueeze(1), torch.arange(8))
    for x, y in DataLoader(data, batch_size=3, num_workers=2):
        print("forked", x.flatten().tolist(), y.tolist())
    spawned = DataLoader(Squares(), batch_size=2, num_workers=2, multiprocessing_context="spawn")
    for batch in spawned:
        print("spawned", batch.flatten().tolist())
"""


def test_torch_dataloader_workers_yield_the_right_batches(shared: Workspace) -> None:
    shared.write("loader.py", DATALOADER)
    plain, _ = compare_runs(shared, "loader.py")
    assert plain.stdout == (
        "forked [0.0, 1.0, 2.0] [0, 1, 2]\n"
        "forked [3.0, 4.0, 5.0] [3, 4, 5]\n"
        "forked [6.0, 7.0] [6, 7]\n"
        "spawned [0, 1]\n"
        "spawned [4, 9]\n"
        "spawned [16]\n"
    )


# -- output and input ------------------------------------------------------------------------

FD_OUTPUT = """\
import ctypes
import os
import subprocess
import sys

print("print 1", flush=True)
os.write(1, b"os.write 2\\n")
subprocess.run(["echo", "child 3"], check=True)
sys.stdout.write("write 4\\n")
sys.stdout.flush()
print("err 1", file=sys.stderr)
os.write(2, b"err os.write 2\\n")
subprocess.run(["sh", "-c", "echo err child 3 >&2"], check=True)
print("err 4", file=sys.stderr)
libc = ctypes.CDLL(None)
libc.printf(b"C printf 5\\n")
libc.fflush(None)
print("last 6")
"""


def test_fd_level_output_keeps_its_order_per_stream(shared: Workspace) -> None:
    shared.write("fd_output.py", FD_OUTPUT)
    plain, _ = compare_runs(shared, "fd_output.py")
    assert plain.stdout == "print 1\nos.write 2\nchild 3\nwrite 4\nC printf 5\nlast 6\n"
    assert plain.stderr == "err 1\nerr os.write 2\nerr child 3\nerr 4\n"


DUNDER_STREAMS = """\
import io
import sys

print("via sys.stdout")
print("via sys.__stdout__", file=sys.__stdout__)
print("via sys.__stderr__", file=sys.__stderr__)
sys.stdout.write("a line without its newline")
sys.stdout = io.StringIO()
print("swallowed")
"""


def test_output_through_the_original_streams_belongs_to_the_run(workspace: Workspace) -> None:
    """The daemon (started by this client) runs without PYTHONUNBUFFERED: the worker's own
    sys.__stdout__ is block-buffered, so it must not be what the script writes to."""
    env = base_env()
    env.pop("PYTHONUNBUFFERED", None)
    workspace.write("dunder.py", DUNDER_STREAMS)
    plain, _ = compare_runs(workspace, "dunder.py", env=env)
    assert plain.stdout == "via sys.stdout\nvia sys.__stdout__\na line without its newline"
    assert plain.stderr == "via sys.__stderr__\n"


LARGE_OUTPUT = """\
import sys

for i in range(300_000):
    print(f"line {i}")
    if i % 1000 == 0:
        print(f"err {i}", file=sys.stderr)
print("the end")
"""


def summary(text: str) -> tuple[int, str, str, str]:
    """What shows that two large outputs are identical, short enough for a failure message."""
    lines = text.splitlines()
    digest = hashlib.sha256(text.encode()).hexdigest()
    return len(lines), lines[0] if lines else "", lines[-1] if lines else "", digest


def test_large_output_arrives_complete(shared: Workspace) -> None:
    shared.write("large.py", LARGE_OUTPUT)
    plain = shared.python("large.py")
    assert summary(plain.stdout)[:3] == (300_001, "line 0", "the end")
    assert summary(plain.stderr)[:3] == (300, "err 0", "err 299000")
    for _ in range(2):
        hot = shared.run("large.py")
        assert hot.returncode == plain.returncode == 0
        assert summary(hot.stdout) == summary(plain.stdout)
        assert summary(hot.stderr) == summary(plain.stderr)


STDIN = """\
import sys

first = input("prompt> ")
rest = sys.stdin.read()
print(repr(first), repr(rest))
"""


def test_stdin_is_forwarded(shared: Workspace) -> None:
    shared.write("stdin_read.py", STDIN)
    plain, _ = compare_runs(shared, "stdin_read.py", input="a\nb\n")
    assert plain.stdout == "prompt> 'a' 'b\\n'\n"
    shared.write("stdin_lines.py", "import sys\nfor line in sys.stdin:\n    print(len(line))\n")
    many = "".join(f"{i}\n" for i in range(100_000))
    plain, _ = compare_runs(shared, "stdin_lines.py", input=many)
    assert plain.stdout.count("\n") == 100_000


EMPTY_STDIN = """\
import sys

print(repr(sys.stdin.read()))
print(repr(sys.stdin.readline()))
input()
"""


def test_stdin_at_eof_immediately(shared: Workspace) -> None:
    shared.write("stdin_eof.py", EMPTY_STDIN)
    plain, _ = compare_runs(shared, "stdin_eof.py", input="")
    assert plain.stdout == "''\n''\n"
    assert plain.returncode == 1 and plain.stderr.endswith("EOFError: EOF when reading a line\n")
