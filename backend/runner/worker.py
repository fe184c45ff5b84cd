"""The runner worker's main loop: take a run, execute it in the main thread, report back."""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import runpy
import signal
import sys
import threading
import traceback
from typing import Any

from .. import metrics
from ..protocol import INTERRUPTED_EXIT
from ..warm import WarmCache, install
from . import run_memory
from .auto_warm import end_run as end_auto_warm_run
from .debug import DebuggerTimeout, ensure_listening, wait_for_debugger
from .distributed import WarmGroup, collectives, use_local_device
from .execute import (
    PREWARM_MODULE,
    RunOutcome,
    RunRequest,
    collector,
    empty_cuda_cache,
    execute,
    isolate_runs,
    release_run_memory,
)
from .leftovers import adopt_orphans, kill_children
from .link import WorkerLink
from .metrics_buffer import MetricsBuffer
from .survivors import find_survivors


def memory_report() -> dict[str, Any]:
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available() or not torch.cuda.is_initialized():
        return {}
    return {
        "cuda_allocated": int(torch.cuda.memory_allocated()),
        "cuda_reserved": int(torch.cuda.memory_reserved()),
    }


class Worker:
    def __init__(self, link: WorkerLink, group: WarmGroup | None = None) -> None:
        self.link, self.group = link, group  # group: a rank worker's warm process group
        self.cache = WarmCache(on_change=self.warm_changed)
        self.last_run: dict[str, int] = {}  # run_memory.after_run's figures
        self.metrics = MetricsBuffer(link.send)
        link.on_forget = self.forget

    def report_warm(self) -> None:
        memory = {**memory_report(), **self.last_run}
        self.link.send("warm_report", {"warm": self.cache.describe(), "memory": memory})

    def warm_changed(self) -> None:
        collector.full_needed = True  # a dropped warm object may sit among frozen objects
        self.report_warm()

    def forget(self, keys: list[str] | None) -> None:
        """Release warm objects now (from the link thread), memory included."""
        if keys is None:
            self.cache.clear()
        else:
            for key in keys:
                self.cache.forget(key)
        gc.unfreeze()
        gc.collect()
        empty_cuda_cache()
        self.report_warm()

    def serve(self) -> None:
        while True:
            try:
                job = self.link.jobs.get()
                if job is None or not self.run(job):
                    return
            except KeyboardInterrupt:
                continue  # a cancel that landed just after its run ended

    def run(self, job: dict[str, Any]) -> bool:
        """Execute one run; False if this worker must be replaced after it."""
        request = RunRequest(
            run_id=job["run_id"],
            entry=job["entry"],
            args=list(job["args"]),
            cwd=job["cwd"],
            env=dict(job["env"]),
            workspace=job["workspace"],
            path_map=tuple(job["path_map"]) if job.get("path_map") else None,
            debug=bool(job.get("debug")),
            entry_kind=str(job.get("entry_kind") or "path"),
        )
        self.link.send("exec_started", {"run_id": request.run_id, "warm_keys": self.cache.keys()})
        outcome = RunOutcome(exit_code=INTERRUPTED_EXIT, duration=0.0, interrupted=True)
        run_memory.begin_run()  # not between begin_run and the handler: a cancel lands there
        try:
            self.metrics.begin_run(
                request.run_id, request.env.get("RANK") or os.environ.get("RANK")
            )
            self.link.begin_run(request.run_id)
            signal.signal(signal.SIGINT, signal.default_int_handler)
            refused = self.attach_debugger(request, job) if request.debug else None
            outcome = refused or execute(request)
            if self.group is not None:
                outcome.restart = outcome.restart or self.group.after_run()
        except Exception:  # a bug of ours, not the script's: say so, and start afresh
            print("hotswap: internal error in the runner (please report):", file=sys.stderr)
            traceback.print_exc()
            outcome = RunOutcome(exit_code=1, duration=0.0, restart=INTERNAL_ERROR)
        finally:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            self.metrics.end_run()
            memory, survivors = self.settle()  # before exec_done: its notices are the run's
            self.link.end_run()
            self.link.send(
                "exec_done",
                {
                    "run_id": request.run_id,
                    "exit_code": outcome.exit_code,
                    "duration": outcome.duration,
                    "error": outcome.error,
                    "warm_reused": outcome.warm_reused,
                    "interrupted": outcome.interrupted,
                    "restart": _restart_reason(outcome),
                    "memory": memory,
                    "survivors": survivors,
                    **({"collectives": collectives()} if self.group else {}),
                },
            )
            if collector.full_due:  # after exec_done: the run's end does not wait for it
                release_run_memory(self.measure)
            self.report_warm()
        return _restart_reason(outcome) is None

    def measure(self, full: bool = True) -> None:
        self.last_run = run_memory.after_run(self.cache.describe())

    def settle(self) -> tuple[dict[str, int], list[dict[str, Any]]]:
        """After a run: warm objects put back, what it left freed, then measured (the run's
        footer): its memory figures and the largest survivors, if it left memory behind.
        When a full collection is due (the first run, every Collector.FULL_EVERY runs, a warm
        object dropped) it comes after the run's end, and the footer names no survivors."""
        survivors: list[dict[str, Any]] = []

        def inspect(full: bool) -> None:
            self.measure()
            grew = run_memory.left_behind(self.last_run)
            if not full:  # gc lists only what the run created: cheap
                survivors.extend(find_survivors(self.cache.held_values(), grew))

        try:
            end_auto_warm_run(self.cache)
            self.cache.after_run()
            if collector.full_due:  # a full collection waits until the run's end is sent
                inspect(full=True)
            else:
                release_run_memory(inspect)
        except Exception:  # a bug of ours: the run has ended all the same
            print("hotswap: internal error after the run (please report):", file=sys.stderr)
            traceback.print_exc()
        return {**memory_report(), **self.last_run}, survivors

    def notice(self, kind: str, text: str) -> bool:
        """A warm-cache notice (hotswap.warm.say) for the current run's header."""
        return self.link.notice(kind, text)

    def announce_debugger(self, run_id: str | None) -> tuple[str, int]:
        host, port = ensure_listening(self.link.interrupt_current)
        import debugpy

        self.link.send(
            "debug_listening",
            {
                "run_id": run_id,
                "host": host,
                "port": port,
                "attached": debugpy.is_client_connected(),
            },
        )
        return host, port

    def attach_debugger(self, request: RunRequest, job: dict[str, Any]) -> RunOutcome | None:
        """Listen, announce, and (unless --no-wait) wait for a debugger; an outcome if the
        run cannot go on."""
        host, port = self.announce_debugger(request.run_id)
        if not job.get("wait", True):
            return None
        timeout = float(job.get("debug_timeout", 60.0))
        try:
            wait_for_debugger(timeout)
        except DebuggerTimeout:
            print(
                f"hotswap: no debugger attached to {host}:{port} within {timeout:g}s, so the run "
                "did not start. Attach a DAP client (VS Code: Debug on Warm GPU; nvim-dap: "
                "attach to that host and port), or run with --no-wait.",
                file=sys.stderr,
            )
            return RunOutcome(exit_code=1, duration=timeout)
        except KeyboardInterrupt:
            print("hotswap: cancelled while waiting for a debugger", file=sys.stderr)
            return RunOutcome(exit_code=INTERRUPTED_EXIT, duration=0.0, interrupted=True)
        return None


