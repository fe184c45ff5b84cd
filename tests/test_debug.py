"""Debugging warm runs: a real DAP client attaches to the debugpy of a real runner worker.

Each test drives ``hotswap run --debug`` as a user would, reads the address it prints, and
attaches with ``dap_client.DapClient`` (initialize, attach, setBreakpoints, configurationDone),
as VS Code or nvim-dap would. Where a test needs the protocol's view (``debug_ready``) it
connects a ``DaemonClient`` and validates every message it receives.
"""

from __future__ import annotations

import contextlib
import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import (
    HOTSWAP,
    REPO,
    Follow,
    Workspace,
    base_env,
    compare_runs,
    following,
    kill_group,
    wait_until,
)
from dap_client import DapClient
from hotswap.client import DaemonClient, remote_client
from hotswap.protocol import validate
from hotswap.sync_client import sync_workspace

LISTENING = re.compile(r"hotswap: debugger listening on (?P<host>[\d.]+):(?P<port>\d+)")
BACKEND = str(REPO / "backend")


# -- helpers ---------------------------------------------------------------------------


def line_of(path: Path, marker: str) -> int:
    """The 1-based line of ``path`` that carries the comment ``# marker``."""
    lines = path.read_text().splitlines()
    return next(i for i, line in enumerate(lines, 1) if line.endswith(f"# {marker}"))


class DebugRun(Follow):
    """A ``hotswap run --debug`` in the background; threads collect its output as it comes."""

    def address(self, timeout: float = 60.0) -> tuple[str, int]:
        """The host and port the CLI printed (it prints them before the script starts)."""
        wait_until(
            lambda: LISTENING.search(self.stderr) or self.proc.poll() is not None,
            f"no 'debugger listening' line; stderr so far: {self.stderr!r}",
            timeout,
        )
        found = LISTENING.search(self.stderr)
        assert found, f"exited {self.proc.returncode} without listening:\n{self.stderr}"
        return found["host"], int(found["port"])


def debug_run(ws: Workspace, *args: str) -> contextlib.AbstractContextManager[DebugRun]:
    """``hotswap run --debug ARGS``, killed at the end whatever happens."""
    return following(ws, "--debug", *args, kind=DebugRun)


@contextlib.contextmanager
def attached(
    address: tuple[str, int], breakpoints: dict[Path, list[int]], **options: Any
) -> Iterator[DapClient]:
    """A DAP client attached to ``address`` with ``breakpoints`` set; closed at the end."""
    dap = DapClient(*address)
    try:
        dap.session({str(path): lines for path, lines in breakpoints.items()}, **options)
        yield dap
    finally:
        dap.close()


def stopped(dap: DapClient, reason: str = "breakpoint") -> tuple[int, list[dict[str, Any]]]:
    """Wait for the debuggee to stop; its thread and stack, innermost frame first."""
    event = dap.wait_event("stopped", timeout=60)
    assert event["reason"] == reason, event
    return event["threadId"], dap.stack_trace(event["threadId"])


def where(frame: dict[str, Any]) -> tuple[str, int]:
    return frame["source"]["path"], frame["line"]


def assert_only_user_frames(frames: list[dict[str, Any]], *user_files: Path) -> None:
    """The runner's frames (hotswap's own code, the runpy that started it) stay hidden."""
    paths = [frame.get("source", {}).get("path", "") for frame in frames]
    assert not [p for p in paths if p.startswith(BACKEND)], paths
    assert set(paths) <= {str(f) for f in user_files}, paths


def worker(ws: Workspace) -> dict[str, Any]:
    [only] = ws.status()["workers"]
    return dict(only)


# -- breakpoints bind where the user put them ------------------------------------------

MAIN = """\
import helper

x = 42
name = "hello"
total = helper.add(x, 1)  # entry breakpoint
print("total", total)
"""

HELPER = """\
def add(a, b):
    s = a + b
    return s  # helper breakpoint
"""


