"""Helpers shared by the benchmarks and the demo: timing real commands, temporary workspaces."""

from __future__ import annotations

import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
HOTSWAP = str(Path(sys.executable).parent / "hotswap")
SAMPLE = REPO / "samples" / "tiny_gpt" / "train.py"


def env() -> dict[str, str]:
    """As a user's shell has it: bytecode caching on (some CI shells turn it off, which makes
    every command recompile its imports and measures that instead)."""
    environ = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    environ.pop("PYTHONDONTWRITEBYTECODE", None)
    return environ


def timed(argv: list[str], cwd: Path, quiet: bool = True) -> float:
    """Wall time of one command; fails loudly if the command fails."""
    started = time.perf_counter()
    out = subprocess.DEVNULL if quiet else None
    proc = subprocess.run(argv, cwd=cwd, env=env(), stdout=out, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({proc.returncode}):\n{proc.stderr.decode()}")
    return elapsed


def median_of(argv: list[str], cwd: Path, times: int) -> float:
    return statistics.median(timed(argv, cwd) for _ in range(times))


@contextlib.contextmanager
def scratch_workspace() -> Iterator[Path]:
    """A temporary workspace whose daemon is stopped at the end, whatever happens."""
    with tempfile.TemporaryDirectory(prefix="hotswap-bench-") as tmp:
        root = Path(tmp)
        (root / "pyproject.toml").write_text('[project]\nname = "bench"\nversion = "0"\n')
        try:
            yield root
        finally:
            subprocess.run([HOTSWAP, "stop", "--workspace", str(root)], capture_output=True)