INTERNAL_ERROR = "the runner failed inside (see the error above)"


def _restart_reason(outcome: RunOutcome) -> str | None:
    """Why this worker cannot be put back for another run (it is then replaced), or None."""
    if outcome.broken_imports:
        return (
            f"the run was stopped while importing {', '.join(outcome.broken_imports)} for the "
            "first time, which cannot be imported again in the same process; the worker "
            "restarts so the next run imports it cleanly"
        )
    if outcome.restart:
        return f"{outcome.restart}; the worker restarts so the next run starts clean"
    return None


def start_prewarm(path: str, workspace: str) -> threading.Thread:
    """Run the prewarm module in the background so warm objects load before they are asked for."""

    def prewarm() -> None:
        try:
            runpy.run_path(path, run_name=PREWARM_MODULE)
        except BaseException:
            print(f"hotswap: prewarm {path} failed:", file=sys.stderr)
            traceback.print_exc()

    if workspace not in sys.path:
        sys.path.append(workspace)
    thread = threading.Thread(target=prewarm, name="hotswap-prewarm", daemon=True)
    thread.start()
    return thread


def die_with_daemon() -> None:
    """Ask Linux to SIGKILL us when the daemon dies, so no orphan keeps warm objects (and the
    GPU's memory); a daemon that died before we asked is caught by the link's parent watch."""
    import ctypes

    pr_set_pdeathsig = 1
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)


def main(argv: list[str] | None = None) -> None:
    die_with_daemon()
    parser = argparse.ArgumentParser(prog="python -m hotswap.runner")
    parser.add_argument("--connect", required=True)
    parser.add_argument("--worker-id", type=int, required=True)
    parser.add_argument("--workspace", required=True)
    parser.add_argument("--prewarm")
    parser.add_argument("--debug-listen", action="store_true")
    parser.add_argument("--daemon-pid", type=int, default=0)
    parser.add_argument("--rank-worker", action="store_true")
    args = parser.parse_args(argv)
    key = os.environ.pop("HOTSWAP_WORKER_KEY", "")
    if not key:
        parser.error("HOTSWAP_WORKER_KEY is not set; the worker is started by `hotswap serve`")
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with contextlib.suppress(ValueError):  # `-m` put the daemon's cwd first; runs set their own
        sys.path.remove(os.getcwd())
    group = WarmGroup() if args.rank_worker else None
    if group is not None:  # torch, patched, is part of the pristine process
        group.install()
        use_local_device()
    isolate_runs(args.workspace)  # before any run or prewarm: the pristine process
    adopt_orphans()
    link = WorkerLink(args.connect, key, args.worker_id, args.daemon_pid)
    worker = Worker(link, group)
    install(worker.cache, worker.notice)
    metrics.install(worker.metrics.add)
    link.start()
    link.send("worker_ready", {"pid": os.getpid(), "python": sys.version.split()[0]})
    if args.debug_listen:
        worker.announce_debugger(None)
    if args.prewarm:
        start_prewarm(args.prewarm, args.workspace)
    worker.serve()
    kill_children()  # what runs left running must not outlive the worker (`hotswap stop`)
    link.close()
