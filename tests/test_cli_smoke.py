"""The real CLI against a real daemon: the first things a new user does."""

from __future__ import annotations

from conftest import Workspace, compare_runs


def test_hello_runs_like_python(workspace: Workspace) -> None:
    workspace.write(
        "hello.py",
        """\
        import sys
        print("hello", sys.argv[1:], __name__)
        print("to stderr", file=sys.stderr)
        """,
    )
    plain, _ = compare_runs(workspace, "hello.py", "a", "--flag")
    assert plain.stdout == "hello ['a', '--flag'] __main__\n"


def test_status_after_a_run_lists_daemon_worker_and_run(workspace: Workspace) -> None:
    workspace.write("hello.py", "print('hi')\n")
    assert workspace.run("hello.py").returncode == 0
    status = workspace.status()
    assert status["running"] is True
    assert status["daemon"]["workspace"] == str(workspace.root)
    [worker] = status["workers"]
    assert worker["state"] == "idle" and worker["memory"]["rss"] > 0
    assert [r["entry"] for r in status["runs"]] == ["hello.py"]
    assert status["runs"][0]["exit_code"] == 0
