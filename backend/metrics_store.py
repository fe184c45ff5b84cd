"""A run's metric series in the daemon, bounded: beyond SERIES_LIMIT points a series keeps
every ``stride``-th point (the stride doubles as needed) plus its min, max and last, and says
how many points were logged, so thinning is never silent."""

from __future__ import annotations

import sys
from array import array
from typing import Any

SERIES_LIMIT = 10_000
Point = list[Any]  # [step, value, time]


def _column(code: str, data: bytes) -> array[Any]:
    column = array(code)
    column.frombytes(data)
    if sys.byteorder != "little":
        column.byteswap()
    return column


class Series:
    """One metric of one run: what the daemon keeps, sends live and saves."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.steps, self.values, self.times = array("q"), array("d"), array("d")
        self.stride, self.count = 1, 0
        self.extremes: dict[str, tuple[int, Point]] = {}  # "min"/"max" -> (arrival index, point)
        self.last: Point | None = None
        self.sent, self.reset = 0, False  # live: points already sent; thinned since

    def add_batch(self, batch: dict[str, Any]) -> None:
        steps = _column("q", batch["steps"])
        values, times = _column("d", batch["values"]), _column("d", batch["times"])
        if not len(steps) == len(values) == len(times):
            raise ValueError(f"metric {self.name!r}: columns of different lengths")
        self.extend(steps, values, times)

    def extend(self, steps: array[Any], values: array[Any], times: array[Any]) -> None:
        if not steps:
            return
        first = (-self.count) % self.stride  # the next arrival index that is a multiple
        self.steps.extend(steps[first :: self.stride])
        self.values.extend(values[first :: self.stride])
        self.times.extend(times[first :: self.stride])
        self._extremes(steps, values, times)
        self.count += len(steps)
        self.last = [steps[-1], values[-1], times[-1]]
        while len(self.steps) > SERIES_LIMIT:
            self._thin()

    def _extremes(self, steps: array[Any], values: array[Any], times: array[Any]) -> None:
        finite = [v for v in (min(values), max(values)) if v == v]  # NaN compares unequal
        for kind, value in zip(("min", "max"), finite, strict=False):
            held = self.extremes.get(kind)
            if held is None or (value < held[1][1] if kind == "min" else value > held[1][1]):
                i = values.index(value)
                self.extremes[kind] = (self.count + i, [steps[i], value, times[i]])

    def _thin(self) -> None:
        self.steps, self.values, self.times = self.steps[::2], self.values[::2], self.times[::2]
        self.stride *= 2
        self.reset = True

    def points(self) -> list[Point]:
        """Every point kept, with min, max and last among them, in the order they were logged."""
        kept = {i * self.stride: [s, v, t] for i, (s, v, t) in enumerate(self._rows())}
        for index, point in self.extremes.values():
            kept.setdefault(index, point)
        if self.last is not None:
            kept.setdefault(self.count - 1, self.last)
        return [kept[i] for i in sorted(kept)]

    def _rows(self) -> zip[tuple[Any, Any, Any]]:
        return zip(self.steps, self.values, self.times, strict=True)

    def record(self, full: bool) -> dict[str, Any]:
        """The ``metric_series`` record: everything (``full``), or what is new since the last."""
        if full:
            points, reset = self.points(), True
        else:
            start = 0 if self.reset else self.sent
            new = zip(self.steps[start:], self.values[start:], self.times[start:], strict=True)
            points, reset = [[s, v, t] for s, v, t in new], self.reset
            self.sent, self.reset = len(self.steps), False
        return {
            "name": self.name,
            "points": points,
            "count": self.count,
            "stride": self.stride,
            "reset": reset,
            "last": self.last,
        }

    def saved(self) -> dict[str, Any]:
        return {
            "steps": self.steps.tolist(),
            "values": self.values.tolist(),
            "times": self.times.tolist(),
            "stride": self.stride,
            "count": self.count,
            "extremes": {k: [i, p] for k, (i, p) in self.extremes.items()},
            "last": self.last,
        }

    @classmethod
    def load(cls, name: str, saved: dict[str, Any]) -> Series:
        series = cls(name)
        series.steps = array("q", saved["steps"])
        series.values = array("d", saved["values"])
        series.times = array("d", saved["times"])
        series.stride, series.count = int(saved["stride"]), int(saved["count"])
        series.extremes = {k: (int(i), p) for k, (i, p) in saved["extremes"].items()}
        series.last = saved["last"]
        series.sent = len(series.steps)
        return series


def series_name(name: str, rank: int | None) -> str:
    """Rank 0 (or no rank) logs under the plain name; other ranks under ``name@rankN``."""
    return name if not rank else f"{name}@rank{rank}"