def test_breakpoints_hit_in_the_entry_script_and_a_workspace_module(
    workspace: Workspace,
) -> None:
    main = workspace.write("main.py", MAIN)
    helper = workspace.write("helper.py", HELPER)
    entry_line, helper_line = (
        line_of(main, "entry breakpoint"),
        line_of(helper, "helper breakpoint"),
    )
    with debug_run(workspace, "main.py") as run:
        breakpoints = {main: [entry_line], helper: [helper_line]}
        with attached(run.address(), breakpoints) as dap:
            thread, frames = stopped(dap)
            assert where(frames[0]) == (str(main), entry_line)
            assert frames[0]["name"] == "<module>"
            variables = dap.locals(frames[0]["id"])
            assert variables["x"] == "42" and variables["name"] == "'hello'"
            assert "total" not in variables, "stopped before the line ran"
            assert_only_user_frames(frames, main)
            dap.continue_(thread)

            thread, frames = stopped(dap)
            assert where(frames[0]) == (str(helper), helper_line)
            assert frames[0]["name"] == "add"
            assert dap.locals(frames[0]["id"]) == {"a": "42", "b": "1", "s": "43"}
            assert [where(f) for f in frames[1:]] == [(str(main), entry_line)]
            assert_only_user_frames(frames, main, helper)
            dap.continue_(thread)
            assert run.finish() == 0, run.stderr
    assert run.stdout == "total 43\n"
    assert LISTENING.search(run.stderr) and "waiting for a DAP client" in run.stderr


def test_an_edited_module_binds_its_breakpoint_at_the_new_line_on_the_same_worker(
    workspace: Workspace,
) -> None:
    workspace.write("main.py", MAIN)
    helper = workspace.write("helper.py", HELPER)
    with debug_run(workspace, "main.py") as run:
        first_address = run.address()
        with attached(first_address, {helper: [line_of(helper, "helper breakpoint")]}) as dap:
            thread, frames = stopped(dap)
            dap.continue_(thread)
            assert run.finish() == 0, run.stderr
            dap.disconnect()
    first_pid = worker(workspace)["pid"]

    workspace.write(
        "helper.py",
        """\
        def add(a, b):
            note = "edited"
            doubled = 2 * a
            s = doubled + b
            return s  # helper breakpoint
        """,
    )
    moved = line_of(helper, "helper breakpoint")
    assert moved == 5, "the breakpoint's line moved down by two"
    with debug_run(workspace, "main.py") as run:
        assert run.address() == first_address, "one listen() per worker: the same port"
        with attached(run.address(), {helper: [moved]}) as dap:  # a second DAP connection
            thread, frames = stopped(dap)
            assert where(frames[0]) == (str(helper), moved)
            assert dap.locals(frames[0]["id"]) == {
                "a": "42",
                "b": "1",
                "note": "'edited'",
                "doubled": "84",
                "s": "85",
            }
            dap.continue_(thread)
            assert run.finish() == 0, run.stderr
    assert run.stdout == "total 85\n"
    assert worker(workspace)["pid"] == first_pid


def test_breakpoint_builtin_stops_in_the_attached_debugger(workspace: Workspace) -> None:
    script = workspace.write(
        "pause.py",
        """\
        def check(value):
            seen = value * 2
            breakpoint()
            return seen  # after breakpoint()

        print("result", check(21))
        """,
    )
    with debug_run(workspace, "pause.py") as run, attached(run.address(), {}) as dap:
        thread, frames = stopped(dap, reason="breakpoint")
        assert where(frames[0]) == (str(script), line_of(script, "after breakpoint()"))
        assert dap.locals(frames[0]["id"]) == {"value": "21", "seen": "42"}
        assert_only_user_frames(frames, script)
        dap.continue_(thread)
        assert run.finish() == 0, run.stderr
    assert run.stdout == "result 42\n"


# -- detach and cancel -----------------------------------------------------------------


def test_detaching_mid_run_lets_the_run_finish_with_all_its_output(workspace: Workspace) -> None:
    script = workspace.write(
        "loop.py",
        """\
        for i in range(5):
            print("step", i, flush=True)  # loop breakpoint
        print("done")
        """,
    )
    with debug_run(workspace, "loop.py") as run:
        dap = DapClient(*run.address())
        try:
            dap.session({str(script): [line_of(script, "loop breakpoint")]})
            _, frames = stopped(dap)
            assert dap.locals(frames[0]["id"]) == {"i": "0"}
            dap.disconnect()  # while stopped: the debuggee resumes, its breakpoints go
        finally:
            dap.close()
        assert run.finish() == 0, run.stderr
    assert run.stdout == "".join(f"step {i}\n" for i in range(5)) + "done\n"


