"""Memory of the last run: its peak, and what the worker holds after it beyond warm objects
and their snapshots (RSS; CUDA allocated/reserved when present). ``hotswap status`` shows it."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Any

_PROC = Path("/proc/self")
LEFT_RSS = 16 << 20  # a run that grew what is held beyond warm objects by more left memory
LEFT_CUDA = 1 << 20

_start = {"rss_beyond_warm": 0, "cuda_beyond_warm": 0, "modules": 0}  # as the run began
_held = {"rss": 0, "cuda": 0}  # warm objects and snapshots, as the last run left them


def begin_run() -> None:
    """Start the run's peak counters from now."""
    with contextlib.suppress(OSError):  # Linux: "5" resets VmHWM, the peak resident set
        (_PROC / "clear_refs").write_text("5")
    _start["rss_beyond_warm"] = _proc_status().get("VmRSS", 0) - _held["rss"]
    _start["modules"] = len(sys.modules)
    torch = _cuda()
    if torch is not None:
        torch.cuda.reset_peak_memory_stats()
        _start["cuda_beyond_warm"] = int(torch.cuda.memory_allocated()) - _held["cuda"]


def left_behind(figures: dict[str, int]) -> bool:
    """True if the run grew what the process holds beyond warm objects (then survivors are
    looked for; a clean run pays nothing for that). Libraries imported for the first time
    grow it too: that is not a leftover."""
    if len(sys.modules) > _start["modules"]:
        return False
    grew = figures.get("rss_beyond_warm", 0) - _start["rss_beyond_warm"] > LEFT_RSS
    cuda = figures.get("cuda_beyond_warm", 0) - _start["cuda_beyond_warm"] > LEFT_CUDA
    return grew or cuda


def _cuda() -> Any:
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        return torch
    return None


def after_run(warm: list[dict[str, Any]]) -> dict[str, int]:
    """The last run's figures, for the worker's memory report."""
    status = _proc_status()
    held = sum(e["snapshot_bytes"] + (e["bytes"] if e["device"] == "cpu" else 0) for e in warm)
    _held["rss"] = held
    figures = {}
    if "VmHWM" in status:
        figures["run_peak_rss"] = status["VmHWM"]
    if "VmRSS" in status:
        figures["rss_beyond_warm"] = max(0, status["VmRSS"] - held)
        figures["rss_left"] = figures["rss_beyond_warm"] - _start["rss_beyond_warm"]
    torch = _cuda()
    if torch is not None:
        on_gpu = sum(e["bytes"] for e in warm if str(e["device"]).startswith("cuda"))
        _held["cuda"] = on_gpu
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
