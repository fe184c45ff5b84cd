"""Rank workers: N workers dedicated to one world size, set up as torchrun sets up its ranks.

Owns the layout (how many ranks, the rendezvous port), each rank's environment, a rank run's
per-rank results, and when the whole group must be started afresh (a rank died, the ranks
stopped out of step, another world size was asked for). Workers delegates to it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from typing import TYPE_CHECKING, Any

from .protocol import INTERRUPTED_EXIT

if TYPE_CHECKING:
    from .runs import Run, WorkerHandle
    from .worker_process import WorkerProcess
    from .workers import Workers

log = logging.getLogger("hotswap.daemon")

MAX_RANKS = 256


def free_port() -> int:
    """A TCP port free on loopback now, for rank 0's store (torchrun picks its own alike)."""
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def check_nproc(value: Any, debug_rank: Any) -> None:
    """Refuse a run request's nproc_per_node and debug_rank that no layout can serve."""
    from .protocol import ProtocolError

    if value is not None and (not isinstance(value, int) or not 0 <= value <= MAX_RANKS):
        raise ProtocolError(
            f"run: nproc_per_node must be an integer from 0 to {MAX_RANKS}, got {value!r}",
            hint="0 runs as plain python on one worker; N >= 1 runs N ranks as torchrun does",
        )
    if not isinstance(debug_rank, int) or debug_rank < 0 or (value and debug_rank >= value):
        raise ProtocolError(
            f"run: debug_rank {debug_rank!r} is not a rank of this run",
            hint="pick a rank from 0 to nproc_per_node - 1",
        )


def rank_env(nproc: int, port: int, rank: int) -> dict[str, str]:
    """What torchrun --nproc-per-node N --master-port P puts in rank ``rank``'s environment.
    TORCHELASTIC_USE_AGENT_STORE is False: rank 0 hosts the store, there is no agent."""
    values = {
        "RANK": rank,
        "LOCAL_RANK": rank,
        "GROUP_RANK": 0,
        "ROLE_RANK": rank,
        "ROLE_NAME": "default",
        "WORLD_SIZE": nproc,
        "LOCAL_WORLD_SIZE": nproc,
        "GROUP_WORLD_SIZE": 1,
        "ROLE_WORLD_SIZE": nproc,
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": port,
        "TORCHELASTIC_RESTART_COUNT": 0,
        "TORCHELASTIC_MAX_RESTARTS": 0,
        "TORCHELASTIC_RUN_ID": "none",
        "TORCHELASTIC_USE_AGENT_STORE": "False",
        "TORCHELASTIC_SIGNALS_TO_HANDLE": "SIGTERM,SIGINT,SIGHUP,SIGQUIT",
        "TORCH_NCCL_ASYNC_ERROR_HANDLING": 1,
    }
    return {key: str(value) for key, value in values.items()}