WARM_BOX = """\
import os
import hotswap


class Box:
    def __init__(self):
        self.token = os.urandom(8).hex()


box = hotswap.warm("box", Box)
print("token", box.token, flush=True)
progress = "halfway"
print("before the breakpoint", flush=True)  # cancel breakpoint
print("after the breakpoint")
"""


def warm_box(workspace: Workspace) -> tuple[Path, int, str, int]:
    """box.py run once (its Box warm): the script, its breakpoint line, the Box's token and
    the worker's pid."""
    script = workspace.write("box.py", WARM_BOX)
    first = workspace.run("box.py")
    assert first.returncode == 0, first.stderr
    return (
        script,
        line_of(script, "cancel breakpoint"),
        first.stdout.split()[1],
        worker(workspace)["pid"],
    )


def assert_still_debugs(
    workspace: Workspace, script: Path, line: int, token: str, pid: int
) -> None:
    """The same worker, its warm Box unchanged, stops at the breakpoint and runs to the end."""
    with debug_run(workspace, "box.py") as run, attached(run.address(), {script: [line]}) as dap:
        thread, frames = stopped(dap)
        assert where(frames[0]) == (str(script), line)
        dap.continue_(thread)
        assert run.finish() == 0, run.stderr
    assert run.stdout == f"token {token}\nbefore the breakpoint\nafter the breakpoint\n"
    assert worker(workspace)["pid"] == pid


def test_cancel_while_stopped_at_a_breakpoint_interrupts_the_run_and_keeps_the_worker(
    workspace: Workspace,
) -> None:
    script, line, token, pid = warm_box(workspace)

    with debug_run(workspace, "box.py") as run, attached(run.address(), {script: [line]}) as dap:
        _, frames = stopped(dap)
        assert where(frames[0]) == (str(script), line)
        assert dap.locals(frames[0]["id"])["progress"] == "'halfway'"
        run.proc.send_signal(signal.SIGINT)  # Ctrl-C in the terminal of `hotswap run`
        assert run.finish() == 130, run.stderr
    assert run.stdout == f"token {token}\n"
    assert run.stderr.rstrip().endswith("KeyboardInterrupt"), run.stderr
    assert "debugpy" not in run.stderr, "the debugger's frames are not the user's"

    assert worker(workspace)["pid"] == pid, "the worker survived the cancel"
    assert_still_debugs(workspace, script, line, token, pid)


@pytest.mark.parametrize(
    "request_",
    [("terminate", {}), ("disconnect", {"terminateDebuggee": True})],
    ids=["terminate", "disconnect-terminateDebuggee"],
)
def test_a_debuggers_terminate_stops_the_run_and_keeps_the_worker_and_its_warm_objects(
    workspace: Workspace, request_: tuple[str, dict[str, Any]]
) -> None:
    """nvim-dap's dap.terminate() (and what it sends when a new session replaces one still
    attached), VS Code's stop on a session it launched: debugpy would end the process, and
    with it the worker and every warm object. They stop the run, as a cancel does."""
    script, line, token, pid = warm_box(workspace)

    command, arguments = request_
    with debug_run(workspace, "box.py") as run, attached(run.address(), {script: [line]}) as dap:
        stopped(dap)
        dap.request(command, arguments)
        dap.wait_event("terminated")  # the session ends in the client, as it asked
        assert run.finish() == 130, run.stderr
    assert run.stdout == f"token {token}\n"
    assert run.stderr.rstrip().endswith("KeyboardInterrupt"), run.stderr

    assert worker(workspace)["pid"] == pid, "the worker survived the debugger's terminate"
    assert_still_debugs(workspace, script, line, token, pid)


def test_cancel_while_waiting_for_a_debugger_ends_the_run(workspace: Workspace) -> None:
    workspace.write("hello.py", "print('hello')\n")
    with debug_run(workspace, "hello.py") as run:
        run.address()
        run.proc.send_signal(signal.SIGINT)
        assert run.finish() == 130, run.stderr
    assert run.stdout == ""
    assert "cancelled while waiting for a debugger" in run.stderr
    assert workspace.run("hello.py").stdout == "hello\n"


# -- without a debugger ----------------------------------------------------------------


