"""What the ``hotswap`` CLI prints besides a run's own output: messages, sync progress and
skipped files, the status table."""

from __future__ import annotations

import sys
import time
from typing import Any

from .sync import Skipped


def err(message: str) -> None:
    print(f"hotswap: {message}", file=sys.stderr)


def describe_size(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MB"


class SyncReport:
    """Progress and skipped files of a sync, on stderr."""

    def __init__(self) -> None:
        self.shown = False

    def progress(self, done: int, total: int, files_done: int, files_total: int) -> None:
        if total < 2 * 1024 * 1024 and files_total < 200 and not self.shown:
            return
        self.shown = True
        end = "\n" if done >= total else ("\r" if sys.stderr.isatty() else "\n")
        percent = 100 * done // total if total else 100
        print(
            f"hotswap: synced {files_done}/{files_total} files, {describe_size(done)} of "
            f"{describe_size(total)} ({percent}%)",
            end=end,
            file=sys.stderr,
            flush=True,
        )

    @staticmethod
    def skipped(item: Skipped) -> None:
        err(
            f"not synced: {item.path} ({item.reason}); raise [tool.hotswap] max_file_mb "
            "in the daemon's workspace or list it in .hotswapignore"
        )


def left_by_run(grew: int | None) -> str:
    """What the held figure gained over the run, which the
    interpreter and its libraries (most of what is held) do not."""
    if grew is None:
        return ""
    return f" ({'+' if grew >= 0 else '-'}{_size(abs(grew))} by this run)"


def memory_line(memory: dict[str, Any]) -> str | None:
    """The footer's memory line: the run's peak, and what the worker holds after it beyond
    warm objects and their snapshots."""
    if "run_peak_rss" not in memory or "rss_beyond_warm" not in memory:
        return None
    line = (
        f"memory: peak {_size(memory['run_peak_rss'])} during the run, "
        f"{_size(memory['rss_beyond_warm'])} held after it beyond warm objects"
        f"{left_by_run(memory.get('rss_left'))}"
    )
    if "run_peak_cuda_allocated" in memory:
        line += (
            f"; cuda peak {_size(memory['run_peak_cuda_allocated'])}, "
            f"{_size(memory.get('cuda_beyond_warm'))} allocated beyond warm objects, "
            f"{_size(memory.get('cuda_reserved'))} reserved"
        )
    return line


def survivor_line(survivor: dict[str, Any]) -> str:
    """One object a run left alive: 'left alive: torch.Tensor float32[4096] cpu, 16.0 MiB,
    held by lib.CACHE['x']'."""
    held = f", held by {survivor['held_by']}" if survivor.get("held_by") else ""
    return f"left alive: {survivor['type']} {survivor['detail']}, {_size(survivor['bytes'])}{held}"


def footer_lines(body: dict[str, Any]) -> list[str]:
    """What ``hotswap run --verbose`` adds after a run (a run_finished body)."""
    line = memory_line(body.get("memory") or {})
    return ([line] if line else []) + [survivor_line(s) for s in body.get("survivors") or []]


def _size(n: int | None) -> str:
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return str(n)


def format_status(status: dict[str, Any]) -> str:
    d = status["daemon"]
    lines = [f"daemon  pid {d['pid']}  {d['address']}  workspace {d['workspace']}"]
    for w in status["workers"]:
        mem = w["memory"]
        cuda = (
            f"  cuda {_size(mem['cuda_allocated'])} allocated / {_size(mem['cuda_reserved'])} "
            "reserved"
            if "cuda_allocated" in mem
            else ""
        )
        last = (
            f"  last run: peak {_size(mem['run_peak_rss'])}, "
            f"{_size(mem['rss_beyond_warm'])} held beyond warm objects"
            if "run_peak_rss" in mem and "rss_beyond_warm" in mem
            else ""
        )
        rank = f" (rank {w['index']} of {w['ranks']})" if "ranks" in w else ""
        lines.append(
            f"worker {w['index']}{rank}  pid {w['pid']}  {w['state']}  rss {_size(mem['rss'])}"
            f"{cuda}{last}"
        )
        for e in w["warm"]:
            params = f"{e['parameters']:,} params" if e["parameters"] is not None else "-"
            snapshot = f"  snapshot {_size(e['snapshot_bytes'])}" if e.get("snapshot_bytes") else ""
            lines.append(
                f"  warm {e['key']!r}  {e['type']}  {params}  {_size(e['bytes'])}  "
                f"{e['device'] or '-'}{snapshot}"
            )
        if not w["warm"]:
            lines.append("  no warm objects")
    lines.append("recent runs:" if status["runs"] else "no runs yet")
    for r in status["runs"][-10:]:
        when = time.strftime("%H:%M:%S", time.localtime(r["requested"]))
        result = (
            f"exit {r['exit_code']} ({r['reason']}, {r['duration']:.2f}s)"
            if "exit_code" in r
            else r["state"]
        )
        lines.append(f"  {when}  {r['entry']}  {result}  (hotswap logs {r['run_id']})")
    return "\n".join(lines)


class RankOutput:
    """A run's output as torchrun --tee shows it: rank 0 as it comes, every other rank's lines
    prefixed ``[rankK]: ``, each rank line-buffered so a prefix always starts a line."""

    def __init__(self) -> None:
        self.partial: dict[tuple[int, str], bytes] = {}

    def write(self, stream: str, data: bytes, rank: int | None) -> None:
        out = sys.stdout.buffer if stream == "stdout" else sys.stderr.buffer
        if not rank:
            out.write(data)
        else:
            text = self.partial.pop((rank, stream), b"") + data
            *lines, rest = text.split(b"\n")
            out.write(b"".join(_prefixed(rank, line) for line in lines))
            if rest:
                self.partial[(rank, stream)] = rest
        out.flush()

    def flush(self) -> None:
        """At the run's end: the last lines of ranks that wrote no final newline."""
        for rank, stream in sorted(self.partial):
            self.write(stream, b"\n", rank)


def _prefixed(rank: int, line: bytes) -> bytes:
    """torch's own excepthook already prefixes a rank's traceback lines: not twice."""
    prefix = b"[rank%d]: " % rank
    return (line if line.startswith(prefix) else prefix + line) + b"\n"


RANK_OUTPUT = RankOutput()  # one run per `hotswap run`
