"""Each run's output, kept bounded in the daemon (its last LOG_BYTES, for the last KEPT_RUNS
runs), for ``hotswap logs RUN`` and for a client that reconnects: a run whose client vanished
goes on, and what it printed meanwhile is not lost."""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any

LOG_BYTES = 1 << 20  # per run: a long training run keeps its last ~10,000 lines
KEPT_RUNS = 20  # finished runs whose output is kept (active runs always are)


@dataclass
class RunLog:
    """One run's output: (stream, bytes) chunks in the order read, the oldest dropped past
    ``limit`` bytes; then how the run ended."""

    entry: str
    limit: int = LOG_BYTES
    chunks: deque[tuple[str, bytes]] = field(default_factory=deque)
    size: int = 0
    dropped: int = 0  # bytes cut from the start
    ended: dict[str, Any] | None = None  # exit_code, reason, message

    def add(self, stream: str, data: bytes) -> None:
        self.chunks.append((stream, data))
        self.size += len(data)
        while self.size > self.limit:
            old_stream, old = self.chunks.popleft()
            cut = min(len(old), self.size - self.limit)
            if cut < len(old):  # keep the tail of a chunk that straddles the limit
                self.chunks.appendleft((old_stream, old[cut:]))
            self.size -= cut
            self.dropped += cut

    def reply(self, run_id: str, state: str) -> dict[str, Any]:
        """The body of a ``logs_reply``."""
        ended = self.ended or {"exit_code": None, "reason": None, "message": ""}
        return {
            "run_id": run_id,
            "entry": self.entry,
            "state": state,
            "output": [{"stream": s, "data": d} for s, d in self.chunks],
            "truncated": self.dropped > 0,
            **ended,
        }


class RunLogs:
    """The kept output of active runs and of the last ``kept`` finished ones."""

    def __init__(self, limit: int = LOG_BYTES, kept: int = KEPT_RUNS) -> None:
        self.limit, self.kept = limit, kept
        self.logs: OrderedDict[str, RunLog] = OrderedDict()

    def begin(self, run_id: str, entry: str) -> None:
        self.logs[run_id] = RunLog(entry, self.limit)

    def add(self, run_id: str, stream: str, data: bytes) -> None:
        log = self.logs.get(run_id)
        if log is not None:
            log.add(stream, data)

    def end(self, run_id: str, exit_code: int, reason: str, message: str) -> None:
        log = self.logs.get(run_id)
        if log is not None:
            log.ended = {"exit_code": exit_code, "reason": reason, "message": message}
        finished = [rid for rid, entry in self.logs.items() if entry.ended is not None]
        for old in finished[: max(0, len(finished) - self.kept)]:
            del self.logs[old]

    def get(self, run_id: str | None) -> tuple[str, RunLog] | None:
        """The log of ``run_id``, or of the latest run if None; None if none is kept."""
        if run_id is None:
            return next(reversed(self.logs.items()), None)
        log = self.logs.get(run_id)
        return (run_id, log) if log is not None else None