def test_no_wait_starts_at_once_and_a_debugger_can_attach_later(workspace: Workspace) -> None:
    workspace.write("hello.py", "print('hello')\n")
    quick = workspace.run("--debug", "--no-wait", "hello.py")
    assert (quick.returncode, quick.stdout) == (0, "hello\n"), quick.stderr
    assert LISTENING.search(quick.stderr) and "waiting" not in quick.stderr

    script = workspace.write(
        "later.py",
        """\
        import os
        import time

        print("started", flush=True)
        while not os.path.exists("go"):
            time.sleep(0.02)
        found = "late"
        print("attached", found)  # late breakpoint
        """,
    )
    with debug_run(workspace, "--no-wait", "later.py") as run:
        run.wait_for("started")
        line = line_of(script, "late breakpoint")
        with attached(run.address(), {script: [line]}) as dap:
            (workspace.root / "go").touch()
            thread, frames = stopped(dap)
            assert where(frames[0]) == (str(script), line)
            assert dap.locals(frames[0]["id"])["found"] == "'late'"
            dap.continue_(thread)
            assert run.finish() == 0, run.stderr
    assert run.stdout == "started\nattached late\n"


def test_a_debug_run_nobody_attaches_to_times_out_clearly(workspace: Workspace) -> None:
    workspace.write(
        "pyproject.toml", '[project]\nname = "x"\n\n[tool.hotswap]\ndebug_timeout = 2\n'
    )
    workspace.write("hello.py", "print('hello')\n")
    proc = workspace.run("--debug", "hello.py")
    assert (proc.returncode, proc.stdout) == (1, ""), proc.stderr
    listening = LISTENING.search(proc.stderr)
    assert listening, proc.stderr
    address = f"{listening['host']}:{listening['port']}"
    assert f"no debugger attached to {address} within 2s" in proc.stderr
    assert "--no-wait" in proc.stderr
    assert workspace.run("hello.py").stdout == "hello\n", "the worker takes the next run"


def test_a_restarted_worker_announces_a_new_debug_port(workspace: Workspace) -> None:
    workspace.write("hello.py", "print('hello')\n")
    workspace.write("crash.py", "import os\nos._exit(3)\n")
    first = workspace.run("--debug", "--no-wait", "hello.py")
    listening = LISTENING.search(first.stderr)
    assert listening, first.stderr
    before = worker(workspace)
    assert before["debug"] == {"host": listening["host"], "port": int(listening["port"])}

    assert workspace.run("crash.py").returncode == 3
    after = wait_until(
        lambda: (w := worker(workspace))["pid"] != before["pid"] and w["state"] == "idle" and w,
        "the worker was not restarted",
    )
    assert after["debug"] is None, "a new process listens only when a debug run asks"

    script = workspace.write("stop.py", "value = 'fresh'\nprint(value)  # stop here\n")
    with debug_run(workspace, "stop.py") as run:
        address = run.address()
        assert address[1] != before["debug"]["port"], "a new process, a new listen()"
        assert worker(workspace)["debug"] == {"host": address[0], "port": address[1]}
        with attached(address, {script: [line_of(script, "stop here")]}) as dap:
            thread, frames = stopped(dap)
            assert dap.locals(frames[0]["id"]) == {"value": "'fresh'"}
            dap.continue_(thread)
            assert run.finish() == 0, run.stderr
    assert run.stdout == "fresh\n"


TRACED = """\
import sys
import threading


def report():
    print("thread trace", sys.gettrace())


print("trace", sys.gettrace(), "breakpointhook", sys.breakpointhook.__module__)
thread = threading.Thread(target=report)
thread.start()
thread.join()
"""
UNTRACED = "trace None breakpointhook sys\nthread trace None\n"


def test_a_plain_run_after_a_debug_run_is_not_traced_and_prints_no_warnings(
    workspace: Workspace,
) -> None:
    workspace.write("traced.py", TRACED)
    debugged = workspace.run("--debug", "--no-wait", "traced.py")
    assert debugged.returncode == 0, debugged.stderr
    assert "trace None" not in debugged.stdout, "the debug run itself is traced"
    plain, _ = compare_runs(workspace, "traced.py")
    assert plain.stdout == UNTRACED


# -- what the backend tells a debugger: debug_ready --------------------------------------


