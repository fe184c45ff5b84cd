"""Memory of the last run: its peak, and what the worker holds after it beyond warm objects
and their snapshots (RSS; CUDA allocated/reserved when present). ``hotswap status`` shows it."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Any

_PROC = Path("/proc/self")


def begin_run() -> None:
    """Start the run's peak counters from now."""
    with contextlib.suppress(OSError):  # Linux: "5" resets VmHWM, the peak resident set
        (_PROC / "clear_refs").write_text("5")
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.reset_peak_memory_stats()


def after_run(warm: list[dict[str, Any]]) -> dict[str, int]:
    """The last run's figures, for the worker's memory report."""
    status = _proc_status()
    held = sum(e["snapshot_bytes"] + (e["bytes"] if e["device"] == "cpu" else 0) for e in warm)
    figures = {}
    if "VmHWM" in status:
        figures["run_peak_rss"] = status["VmHWM"]
    if "VmRSS" in status:
        figures["rss_beyond_warm"] = max(0, status["VmRSS"] - held)
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        on_gpu = sum(e["bytes"] for e in warm if str(e["device"]).startswith("cuda"))
        figures["run_peak_cuda_allocated"] = int(torch.cuda.max_memory_allocated())
        figures["cuda_beyond_warm"] = max(0, int(torch.cuda.memory_allocated()) - on_gpu)
    return figures


def _proc_status() -> dict[str, int]:
    try:
        lines = (_PROC / "status").read_text().splitlines()
    except OSError:
        return {}
    sizes = {}
    for line in lines:
        name, _, value = line.partition(":")
        if value.strip().endswith("kB"):
            sizes[name] = int(value.split()[0]) * 1024
    return sizes
