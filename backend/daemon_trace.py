"""`make load`'s look inside the daemon: with HOTSWAP_TRACEMALLOC=1 in its environment, each
SIGUSR1 logs the Python memory it holds and, against the first, the sites that grew
(tracemalloc), so a leak is told from the allocator's noise in RSS."""

from __future__ import annotations

import logging
import os
import signal
from typing import Any

TOP_SITES = 8


def install_trace(log: logging.Logger) -> None:
    if os.environ.get("HOTSWAP_TRACEMALLOC") != "1":
        return
    import tracemalloc

    tracemalloc.start()
    baseline: list[Any] = []

    def report(signum: int, frame: object) -> None:
        ignore = tracemalloc.Filter(False, tracemalloc.__file__)
        snapshot = tracemalloc.take_snapshot().filter_traces([ignore])
        held = sum(stat.size for stat in snapshot.statistics("filename"))
        if not baseline:
            baseline.append((snapshot, held))
            log.info("tracemalloc: %d bytes held (baseline)", held)
            return
        log.info("tracemalloc: %d bytes held, %+d since the baseline", held, held - baseline[0][1])
        for stat in snapshot.compare_to(baseline[0][0], "lineno")[:TOP_SITES]:
            log.info("tracemalloc: %s", stat)

    signal.signal(signal.SIGUSR1, report)
