"""One runner worker process: start it, message it, read its output, kill it.

The daemon owns the read ends of its stdout and stderr pipes, so output written at file-descriptor
level (C extensions, subprocesses) reaches the run even if the worker dies.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .protocol import STREAMS, make_message

if TYPE_CHECKING:
    from .runs import Run
    from .workspace import Config

READ_CHUNK = 1 << 16


def exit_code_of(returncode: int) -> int:
    """A shell's view of a process status: the code, or 128+N for death by signal N."""
    return returncode if returncode >= 0 else 128 - returncode


def describe_death(returncode: int) -> str:
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        hint = " (killed for memory?)" if -returncode == signal.SIGKILL else ""
        return f"the worker process died from {name}{hint}"
    return f"the worker process exited with code {returncode}"


@dataclass
class WorkerProcess:
    """One runner worker as the daemon sees it."""

    index: int
    proc: subprocess.Popen[bytes]
    link: Callable[[bytes, dict[str, Any]], None]  # sends a message on the worker socket
    started: float = field(default_factory=time.time)
    identity: bytes | None = None
    ready: bool = False
    current_run: Run | None = None
    warm: list[dict[str, Any]] = field(default_factory=list)
    memory: dict[str, Any] = field(default_factory=dict)
    pidfd: int | None = None
    kill_requested: str | None = None
    debug: dict[str, Any] | None = None  # debugpy's host and port, once listening
    pending_shutdown: bool = False
    pending_restart: bool = False  # it exits on its own after a run; takes no new runs

    @property
    def pid(self) -> int:
        return self.proc.pid

    def send(self, msg_type: str, body: dict[str, Any]) -> None:
        if self.identity is not None:  # before worker_ready, nothing can reach it
            self.link(self.identity, make_message(msg_type, body))

    @property
    def output_fds(self) -> dict[int, str]:
        fds = {}
        for name in STREAMS:
            stream = getattr(self.proc, name)
            if stream is not None and not stream.closed:
                fds[stream.fileno()] = name
        return fds

    def read_available(self, fd: int) -> bytes:
        """Everything the pipe holds right now (b'' when empty or closed)."""
        chunks = []
        while True:
            try:
                chunk = os.read(fd, READ_CHUNK)
            except BlockingIOError:
                break
            if not chunk:
                break
            chunks.append(chunk)
            if len(chunks) >= 16:
                break
        return b"".join(chunks)

    def kill(self, reason: str) -> None:
        self.kill_requested = reason
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()

    def rss_bytes(self) -> int | None:
        try:
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        except (OSError, ValueError):
            return None
        return None

    def debug_alive(self) -> bool:
        """Whether debugpy still listens on the port this worker announced."""
        return self.debug is None or port_listening(int(self.debug["port"]))

    def close(self) -> None:
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()
        if self.pidfd is not None:
            os.close(self.pidfd)
            self.pidfd = None


def port_listening(port: int) -> bool:
    """Whether a socket of this host listens on TCP ``port`` (read from /proc/net/tcp*, without
    connecting: a connection to debugpy's adapter would be taken for a debugger)."""
    lines: list[str] = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            lines += Path(table).read_text().splitlines()[1:]
    if not lines:
        return True  # no /proc: cannot tell, so do not claim it is dead
    for line in lines:
        fields = line.split()
        if len(fields) > 3 and fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
            return True
    return False


@dataclass
class WorkerSpec:
    """How to start a worker: where it connects back to, its key, workspace and options."""

    address: str
    key: str
    workspace: Path
    prewarm: Path | None
    debug_at_start: bool
    link: Callable[[bytes, dict[str, Any]], None]
    nproc: int | None = None  # [tool.hotswap] nproc_per_node: rank workers from the start

    @classmethod
    def of(
        cls,
        config: Config,
        workspace: Path,
        key: str,
        link: Callable[[bytes, dict[str, Any]], None],
    ) -> WorkerSpec:
        """The spec ``[tool.hotswap]`` gives; the address is filled in once bound."""
        prewarm, debug_at_start = config.prewarm, config.debug_listen_at_start
        return cls("", key, workspace, prewarm, debug_at_start, link, config.nproc_per_node)


def spawn_worker(
    index: int, spec: WorkerSpec, log: Any, rank_env: dict[str, str] | None = None
) -> WorkerProcess:
    """Start ``python -m hotswap.runner`` connected back to the daemon at ``address``; with
    ``rank_env`` (torchrun's variables for this rank) as a rank worker."""
    argv = [
        sys.executable,
        "-X",
        "frozen_modules=off",  # so debugpy can bind breakpoints in any module
        "-m",
        "hotswap.runner",
        "--connect",
        spec.address,
        "--worker-id",
        str(index),
        "--workspace",
        str(spec.workspace),
        "--daemon-pid",
        str(os.getpid()),
    ]
    if spec.prewarm is not None:
        argv += ["--prewarm", str(spec.prewarm)]
    if spec.debug_at_start:
        argv.append("--debug-listen")
    if rank_env:
        argv.append("--rank-worker")
    env = dict(os.environ, **(rank_env or {}), HOTSWAP_WORKER_KEY=spec.key)
    env.pop("PYTHONSTARTUP", None)
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=str(spec.workspace),
    )
    for stream in (proc.stdout, proc.stderr):
        assert stream is not None
        flags = fcntl.fcntl(stream.fileno(), fcntl.F_GETFL)
        fcntl.fcntl(stream.fileno(), fcntl.F_SETFL, flags | os.O_NONBLOCK)
    worker = WorkerProcess(index, proc, spec.link)
    with contextlib.suppress(AttributeError, OSError):
        worker.pidfd = os.pidfd_open(proc.pid)
    log.info("worker %d started, pid %d", index, proc.pid)
    return worker
