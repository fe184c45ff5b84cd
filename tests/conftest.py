"""Shared fixtures: temporary workspaces whose daemons are stopped even when a test fails."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "samples"
HOTSWAP = str(Path(sys.executable).parent / "hotswap")
PYTHON = sys.executable

DEFAULT_PYPROJECT = """\
[project]
name = "scratch"
version = "0"

[tool.hotswap]
cancel_timeout = 2
"""


FOOTER = ("hotswap: memory: ", "hotswap: left alive: ")
"""What ``hotswap run --verbose`` prints after a run: its memory line and survivors."""


def without_footer(stderr: str) -> list[str]:
    """The lines of a verbose run's stderr, its memory footer left out (notices stay)."""
    return [line for line in stderr.splitlines() if not line.startswith(FOOTER)]


def notices(stderr: str) -> list[str]:
    """hotswap's notices in a verbose run's stderr (warm objects updated, rebuilt, served)."""
    return [line for line in without_footer(stderr) if line.startswith("hotswap: ")]


def base_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", **extra)
    env.pop("PYTHONSTARTUP", None)
    return env


class Workspace:
    """A folder standing for a user's project, driven through the real ``hotswap`` CLI."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.daemon_pids: set[int] = set()
        self.write("pyproject.toml", DEFAULT_PYPROJECT)

    def write(self, rel: str, text: str) -> Path:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
        return path

    def hotswap(
        self,
        command: str,
        *args: str,
        input: str | bytes | None = None,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        timeout: float = 180,
    ) -> subprocess.CompletedProcess[str]:
        argv = [HOTSWAP, command, "--workspace", str(self.root), *args]
        proc = self._complete(argv, input, env, cwd, timeout)
        self.note_daemon()
        return proc

    def run(self, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        return self.hotswap("run", *args, **kwargs)

    def popen_run(
        self, *args: str, cwd: Path | None = None, **kwargs: Any
    ) -> subprocess.Popen[str]:
        argv = [HOTSWAP, "run", "--workspace", str(self.root), *args]
        return subprocess.Popen(
            argv,
            stdin=kwargs.pop("stdin", subprocess.DEVNULL),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=kwargs.pop("env", None) or base_env(),
            cwd=cwd or self.root,
            **kwargs,
        )

    def python(
        self,
        *args: str,
        input: str | None = None,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        timeout: float = 180,
    ) -> subprocess.CompletedProcess[str]:
        return self._complete([PYTHON, *args], input, env, cwd, timeout)

    def _complete(
        self,
        argv: list[str],
        input: str | bytes | None,
        env: dict[str, str] | None,
        cwd: Path | None,
        timeout: float,
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            argv,
            input=input,
            capture_output=True,
            text=True,
            env=env or base_env(),
            cwd=cwd or self.root,
            timeout=timeout,
        )

    def connection(self) -> dict[str, Any]:
        return dict(json.loads((self.root / ".hotswap" / "connection.json").read_text()))

    def note_daemon(self) -> None:
        with contextlib.suppress(OSError, ValueError, KeyError):
            self.daemon_pids.add(int(self.connection()["pid"]))

    def status(self) -> dict[str, Any]:
        proc = self.hotswap("status", "--json")
        assert proc.returncode == 0, proc.stderr
        return dict(json.loads(proc.stdout))

    def stop(self) -> None:
        """Stop the daemon politely, then make sure nothing it started is left."""
        self.note_daemon()
        if self.daemon_pids:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.hotswap("stop", "--timeout", "10", timeout=30)
        for pid in self.daemon_pids:
            kill_group(pid)


def kill_group(pid: int) -> None:
    """The daemon leads its own session: killing the group takes its workers too."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.02)


@pytest.fixture
def workspace(tmp_path: Path) -> Iterator[Workspace]:
    ws = Workspace(tmp_path / "ws")
    try:
        yield ws
    finally:
        ws.stop()


def compare_runs(
    ws: Workspace,
    script: str,
    *args: str,
    input: str | None = None,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
) -> tuple[subprocess.CompletedProcess[str], subprocess.CompletedProcess[str]]:
    """Run the same script under plain python and under hotswap (twice: cold and warm)."""
    plain = ws.python(script, *args, input=input, cwd=cwd, env=env)
    for _ in range(2):
        hot = ws.run(script, *args, input=input, cwd=cwd, env=env)
        assert (hot.returncode, hot.stdout, hot.stderr) == (
            plain.returncode,
            plain.stdout,
            plain.stderr,
        ), f"hotswap differs from python for {script}:\nPY {plain}\nHS {hot}"
    return plain, hot


def wait_until(condition: Callable[[], Any], failure: str, timeout: float = 60.0) -> Any:
    """Poll ``condition`` until it returns something truthy; fail with ``failure`` otherwise."""
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        assert time.monotonic() < deadline, failure
        time.sleep(0.02)
    return result


F = TypeVar("F", bound="Follow")


class Follow:
    """A running ``hotswap run`` whose output threads collect, so a test can wait for a line."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.out: list[str] = []
        self.err: list[str] = []
        self.readers = [
            threading.Thread(target=self._read, args=(proc.stdout, self.out), daemon=True),
            threading.Thread(target=self._read, args=(proc.stderr, self.err), daemon=True),
        ]
        for reader in self.readers:
            reader.start()

    @staticmethod
    def _read(stream: Any, into: list[str]) -> None:
        for line in stream:
            into.append(line)

    @property
    def stdout(self) -> str:
        return "".join(self.out)

    @property
    def stderr(self) -> str:
        return "".join(self.err)

    def wait_for(self, text: str, timeout: float = 60.0) -> None:
        wait_until(
            lambda: text in self.stdout or self.proc.poll() is not None,
            f"{text!r} never appeared",
            timeout,
        )
        assert text in self.stdout, f"exited {self.proc.returncode} first:\n{self.stderr}"

    def finish(self, timeout: float = 60.0) -> int:
        code = self.proc.wait(timeout)
        for reader in self.readers:
            reader.join(timeout)
        return code


@contextlib.contextmanager
def following(ws: Workspace, *args: str, kind: type[F] = Follow) -> Iterator[F]:  # type: ignore[assignment]
    """``hotswap run ARGS`` in the background, killed at the end whatever happens."""
    follow = kind(ws.popen_run(*args))
    try:
        yield follow
    finally:
        if follow.proc.poll() is None:
            follow.proc.kill()
            follow.proc.wait()
        ws.note_daemon()
