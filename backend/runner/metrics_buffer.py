"""The worker's buffer behind ``hotswap.log``: points kept as logged (tensors too), packed
into columns and sent to the daemon in batches: every FLUSH_SECONDS, every BATCH_POINTS, and
when the run ends (before its exec_done, on the same link, so none arrives after it)."""

from __future__ import annotations

import operator
import os
import sys
import threading
import time
from array import array
from collections.abc import Callable, Mapping
from typing import Any

from .link import runner_thread

BATCH_POINTS = 4096
FLUSH_SECONDS = 0.2
Send = Callable[[str, dict[str, Any]], None]
Point = tuple[str, int, Any, float]


class MetricsBuffer:
    """``add`` is ``hotswap.log`` inside a run; the daemon gets ``metrics`` messages."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self._lock = threading.Lock()  # guards the points, steps and run
        self._flushing = threading.Lock()  # one flush at a time keeps batches in order
        self._points: list[Point] = []
        self._steps: dict[str, int] = {}
        self._run_id: str | None = None
        self._rank: int | None = None
        self._waiting = threading.Event()  # points wait for the timer (which sleeps otherwise)
        runner_thread(self._timer, "hotswap-metrics").start()
        os.register_at_fork(after_in_child=self._forked)

    def _forked(self) -> None:
        """A child process (a DataLoader worker, say) has no link to the daemon: its points
        would wait forever in a copy of the buffer, so it logs nothing."""
        self._lock, self._flushing = threading.Lock(), threading.Lock()
        self._run_id, self._points = None, []

    def begin_run(self, run_id: str, rank: str | None) -> None:
        with self._lock:
            self._run_id, self._rank = run_id, _rank(rank)
            self._points, self._steps = [], {}

    def end_run(self) -> None:
        """Send what is left; points logged after this (a leftover thread's) go nowhere."""
        self.flush()
        with self._lock:
            self._run_id = None
            self._points = []

    def add(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        now = time.time()
        if type(metrics) is not dict and not isinstance(metrics, Mapping):
            raise TypeError(
                f"hotswap.log takes a dict of metric name -> number, got {type(metrics).__name__}"
                " (hotswap.log({'loss': loss}))"
            )
        if step is not None and type(step) is not int:
            step = _step(step)
        with self._lock:
            if self._run_id is None:
                return
            points, steps = self._points, self._steps
            if not points:
                self._waiting.set()
            for name, value in metrics.items():
                if (type(value) is not float and type(value) is not int) or type(name) is not str:
                    value = _checked(name, value)
                at = steps.get(name, -1) + 1 if step is None else step
                steps[name] = at
                points.append((name, at, value, now))
            full = len(points) >= BATCH_POINTS
        if full:
            self.flush()

    def flush(self) -> None:
        with self._flushing:
            with self._lock:
                points, self._points = self._points, []
                run_id, rank = self._run_id, self._rank
            if points and run_id is not None:
                body = {"run_id": run_id, "rank": rank, "series": pack(points)}
                self._send("metrics_batch", body)

    def _timer(self) -> None:
        while True:
            self._waiting.wait()
            time.sleep(FLUSH_SECONDS)
            self._waiting.clear()  # before the flush: a point added after it sets it again
            try:
                self.flush()
            except Exception as exc:  # a value that cannot be converted must not stop the timer
                message = f"hotswap.log: dropped a batch: {type(exc).__name__}: {exc}"
                self._send("worker_log", {"level": "error", "message": message})


def pack(points: list[Point]) -> list[dict[str, Any]]:
    """Points grouped by series into little columns of bytes (int64 steps, float64 values
    and times): cheap to send, cheap for the daemon to slice."""
    columns: dict[str, tuple[list[int], list[Any], list[float]]] = {}
    for name, step, value, at in points:
        column = columns.get(name)
        if column is None:
            column = columns[name] = ([], [], [])
        column[0].append(step)
        column[1].append(value)
        column[2].append(at)
    return [
        {
            "name": name,
            "steps": array("q", steps).tobytes(),
            "values": array("d", _floats(values)).tobytes(),
            "times": array("d", times).tobytes(),
        }
        for name, (steps, values, times) in columns.items()
    ]


def _floats(values: list[Any]) -> list[Any]:
    """Tensors turned into floats together, one transfer per device, not one per value."""
    odd = [i for i, v in enumerate(values) if type(v) is not float and type(v) is not int]
    if odd:
        for i, number in zip(odd, _tensor_floats([values[i] for i in odd]), strict=True):
            values[i] = number
    return values


def _tensor_floats(values: list[Any]) -> list[float]:
    """On the CPU float() is cheapest; elsewhere one stacked copy per device and dtype, so a
    batch costs one wait for the GPU, not one per value."""
    torch = sys.modules.get("torch")
    out = [0.0] * len(values)
    groups: dict[Any, list[int]] = {}
    for i, v in enumerate(values):
        if torch is not None and isinstance(v, torch.Tensor) and v.device.type != "cpu":
            groups.setdefault((v.device, v.dtype), []).append(i)
        else:
            out[i] = float(v)
    for indices in groups.values():
        stacked = torch.stack([values[i] for i in indices]).double().tolist()  # type: ignore[union-attr]
        for i, number in zip(indices, stacked, strict=True):
            out[i] = number
    return out


def _checked(name: Any, value: Any) -> Any:
    """A value other than int or float: a 0-d tensor (detached, kept as is), a numpy scalar
    or a bool; anything else is refused with what to log instead."""
    if type(name) is not str:
        raise TypeError(f"hotswap.log: metric names must be strings, got {name!r}")
    if type(value) is float or type(value) is int:
        return value
    if getattr(value, "requires_grad", False):
        value = value.detach()  # holding the graph until the flush would hold its memory
    if getattr(value, "ndim", 0) == 0 and hasattr(value, "__float__"):
        return value
    raise TypeError(
        f"hotswap.log: {name!r} must be a number or a 0-d tensor, got {type(value).__name__}"
        + (f" of shape {tuple(value.shape)}" if hasattr(value, "shape") else "")
        + " (log loss.mean() or float(x))"
    )


def _step(step: Any) -> int:
    try:
        return operator.index(step)
    except TypeError:
        raise TypeError(f"hotswap.log: step must be an int, got {step!r}") from None


def _rank(rank: str | None) -> int | None:
    try:
        return int(rank) if rank else None
    except ValueError:
        return None
