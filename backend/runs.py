"""Runs and their queue: submit, supersede, cancel, finish, and each run's ordered events.

Knows nothing of sockets nor of worker processes: it sends client messages through the
``send`` function it is given and talks to a run's workers through their ``send`` method.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from .paths import StreamMapper
from .protocol import (
    INTERRUPTED_EXIT,
    RUN_FINISHED_REASONS,
    BadRunId,
    ProtocolError,
    check_run_id,
    make_message,
    new_id,
)
from .run_logs import RunLogs
from .run_request import Run, WorkerHandle

__all__ = ["Run", "RunQueue", "Send", "WorkerHandle"]

log = logging.getLogger("hotswap.daemon")

RECENT_RUNS = 20
Send = Callable[[bytes, dict[str, Any]], None]


class StateKeeper(Protocol):
    """The workspace states runs named (sync_daemon.Syncer): put back as a run starts."""

    def prepare(self, run_id: str) -> str | None: ...

    def release(self, run_id: str) -> None: ...


class History(Protocol):
    """Where runs are recorded (run_history.RunHistory): their start, end and metrics."""

    def started(self, run: Any) -> None: ...

    def finished(self, run_id: str, body: dict[str, Any]) -> None: ...

    def metrics(self, run_id: str, batch: dict[str, Any]) -> tuple[dict[str, Any] | None, str]: ...


class RunQueue:
    """Every run the daemon knows: waiting, running, and the last RECENT_RUNS finished."""

    def __init__(
        self,
        send: Send,
        cancel_timeout: float,
        history: History | None = None,
        *,
        states: StateKeeper | None = None,
    ) -> None:
        self.send, self.history, self.states = send, history, states
        self.cancel_timeout = cancel_timeout
        self.pending: deque[Run] = deque()
        self.live: dict[str, Run] = {}
        self.recent: deque[Run] = deque(maxlen=RECENT_RUNS)
        self.subscribers: set[bytes] = set()  # clients that see every run's start and finish
        self.metrics_subscribers: set[bytes] = set()  # ... and every run's metrics_update
        self.notice_clients: set[bytes] = set()  # clients that show run_notice events
        self.logs = RunLogs()

    def greet(self, client: bytes, hello: dict[str, Any]) -> None:
        """What a client said it wants in its (latest) hello: every run's start and end, live
        metrics, notices (nothing, once it is gone)."""
        for wanted, clients in (
            ("subscribe", self.subscribers),
            ("subscribe_metrics", self.metrics_subscribers),
            ("notices", self.notice_clients),
        ):
            if hello.get(wanted):
                clients.add(client)
            else:
                clients.discard(client)

    def new_run_id(self, chosen: str | None) -> str:
        """The client's run id if it is well formed and fresh, else a new one if none given."""
        if chosen is None:
            return new_id()
        check_run_id(chosen)
        if chosen in self.live or any(r.run_id == chosen for r in self.recent):
            raise BadRunId(
                f"run: run_id {chosen!r} is already used by a recent run",
                hint="choose a fresh run_id for every run (e.g. a random hex string)",
            )
        return chosen

    def submit(self, run: Run) -> None:
        """Take ``run``; unless queued, it supersedes what runs or waits unqueued."""
        self.live[run.run_id] = run
        self.logs.begin(run.run_id, run.body["entry"])
        if not run.queued:
            self.supersede(run)
        self.pending.append(run)

    def supersede(self, newer: Run) -> None:
        waiting = [r for r in self.active() if r.state == "pending" and not r.queued]
        running = [r for r in self.active() if r.state == "running"]
        for run in [r for r in (*waiting, *running) if r is not newer]:
            self.cancel(run, "superseded", f"replaced by run {newer.run_id}")

    def cancel(self, run: Run, reason: str, message: str, skip: set[int] | None = None) -> None:
        """Drop a waiting run (finished with ``reason``), or interrupt a running one (on every
        worker but those indexed in ``skip``)."""
        if run.state == "pending":
            self.pending.remove(run)
            self.finish(run, INTERRUPTED_EXIT, reason, message)
        elif run.state == "running" and run.cancel_deadline is None and run.workers:
            run.cancel_deadline = time.time() + self.cancel_timeout
            for worker in run.workers:
                if worker.index not in (skip or ()):
                    worker.send("interrupt", {"run_id": run.run_id})

    def cancel_all(self, message: str) -> None:
        """Cancel every active run (the daemon is stopping)."""
        for run in self.active():
            self.cancel(run, "cancelled", message)

    def cancel_request(self, client: bytes, run_id: str | None) -> list[str]:
        """A ``cancel`` request: the run named, or every run of ``client``; the ids cancelled."""
        if not run_id:
            targets = [r for r in self.active() if r.client == client]
        else:
            targets = [r for r in self.active() if r.run_id == run_id]
        for run in targets:
            self.cancel(run, "cancelled", "cancelled before it started")
        return [r.run_id for r in targets]

    def client_gone(self, client: bytes) -> list[Run]:
        """A vanished client's runs go on, their output kept for ``logs``; one that waits for
        stdin is cancelled, since nobody is left to type it. The runs of ``client``."""
        runs = [r for r in self.active() if r.client == client]
        for run in runs:
            run.orphaned = True
            self.stdin_wait(run, run.waiting_stdin)
        return runs

    def stdin_wait(self, run: Run, waiting: bool) -> None:
        run.waiting_stdin = waiting
        if waiting and run.orphaned:
            message = "its client disconnected while it waited for input"
            log.info("run %s: %s; cancelling it", run.run_id, message)
            run.cancel_note = message
            self.cancel(run, "cancelled", message)

    def read_log(self, client: bytes, run_id: str | None, follow: bool) -> dict[str, Any]:
        """A ``logs`` request: the run's kept output; with ``follow``, its later events go to
        ``client`` (a client that reconnects takes its run back)."""
        found = self.logs.get(run_id)
        if found is None:
            which = f"run {run_id}" if run_id else "any run"
            raise ProtocolError(
                f"logs: no output is kept for {which}",
                hint="`hotswap status` lists recent runs; the output of the last 20 is kept",
            )
        run_id, kept = found
        run = self.live.get(run_id)
        if follow and run is not None:
            run.client, run.orphaned = client, False
        state = run.state if run is not None else "finished"
        return kept.reply(run_id, state)

    def active(self) -> list[Run]:
        return [r for r in self.live.values() if r.state != "finished"]

    def overdue(self, now: float) -> Iterator[Run]:
        """Running runs that ignored their cancel past the timeout (each reported once)."""
        for run in self.active():
            if run.cancel_deadline is not None and now > run.cancel_deadline:
                run.cancel_deadline = None
                yield run

    def start_next(
        self, workers: list[WorkerHandle], exec_body: Callable[[Run, WorkerHandle], dict[str, Any]]
    ) -> Run | None:
        """Give the next waiting run to idle ``workers`` (one, or every rank) and send each
        its exec."""
        run = self._next_runnable()
        if run is None:
            return None
        run.state, run.workers, run.started = "running", list(workers), time.time()
        for worker in workers:
            worker.current_run = run
            worker.send("exec", exec_body(run, worker))
        for data, eof in run.stdin:
            self._feed(run, data, eof)
        run.stdin.clear()
        return run

    def _next_runnable(self) -> Run | None:
        """The next waiting run, its workspace put in the state it named; a run whose state
        is gone ends with ``resync`` (its client syncs and submits it again)."""
        layout = self.pending[0].nproc if self.pending else None
        while self.pending and self.pending[0].nproc == layout:  # the layout made for the head
            run = self.pending.popleft()
            refused = self.states.prepare(run.run_id) if self.states is not None else None
            if refused is None:
                return run
            self.finish(run, 1, "resync", f"{refused}: sync and run again")
        return None

    def stdin(self, run_id: str, data: bytes, eof: bool) -> bool:
        """Deliver stdin now, or when the run starts; False for an unknown or finished run."""
        run = self.live.get(run_id)
        if run is None or run.state == "finished":
            return False
        if run.state == "running" and run.workers:
            self._feed(run, data, eof)
        else:
            run.stdin.append((data, eof))
        return True

    def _feed(self, run: Run, data: bytes, eof: bool) -> None:
        run.workers[0].send("feed_stdin", {"run_id": run.run_id, "data": data, "eof": eof})

    # -- a run's events, in order: run_started, stream..., run_finished --------------------

    def announce(self, run: Run, warm_keys: list[str], ranks: int | None = None) -> None:
        worker = run.workers[0]
        self._event(
            run,
            "run_started",
            {
                "run_id": run.run_id,
                "entry": run.body["entry"],
                "worker": worker.index,
                "worker_pid": worker.pid,
                "warm_keys": warm_keys,
                "path_mappings": run.path_mappings,
                "cwd": run.body["cwd"],
                "entry_kind": run.body["entry_kind"],
                **({"ranks": ranks} if ranks else {}),
            },
        )
        self._flush_early_output(run)

    def output(self, run: Run, stream: str, data: bytes, rank: int | None = None) -> None:
        if not run.announced:
            # exec_started comes over the worker's socket, its output over pipes: the script
            # may print before the daemon hears that it started. Keep run_started first.
            run.early_output.append((stream, data, rank))
            return
        if stream == "stderr" and run.mirror is not None:
            data = run.stderr_maps.setdefault(rank, StreamMapper(run.mirror)).feed(data)
            run.held_since = time.monotonic()
        if data:
            self._stream(run, stream, data, rank)

    def _stream(self, run: Run, stream: str, data: bytes, rank: int | None = None) -> None:
        run.seq += 1
        self.logs.add(run.run_id, stream, data)
        body = {"run_id": run.run_id, "stream": stream, "seq": run.seq, "data": data}
        self._event(run, "stream", body if rank is None else {**body, "rank": rank})

    def flush_held(self, now: float, after: float = 0.05) -> None:
        """Send stderr bytes held back as the possible start of a mirror path once no more
        output came for ``after`` seconds (a prompt must not wait for the next write)."""
        for run in self.active():
            if now - run.held_since > after:
                self._flush_maps(run)

    def _flush_maps(self, run: Run) -> None:
        for rank, mapper in run.stderr_maps.items():
            if mapper.held:
                self._stream(run, "stderr", mapper.flush(), rank)

    def notice(self, run: Run, kind: str, text: str) -> None:
        """What hotswap did for the run (a warm object followed an edit, was rebuilt, served
        warm): for the run's header, never mixed into the script's stderr; a client that did
        not say it shows notices (an older release) gets them on that stderr, as it used to."""
        log.info("run %s: %s", run.run_id, text)
        if run.client in self.notice_clients:
            self._event(run, "run_notice", {"run_id": run.run_id, "kind": kind, "text": text})
        else:
            self.output(run, "stderr", f"hotswap: {text}\n".encode())

    def _flush_early_output(self, run: Run) -> None:
        run.announced = True
        for stream, data, rank in run.early_output:
            self.output(run, stream, data, rank)
        run.early_output.clear()

    def finish(
        self,
        run: Run,
        exit_code: int,
        reason: str,
        message: str = "",
        error: dict[str, Any] | None = None,
        warm_reused: list[str] | None = None,
        warm_lost: bool = False,
        memory: dict[str, int] | None = None,
        survivors: list[dict[str, Any]] | None = None,
    ) -> None:
        assert reason in RUN_FINISHED_REASONS, reason
        self._flush_early_output(run)  # a worker that died before exec_started still said things
        self._flush_maps(run)
        run.state = "finished"
        duration = time.time() - (run.started or run.requested)
        run.summary = {"exit_code": exit_code, "reason": reason, "duration": round(duration, 4)}
        for worker in run.workers:
            if worker.current_run is run:
                worker.current_run = None
        self.live.pop(run.run_id, None)
        self.recent.append(run)
        if self.states is not None:
            self.states.release(run.run_id)
        body = {
            "run_id": run.run_id,
            "exit_code": exit_code,
            "duration": duration,
            "reason": reason,
            "error": error,
            "message": message,
            "warm_reused": warm_reused or [],
            "warm_lost": warm_lost,
            **({"memory": memory} if memory is not None else {}),
            **({"survivors": survivors} if survivors is not None else {}),
        }
        self.logs.end(run.run_id, exit_code, reason, message)
        self._event(run, "run_finished", body)
        log.info("run %s %s: exit %d %s", run.run_id, reason, exit_code, message)

    def metrics(self, batch: dict[str, Any]) -> None:
        """A worker's batch of hotswap.log points: recorded, then sent on live."""
        run = self.live.get(batch["run_id"])
        if run is None or self.history is None:
            return
        update, note = self.history.metrics(run.run_id, batch)
        if update is not None and update["series"]:
            self._event(run, "metrics_update", update)
        if note:
            self.output(run, "stderr", note.encode())

    def _event(self, run: Run, msg_type: str, body: dict[str, Any]) -> None:
        if self.history is not None and msg_type == "run_started":
            self.history.started(run)
        elif self.history is not None and msg_type == "run_finished":
            self.history.finished(run.run_id, body)
        msg = make_message(msg_type, body)
        if msg_type == "metrics_update":
            # Only to clients that draw them (the CLI and the language server do not): a run
            # logging in a tight loop must not queue its points up for a reader that drops them.
            for client in self.metrics_subscribers - ({run.client} if run.orphaned else set()):
                self.send(client, msg)
            return
        if not run.orphaned:
            self.send(run.client, msg)
        if msg_type in ("run_started", "run_finished"):
            for client in self.subscribers - {run.client}:
                self.send(client, msg)

    def describe(self) -> list[dict[str, Any]]:
        return [r.describe() for r in (*self.recent, *self.active())]
