"""``hotswap.log``: a script's metrics (loss, accuracy, ...), sent to the daemon from a run.

Light on purpose: under plain ``python`` no sink is installed and ``log`` returns at once,
printing nothing. Inside a run the worker installs its buffer (runner/metrics_buffer.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

Sink = Callable[[Mapping[str, Any], "int | None"], None]
_sink: Sink | None = None


def install(sink: Sink | None) -> None:
    """Called by the runner worker: where ``log`` sends its points (None: nowhere)."""
    global _sink
    _sink = sink


def log(metrics: Mapping[str, Any], step: int | None = None) -> None:
    """Record ``metrics`` (name → number or 0-d tensor) at ``step`` for the current run.

    Without ``step``, each series counts its own points: 0, 1, 2, ... (a step given once
    continues from there). Safe from any thread; tensors are converted in batches, so a call
    never waits for the GPU. Under plain ``python`` it does nothing."""
    sink = _sink
    if sink is not None:
        sink(metrics, step)