def run_and_collect(
    client: DaemonClient,
    ws: Workspace,
    entry: str,
    on_ready: Callable[[dict[str, Any]], None],
    **options: Any,
) -> list[dict[str, Any]]:
    """Send a debug run request; call ``on_ready`` with its debug_ready event; every message
    (validated) up to run_finished."""
    body = {"entry": entry, "args": [], "cwd": str(ws.root), "env": base_env(), "debug": True}
    body.update(options)
    run_id = client.request("run", body)["body"]["run_id"]
    messages: list[dict[str, Any]] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        msg = client.recv(timeout=1)
        if msg is None:
            continue
        messages.append(validate(msg))
        if msg["type"] == "debug_ready":
            assert msg["body"]["run_id"] == run_id
            on_ready(msg["body"])
        if msg["type"] == "run_finished" and msg["body"]["run_id"] == run_id:
            return messages
    raise AssertionError(f"the run did not finish; got {messages}")


HOOKED = """\
import json


def hook(pairs):
    keys = sorted(pairs)
    return keys  # hook breakpoint


print(json.loads('{"b": 1, "a": 2}', object_hook=hook))
"""


@pytest.mark.parametrize("all_code", [False, True], ids=["just-my-code", "all-code"])
def test_debug_ready_tells_the_debugger_whether_to_show_library_code(
    workspace: Workspace, all_code: bool
) -> None:
    script = workspace.write("hooked.py", HOOKED)
    line = line_of(script, "hook breakpoint")
    assert workspace.run("hooked.py").stdout == "['a', 'b']\n"  # the daemon is up
    stacks: list[list[str]] = []

    def attach_as_told(ready: dict[str, Any]) -> None:
        assert ready["just_my_code"] is not all_code
        assert (ready["worker"], ready["wait"], ready["path_mappings"]) == (0, True, [])
        assert worker(workspace)["debug"] == {"host": ready["host"], "port": ready["port"]}
        address = (ready["host"], ready["port"])
        with attached(address, {script: [line]}, just_my_code=ready["just_my_code"]) as dap:
            thread, frames = stopped(dap)
            stacks.append([f"{Path(f['source']['path']).name}:{f['name']}" for f in frames])
            assert not [f for f in frames if f["source"]["path"].startswith(BACKEND)], frames
            dap.continue_(thread)

    client = DaemonClient(workspace.connection(), name="test-debug")
    try:
        client.hello()
        extra = {"just_my_code": False} if all_code else {}
        messages = run_and_collect(client, workspace, "hooked.py", attach_as_told, **extra)
    finally:
        client.close()
    assert [m["body"]["exit_code"] for m in messages if m["type"] == "run_finished"] == [0]
    [stack] = stacks
    assert stack[0] == "hooked.py:hook" and stack[-1] == "hooked.py:<module>"
    library = [f for f in stack if not f.startswith("hooked.py:")]
    if all_code:
        assert "decoder.py:decode" in library, stack
    else:
        assert library == [], "justMyCode hides json's frames"


def test_a_worker_configured_to_listen_at_start_reports_its_port_before_any_debug_run(
    workspace: Workspace,
) -> None:
    workspace.write(
        "pyproject.toml", '[project]\nname = "x"\n\n[tool.hotswap]\ndebug_listen_at_start = true\n'
    )
    workspace.write("hello.py", "print('hello')\n")
    workspace.write("traced.py", TRACED)
    assert workspace.run("hello.py").stdout == "hello\n"
    listening = wait_until(lambda: worker(workspace)["debug"], "the worker never listened")
    plain, _ = compare_runs(workspace, "traced.py")  # listening is not tracing
    assert plain.stdout == UNTRACED
    debugged = workspace.run("--debug", "--no-wait", "hello.py")
    assert debugged.stdout == "hello\n", debugged.stderr
    address = LISTENING.search(debugged.stderr)
    assert address and (address["host"], int(address["port"])) == (
        listening["host"],
        listening["port"],
    )


