"""`make load`: consecutive runs, concurrent clients and quick saves through the real CLI.

No failure and no lost update are required (exit 1 otherwise); the daemon's and worker's memory
drift from after the tenth run to after the last is reported, in bytes and percent. A second,
shorter series runs a daemon under tracemalloc (HOTSWAP_TRACEMALLOC=1, daemon_trace.py): the
Python memory it holds after the tenth run and after the last, and the sites that grew.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from common import HOTSWAP, REPO, env, scratch_workspace

RESULTS = REPO / "bench" / "results"


def run(ws: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    argv = [HOTSWAP, "run", "--workspace", str(ws), *args]
    environ = {**env(), **extra}
    return subprocess.run(argv, cwd=ws, env=environ, capture_output=True, text=True, timeout=300)


def expect(proc: subprocess.CompletedProcess[str], stdout: str, what: str) -> None:
    if (proc.returncode, proc.stdout) != (0, stdout):
        raise SystemExit(f"{what}: exit {proc.returncode}, {proc.stdout!r}\n{proc.stderr}")


def rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def processes(ws: Path) -> tuple[int, int]:
    status = subprocess.run(
        [HOTSWAP, "status", "--workspace", str(ws), "--json"], capture_output=True, text=True
    )
    body = json.loads(status.stdout)
    return int(body["daemon"]["pid"]), int(body["workers"][0]["pid"])


def memory(ws: Path) -> tuple[int, int]:
    daemon, worker = processes(ws)
    return rss(daemon), rss(worker)


def consecutive(ws: Path, count: int) -> dict[str, float]:
    """Memory after the tenth run (warm) against after the last one."""
    (ws / "hello.py").write_text("print('hello')\n")
    early = (0, 0)
    started = time.perf_counter()
    for i in range(count):
        expect(run(ws, "hello.py"), "hello\n", f"run {i}")
        if i == 9:
            early = memory(ws)
    seconds = time.perf_counter() - started
    late = memory(ws)
    result: dict[str, float] = {"runs": count, "ms_per_run": 1000 * seconds / count}
    for name, before, after in zip(("daemon", "worker"), early, late, strict=True):
        result[f"{name}_drift_bytes"] = after - before
        result[f"{name}_drift_pct"] = round(100 * (after - before) / before, 2)
    return result


def traced(ws: Path, count: int) -> dict[str, object]:
    """The daemon's Python memory (tracemalloc) after the tenth run and after the last."""
    (ws / "hello.py").write_text("print('hello')\n")
    log = ws / ".hotswap" / "daemon.log"
    for i in range(count):
        expect(run(ws, "hello.py", HOTSWAP_TRACEMALLOC="1"), "hello\n", f"traced run {i}")
        if i in (9, count - 1):
            os.kill(processes(ws)[0], signal.SIGUSR1)
            time.sleep(1.0)  # the daemon's loop runs the handler within its 0.2 s poll
    lines = [
        line.split("tracemalloc: ", 1)[1]
        for line in log.read_text().splitlines()
        if "tracemalloc: " in line
    ]
    held = [int(m.group(1)) for m in map(re.compile(r"^(\d+) bytes held").match, lines) if m]
    return {
        "runs": count,
        "held_after_10": held[0],
        "held_after_last": held[-1],
        "growth_bytes": held[-1] - held[0],
        "top_sites": lines[2:],
    }


def concurrent(ws: Path, clients: int) -> dict[str, float]:
    (ws / "who.py").write_text("import sys\nprint(sys.argv[1])\n")
    with ThreadPoolExecutor(clients) as pool:
        procs = list(pool.map(lambda i: run(ws, "--queue", "who.py", str(i)), range(clients)))
    for i, proc in enumerate(procs):
        expect(proc, f"{i}\n", f"client {i}")
    return {"clients": clients}


def quick_saves(ws: Path, saves: int) -> dict[str, float]:
    """Each save changes the script; the run right after it must see that save."""
    for i in range(saves):
        (ws / "saved.py").write_text(f"print({i})\n")
        expect(run(ws, "saved.py"), f"{i}\n", f"save {i}")
    return {"saves": saves}


def main() -> None:
    scale = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0  # `make load` runs it at 1
    results = {}
    with scratch_workspace() as ws:
        results["consecutive"] = consecutive(ws, int(1000 * scale))
        results["concurrent"] = concurrent(ws, 20)
        results["quick_saves"] = quick_saves(ws, int(100 * scale))
    with scratch_workspace() as ws:
        results["traced"] = traced(ws, int(300 * scale))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "load.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
