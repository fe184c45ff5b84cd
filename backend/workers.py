"""The daemon's set of runner workers: their messages, output, deaths and restarts.

Workers are keyed by index; a run holds a list of them: one, or every rank (ranks.py owns the
rank layout; a worker's index is its rank). Runs are reached through the RunQueue it is given,
clients through the ``send`` and ``broadcast`` functions; it never sees a socket.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from .orphans import record_workers
from .protocol import INTERRUPTED_EXIT, make_message
from .ranks import RankGroup
from .worker_process import WorkerProcess, WorkerSpec, describe_death, exit_code_of, spawn_worker

if TYPE_CHECKING:
    from .runs import Run, RunQueue, Send

log = logging.getLogger("hotswap.daemon")

Broadcast = Callable[[str, dict[str, Any]], None]
FAST_DEATH_SECONDS = 2.0


class Workers:
    """Starts ``count`` workers, routes what they say, restarts them when they die."""

    def __init__(
        self, spec: WorkerSpec, runs: RunQueue, send: Send, broadcast: Broadcast, count: int
    ) -> None:
        self.spec, self.runs = spec, runs
        self.send, self.broadcast = send, broadcast
        self.count = count
        self.by_index: dict[int, WorkerProcess] = {}
        self.restart_at: dict[int, tuple[float, str, list[str]]] = {}  # when, why, warm lost
        self.fast_deaths: dict[int, int] = {}
        self.stopping = False
        self.group = RankGroup(spec.nproc)  # plain workers, or rank workers of one world size
        self.handlers: dict[str, Callable[[WorkerProcess, dict[str, Any]], None]] = {
            "exec_started": self.on_exec_started,
            "exec_done": self.on_exec_done,
            "exec_notice": self.on_exec_notice,
            "warm_report": self.on_warm_report,
            "debug_listening": self.on_debug_listening,
            "worker_log": self.on_worker_log,
            "metrics_batch": lambda worker, body: self.runs.metrics(body),
            "stdin_wait": self.on_stdin_wait,
        }

    def __iter__(self) -> Iterator[WorkerProcess]:
        return iter(list(self.by_index.values()))

    def __getitem__(self, index: int) -> WorkerProcess:
        return self.by_index[index]

    def __bool__(self) -> bool:
        return bool(self.by_index)

    def start(self) -> None:
        for index in range(self.group.nproc or self.count):
            self.spawn(index)

    def spawn(self, index: int) -> WorkerProcess:
        worker = spawn_worker(index, self.spec, log, self.group.process_env(index))
        self.by_index[index] = worker
        self.record()
        return worker

    def record(self) -> None:
        """Keep .hotswap/workers.json current: a daemon after a crash ends what is listed."""
        record_workers(self.spec.workspace, [w.pid for w in self])

    # -- scheduling -----------------------------------------------------------------------

    def schedule(self) -> None:
        """Give waiting runs to idle workers; first make the layout the next run asks for."""
        run = self.runs.pending[0] if self.runs.pending else None
        nproc = self.group.wanted(run, self.spec.nproc) if run is not None else self.group.nproc
        if nproc != self.group.nproc:
            if run is not None and not self.stopping and not any(w.current_run for w in self):
                self.group.relayout_for(self, run, nproc)
            return
        if self.group.nproc:
            self.group.schedule(self)
            return
        for worker in self:
            busy = worker.current_run is not None or worker.pending_shutdown
            idle = worker.ready and not busy and not worker.pending_restart
            if not idle or worker.kill_requested is not None or self._replace_for_debug(worker):
                continue
            if self.runs.start_next([worker], self.group.exec_body) is None:
                return

    def _replace_for_debug(self, worker: WorkerProcess) -> bool:
        """debugpy's listener ends for good when a debugger hangs up without waiting for the
        answer to its disconnect (its adapter process exits, and listen() works once per
        process): replace the worker before the next debug run instead of announcing a port
        that refuses connections. The run says so on its stderr."""
        run = self.runs.pending[0] if self.runs.pending else None
        if run is None or not run.body.get("debug") or worker.debug_alive():
            return False
        why = f"the debugger listener of worker {worker.index} had stopped"
        lost = [entry["key"] for entry in worker.warm]
        note = f"hotswap: {why}; starting a new worker for this debug run{_lost(lost)}\n"
        self.runs.output(run, "stderr", note.encode())
        worker.kill(why)
        return True

    # -- what workers say -----------------------------------------------------------------

    def on_message(self, identity: bytes, msg: dict[str, Any]) -> None:
        """Dispatch one message from a worker; anything but a worker's message is logged."""
        if msg["type"] == "worker_ready":
            self.on_worker_ready(identity, msg["body"])
            return
        handler = self.handlers.get(msg["type"])
        if handler is None:
            log.error("unexpected %s on the worker socket; ignored", msg["type"])
            return
        worker = next((w for w in self if w.identity == identity), None)
        if worker is not None:  # else a worker that has been replaced
            handler(worker, msg["body"])

    def on_worker_ready(self, identity: bytes, body: dict[str, Any]) -> None:
        worker = next((w for w in self if w.pid == body["pid"]), None)
        if worker is None:
            return
        worker.identity, worker.ready = identity, True
        log.info("worker %d ready (pid %d, Python %s)", worker.index, worker.pid, body["python"])
        self.schedule()

    def _run_of(self, worker: WorkerProcess, run_id: str | None) -> Run | None:
        run = worker.current_run
        return run if run is not None and run.run_id == run_id else None

    def on_exec_started(self, worker: WorkerProcess, body: dict[str, Any]) -> None:
        run = self._run_of(worker, body["run_id"])
        if run is not None and not run.announced:  # the first rank to start announces
            self.runs.announce(run, body["warm_keys"], self.group.nproc)

    def on_exec_done(self, worker: WorkerProcess, body: dict[str, Any]) -> None:
        self.drain_output(worker)
        if self.group.nproc:
            self.group.on_exec_done(self, worker, body)
            return
        run = self._run_of(worker, body["run_id"])
        if run is None:
            return
        cancelled = run.cancel_deadline is not None and body["interrupted"]
        restart = body.get("restart")
        lost = []
        if restart:  # the worker exits after this; its exit is a planned restart
            worker.kill_requested, worker.pending_restart = restart, True
            lost = [entry["key"] for entry in worker.warm]
        self.runs.finish(
            run,
            body["exit_code"],
            "cancelled" if cancelled else "exited",
            _restart_message(restart, lost) if restart else (run.cancel_note if cancelled else ""),
            error=body["error"],
            warm_reused=body["warm_reused"],
            warm_lost=bool(lost),
            memory=body.get("memory"),
            survivors=body.get("survivors"),
        )
        self.schedule()

    def on_exec_notice(self, worker: WorkerProcess, body: dict[str, Any]) -> None:
        run = self._run_of(worker, body["run_id"])
        if run is not None:
            self.runs.notice(run, body["kind"], body["text"])

    def on_warm_report(self, worker: WorkerProcess, body: dict[str, Any]) -> None:
        changed = body["warm"] != worker.warm
        worker.warm, worker.memory = body["warm"], body["memory"]
        if changed:
            self.broadcast("warm_changed", {"worker": worker.index, "warm": worker.warm})

    def on_debug_listening(self, worker: WorkerProcess, body: dict[str, Any]) -> None:
        worker.debug = {"host": body["host"], "port": body["port"]}
        run = self._run_of(worker, body["run_id"])
        event = {
            "run_id": run.run_id if run else None,
            "worker": worker.index,
            **worker.debug,
            "path_mappings": run.path_mappings if run else [],
            "just_my_code": run.body["just_my_code"] if run else True,
            "wait": run.body["wait"] if run else False,
            "attached": bool(body.get("attached")),
        }
        if run is None:
            self.broadcast("debug_ready", event)
        else:
            self.send(run.client, make_message("debug_ready", event))

    def on_stdin_wait(self, worker: WorkerProcess, body: dict[str, Any]) -> None:
        run = self._run_of(worker, body["run_id"])
        if run is not None:
            self.runs.stdin_wait(run, body["waiting"])

    def on_worker_log(self, worker: WorkerProcess, body: dict[str, Any]) -> None:
        level = logging.getLevelName(body["level"].upper())
        log.log(level, "worker %d: %s", worker.index, body["message"])

    # -- output pipes ---------------------------------------------------------------------

    def output_fds(self) -> dict[int, tuple[WorkerProcess, str]]:
        """Every pipe and process handle to poll: fd → (worker, stream name or "exit")."""
        watched: dict[int, tuple[WorkerProcess, str]] = {}
        for worker in self:
            for fd, stream in worker.output_fds.items():
                watched[fd] = (worker, stream)
            if worker.pidfd is not None:
                watched[worker.pidfd] = (worker, "exit")
        return watched

    def read_output(self, worker: WorkerProcess, fd: int, stream: str) -> None:
        data = worker.read_available(fd)
        if data:
            self._emit_output(worker, stream, data)

    def drain_output(self, worker: WorkerProcess) -> None:
        for fd, stream in worker.output_fds.items():
            while data := worker.read_available(fd):
                self._emit_output(worker, stream, data)

    def _emit_output(self, worker: WorkerProcess, stream: str, data: bytes) -> None:
        if worker.current_run is None:
            text = data.decode(errors="replace").rstrip()
            log.info("worker %d %s: %s", worker.index, stream, text)
        else:
            rank = worker.index if self.group.nproc else None
            self.runs.output(worker.current_run, stream, data, rank)

    # -- deaths and restarts --------------------------------------------------------------

    def reap(self) -> None:
        for worker in self:
            if worker.proc.poll() is not None:
                self.on_exit(worker)

    def on_exit(self, worker: WorkerProcess) -> None:
        if self.by_index.get(worker.index) is not worker:
            return  # already replaced with its whole rank group
        returncode = worker.proc.wait()
        self.drain_output(worker)
        if self.group.nproc and not self.stopping and self.group.used:
            death = worker.kill_requested or describe_death(returncode)
            self.group.on_death(self, worker, death, exit_code_of(returncode))
            return
        worker.close()
        del self.by_index[worker.index]
        self.record()
        lost = [entry["key"] for entry in worker.warm]
        death = worker.kill_requested or describe_death(returncode)
        stopped = worker.pending_shutdown and self.stopping
        level = logging.INFO if stopped else logging.WARNING
        log.log(level, "worker %d (pid %d) ended: %s", worker.index, worker.pid, death)
        run = worker.current_run
        if stopped:
            if run is not None:
                self.runs.finish(run, INTERRUPTED_EXIT, "cancelled", "the daemon stopped")
            return
        if run is not None:
            message = f"{death}; restarted the worker" + _lost(lost)
            if worker.kill_requested:
                self.runs.finish(run, INTERRUPTED_EXIT, "killed", message, warm_lost=bool(lost))
            else:
                code = exit_code_of(returncode)
                self.runs.finish(run, code, "crashed", message, warm_lost=bool(lost))
        self._restart_later(worker, death, lost, during_run=run is not None)

    def _restart_later(
        self, worker: WorkerProcess, death: str, lost: list[str], during_run: bool
    ) -> None:
        """Restart at once; back off only for a worker that keeps dying on its own at start
        (a broken prewarm), not for scripts that crash it."""
        young = time.time() - worker.started < FAST_DEATH_SECONDS
        fast = young and not worker.kill_requested and not during_run
        count = self.fast_deaths.get(worker.index, 0) + 1 if fast else 0
        self.fast_deaths[worker.index] = count
        if not count:
            self.respawn(worker.index, death, lost)
            return
        delay = min(30.0, 0.25 * 2**count)
        log.error(
            "worker %d died %d time(s) right after start; retrying in %.1fs "
            "(check [tool.hotswap] prewarm)",
            *(worker.index, count, delay),
        )
        self.restart_at[worker.index] = (time.time() + delay, death, lost)

    def respawn(self, index: int, death: str, lost: list[str]) -> None:
        """Start a worker in place of a dead one and tell every client, delayed or not."""
        new = self.spawn(index)
        body = {"worker": index, "pid": new.pid, "reason": death, "warm_lost": lost}
        self.broadcast("worker_restarted", body)

    def check_timers(self, now: float, cancel_timeout: float, stop_deadline: float) -> None:
        """Kill workers whose run ignored its cancel; restart the ones whose back-off is over."""
        self.runs.flush_held(time.monotonic())
        overdue = {run.run_id for run in self.runs.overdue(now)}
        for worker in self:
            run = worker.current_run
            if run is not None and run.run_id in overdue:
                log.warning(
                    "run %s ignored its cancel; killing worker %d", run.run_id, worker.index
                )
                worker.kill(f"the run did not stop within {cancel_timeout:g}s of the cancel")
        for index, (when, death, lost) in list(self.restart_at.items()):
            if now >= when and not self.stopping:
                del self.restart_at[index]
                self.respawn(index, death, lost)
        if self.stopping and now > stop_deadline:
            for worker in self:
                if worker.kill_requested is None:
                    log.warning("worker %d did not shut down; killing it", worker.index)
                    worker.kill("the daemon stopped")

    # -- requests that reach every worker -------------------------------------------------

    def release(self, keys: list[str] | None) -> list[str]:
        """Tell every worker to forget ``keys`` (all if None); the keys they held."""
        held = {entry["key"] for worker in self for entry in worker.warm}
        for worker in self:
            if worker.ready:
                worker.send("forget", {"keys": keys})
        return sorted(k for k in held if keys is None or k in keys)

    def stop(self) -> None:
        """Ask every worker to shut down (its run was already interrupted); kill the unready."""
        self.stopping = True
        for worker in self:
            if worker.ready:
                worker.send("shutdown", {})
            else:
                worker.kill("the daemon stopped")
            worker.pending_shutdown = True
        self.restart_at.clear()

    def describe(self) -> list[dict[str, Any]]:
        ranks = {"ranks": self.group.nproc} if self.group.nproc else {}
        return [{**_describe(w), **ranks} for w in self]


def _describe(worker: WorkerProcess) -> dict[str, Any]:
    if not worker.ready:
        state = "starting"
    else:
        state = "running" if worker.current_run is not None else "idle"
    return {
        "index": worker.index,
        "pid": worker.pid,
        "state": state,
        "started": worker.started,
        "warm": worker.warm,
        "memory": {"rss": worker.rss_bytes(), **worker.memory},
        "run_id": worker.current_run.run_id if worker.current_run else None,
        "debug": worker.debug if worker.debug_alive() else None,  # never a dead port
    }


def _lost(keys: list[str]) -> str:
    return f"; warm objects lost: {', '.join(keys)}" if keys else ""


def _restart_message(restart: str, lost: list[str]) -> str:
    return restart + _lost(lost)