def test_a_debugger_that_stays_attached_gets_the_next_run_without_waiting(
    workspace: Workspace,
) -> None:
    main = workspace.write("main.py", MAIN)
    helper = workspace.write("helper.py", HELPER)
    helper_line = line_of(helper, "helper breakpoint")
    entry_line = line_of(main, "entry breakpoint")
    with (
        debug_run(workspace, "main.py") as run,
        attached(run.address(), {helper: [helper_line]}) as dap,
    ):
        thread, _ = stopped(dap)
        dap.continue_(thread)
        assert run.finish() == 0, run.stderr

        # Still attached, as an editor between two runs: move the breakpoint, run again.
        dap.set_breakpoints(str(helper), [])
        dap.set_breakpoints(str(main), [entry_line])
        with debug_run(workspace, "main.py") as again:
            thread, frames = stopped(dap)
            assert where(frames[0]) == (str(main), entry_line)
            dap.continue_(thread)
            assert again.finish() == 0, again.stderr
        assert again.stdout == "total 43\n"


# -- mirror mode: the debugger speaks the editor's paths ---------------------------------


@contextlib.contextmanager
def mirror_daemon(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """``hotswap serve --mirror DIR`` in the foreground; (mirror root, connection file)."""
    mirror = (tmp_path / "mirror").resolve()
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen(
        [HOTSWAP, "serve", "--mirror", str(mirror)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=base_env(),
        cwd=tmp_path,
        start_new_session=True,  # its worker joins the group that is killed at the end
    )
    try:
        connection = mirror / ".hotswap" / "connection.json"
        wait_until(lambda: connection.exists() or proc.poll() is not None, "serve never came up")
        assert proc.poll() is None, (tmp_path / "serve.log").read_text()
        yield mirror, connection
    finally:
        kill_group(proc.pid)
        proc.wait()
        log.close()


def test_mirror_mode_maps_breakpoints_and_frames_to_the_editors_paths(
    workspace: Workspace, tmp_path: Path
) -> None:
    main = workspace.write("main.py", MAIN)
    helper = workspace.write("helper.py", HELPER)
    line = line_of(helper, "helper breakpoint")
    frames_seen: list[list[tuple[str, int]]] = []
    with mirror_daemon(tmp_path) as (mirror, connection):

        def attach_with_mappings(ready: dict[str, Any]) -> None:
            mappings = [{"localRoot": str(workspace.root), "remoteRoot": str(mirror)}]
            assert ready["path_mappings"] == mappings
            address = (ready["host"], ready["port"])
            # Breakpoints by the editor's paths, while the run executes the mirror's copies.
            with attached(address, {helper: [line]}, path_mappings=mappings) as dap:
                thread, frames = stopped(dap)
                frames_seen.append([where(f) for f in frames])
                assert dap.locals(frames[0]["id"]) == {"a": "42", "b": "1", "s": "43"}
                dap.continue_(thread)

        client = remote_client(str(connection))
        try:
            state = sync_workspace(client, workspace.root)
            options = {"root": str(workspace.root), "state": state}
            messages = run_and_collect(
                client, workspace, "main.py", attach_with_mappings, **options
            )
        finally:
            client.close()
        assert (mirror / "helper.py").read_text() == helper.read_text(), "synced to the mirror"
    output = b"".join(m["body"]["data"] for m in messages if m["type"] == "stream")
    assert output == b"total 43\n"
    assert frames_seen == [[(str(helper), line), (str(main), line_of(main, "entry breakpoint"))]]


# -- the debug listener outlives a debugger that hangs up rudely ----------------------


def test_a_debugger_that_hangs_up_after_disconnect_leaves_debugging_usable(
    workspace: Workspace,
) -> None:
    """A DAP client that sends disconnect and drops the connection without waiting for the
    answer must not leave the next --debug run announcing a port that refuses connections."""
    script = workspace.write("main.py", MAIN)
    workspace.write("helper.py", HELPER)
    line = line_of(script, "entry breakpoint")
    for attempt in range(3):
        with debug_run(workspace, "main.py") as run:
            dap = DapClient(*run.address())
            try:
                dap.session({str(script): [line]})
                stopped(dap)
                dap.send("disconnect", {"terminateDebuggee": False, "restart": False})
            finally:
                dap.close()  # at once, without the reply
            assert run.finish() == 0, f"attempt {attempt}: {run.stderr}"
        assert run.stdout == "total 43\n"
        debug = worker(workspace)["debug"]
        if debug is not None:  # status never announces a port that refuses connections
            DapClient(debug["host"], debug["port"]).close()