class RankGroup:
    """The workers' layout: plain (``nproc`` None) or ``nproc`` ranks around one port."""

    def __init__(self, nproc: int | None) -> None:
        self.nproc = nproc
        self.port = free_port() if nproc else 0
        # A run has started on these rank workers: their process group may be up, so one of
        # them dying takes all. Before that (a broken prewarm), one is restarted alone.
        self.used = False

    def wanted(self, run: Run, default: int | None) -> int | None:
        """The ranks a run asks for: its own nproc_per_node, else the workspace's; 0 is plain."""
        nproc = run.nproc if run.nproc is not None else default
        return nproc or None

    def process_env(self, index: int) -> dict[str, str]:
        """Set in a rank worker's own environment too: libraries read some at import."""
        if not self.nproc:
            return {}
        threads = {} if "OMP_NUM_THREADS" in os.environ else {"OMP_NUM_THREADS": "1"}
        return {**threads, **rank_env(self.nproc, self.port, index)}

    def exec_body(self, run: Run, worker: WorkerHandle) -> dict[str, Any]:
        """The exec a rank gets: the run's, with its rank's environment; only the rank chosen
        for the debugger runs under it."""
        body = {"run_id": run.run_id, **run.body}
        if self.nproc:
            body["env"] = {**body["env"], **self.process_env(worker.index)}
            body["debug"] = bool(body["debug"]) and worker.index == run.debug_rank
        return body

    # -- scheduling and the group's lifetime ------------------------------------------------

    def schedule(self, workers: Workers) -> None:
        """Start the next run on every rank at once, when all are ready and idle."""
        group = list(workers)
        if len(group) != self.nproc or not all(_idle(w) for w in group):
            return
        run = workers.runs.pending[0] if workers.runs.pending else None
        if run is not None and run.body["debug"] and run.debug_rank >= len(group):
            workers.runs.pending.popleft()  # its ranks came from [tool.hotswap]: checked here
            message = f"--debug-rank {run.debug_rank}: the run has ranks 0 to {len(group) - 1}"
            workers.runs.finish(run, 2, "exited", message)
            return
        if run is not None and run.body["debug"] and not workers[run.debug_rank].debug_alive():
            # debugpy listens once per process (see Workers._replace_for_debug), and one rank
            # cannot be replaced alone: its process group would lose a peer.
            why = f"the debugger listener of rank {run.debug_rank} had stopped"
            lost = self.regroup(workers, self.nproc, why)
            workers.runs.output(
                run, "stderr", f"hotswap: {why}: restarted the rank workers{_lost(lost)}\n".encode()
            )
            return
        self.used = True
        started = workers.runs.start_next(sorted(group, key=lambda w: w.index), self.exec_body)
        if started is not None:  # stdin is rank 0's; the others read an empty one, not hang
            body = {"run_id": started.run_id, "data": b"", "eof": True}
            for worker in (w for w in group if w.index != 0):
                worker.send("feed_stdin", body)

    def regroup(self, workers: Workers, nproc: int | None, why: str) -> list[str]:
        """Stop every worker now and start the layout for ``nproc``; the warm keys lost.
        Never a new default process group in an old process: torch hangs there."""
        lost = sorted({entry["key"] for w in workers for entry in w.warm})
        for worker in workers:
            worker.kill(why)
            with contextlib.suppress(Exception):
                worker.proc.wait(timeout=10)
            workers.drain_output(worker)
            worker.close()
        workers.by_index.clear()
        workers.restart_at.clear()
        self.nproc, self.port, self.used = nproc, free_port() if nproc else 0, False
        log.info("workers regrouped (%s): %s", why, f"{nproc} ranks" if nproc else "plain")
        for index in range(nproc or workers.count):
            new = workers.spawn(index)
            body = {"worker": index, "pid": new.pid, "reason": why, "warm_lost": lost}
            workers.broadcast("worker_restarted", body)
        return lost

    def relayout_for(self, workers: Workers, run: Run, nproc: int | None) -> None:
        """A run wants another world size: the idle workers make way, and the run says so."""
        before = f"{self.nproc} ranks" if self.nproc else "one plain worker"
        after = f"{nproc} ranks" if nproc else "one plain worker"
        why = f"this run asks for {after}; the workers ran {before}"
        lost = self.regroup(workers, nproc, why)
        note = f"hotswap: {why}: restarted them{_lost(lost)}\n"
        workers.runs.output(run, "stderr", note.encode())

    # -- a rank run's end -------------------------------------------------------------------

    def on_exec_done(self, workers: Workers, worker: WorkerProcess, body: dict[str, Any]) -> None:
        run = worker.current_run
        if run is None or run.run_id != body["run_id"] or worker.index in run.rank_done:
            return
        run.rank_done[worker.index] = body
        if body["exit_code"] != 0 and run.failed_rank is None and run.cancel_deadline is None:
            run.failed_rank = worker.index  # the first rank to fail fails them all
            workers.runs.cancel(run, "cancelled", "", skip=set(run.rank_done))
        if len(run.rank_done) == self.nproc:
            self._finish(workers, run)

    def _finish(self, workers: Workers, run: Run) -> None:
        done = run.rank_done
        restart = self._restart_reason(done)
        lost = sorted({e["key"] for w in workers for e in w.warm}) if restart else []
        exit_code, reason, message = _outcome(run)
        error = done[run.failed_rank]["error"] if run.failed_rank is not None else None
        if restart:
            message = "; ".join(filter(None, [message, restart + _lost(lost)]))
        reused = sorted(set.intersection(*(set(b["warm_reused"]) for b in done.values())))
        workers.runs.finish(
            run, exit_code, reason, message, error, warm_reused=reused, warm_lost=bool(lost)
        )
        if restart:
            self.regroup(workers, self.nproc, restart)
        workers.schedule()

    def _restart_reason(self, done: dict[int, dict[str, Any]]) -> str | None:
        for rank, body in sorted(done.items()):
            if body.get("restart"):
                return f"rank {rank}: {body['restart']}; restarted the rank workers"
        counts = {rank: body.get("collectives") for rank, body in done.items()}
        if len(set(counts.values())) > 1:
            said = ", ".join(f"rank {r} {c}" for r, c in sorted(counts.items()))
            return (
                f"the ranks stopped out of step (collectives so far: {said}), so their process "
                "group cannot serve another run; restarted the rank workers"
            )
        return None

    def on_death(self, workers: Workers, worker: WorkerProcess, death: str, code: int) -> None:
        """A rank worker ended: its run fails for every rank and the group starts afresh
        (the survivors' process group has lost a peer)."""
        run = worker.current_run
        why = f"rank {worker.index}: {death}"
        lost = sorted({e["key"] for w in workers for e in w.warm} | _keys(worker))
        if run is not None:
            killed = worker.kill_requested is not None
            code = INTERRUPTED_EXIT if killed else code
            message = f"{why}; stopped the other ranks and restarted the rank workers{_lost(lost)}"
            error = None
            if killed and run.failed_rank is not None:  # stuck after another rank failed
                code, _, failure = _outcome(run)
                message, error = f"{failure}; {message}", run.rank_done[run.failed_rank]["error"]
            reason = "killed" if killed else "crashed"
            workers.runs.finish(run, code, reason, message, error, warm_lost=bool(lost))
        self.regroup(workers, self.nproc, why)


def _idle(worker: WorkerProcess) -> bool:
    busy = worker.current_run is not None or worker.pending_shutdown or worker.pending_restart
    return worker.ready and not busy and worker.kill_requested is None


def _outcome(run: Run) -> tuple[int, str, str]:
    """Exit code, reason and message of a rank run whose ranks all reported their end."""
    done = run.rank_done
    if run.failed_rank is not None:
        body = done[run.failed_rank]
        error = body["error"]
        what = f"{error['type']}: {error['message']}" if error else f"exit code {body['exit_code']}"
        message = f"rank {run.failed_rank} failed ({what}); the other ranks were interrupted"
        return body["exit_code"], "exited", message
    if run.cancel_deadline is not None and any(b["interrupted"] for b in done.values()):
        return INTERRUPTED_EXIT, "cancelled", ""
    codes = [done[rank]["exit_code"] for rank in sorted(done)]
    return next((c for c in codes if c != 0), 0), "exited", ""


def _keys(worker: WorkerProcess) -> set[str]:
    return {entry["key"] for entry in worker.warm}


def _lost(keys: list[str]) -> str:
    return f"; warm objects lost: {', '.join(keys)}" if keys else ""
