"""`make bench`: every speed figure README quotes, measured in one run on this machine."""

from __future__ import annotations

import json
import platform
import subprocess
from pathlib import Path

from common import HOTSWAP, PYTHON, REPO, SAMPLE, env, median_of, scratch_workspace, timed

RESULTS = REPO / "bench" / "results"


def bench_sample(ws: Path) -> dict[str, float]:
    """Cold `python train.py` (124M model) against a warm `hotswap run` of the same script."""
    subprocess.run([PYTHON, str(SAMPLE), "--steps", "1"], env=env(), capture_output=True)
    cold = median_of([PYTHON, str(SAMPLE)], ws, times=3)
    run = [HOTSWAP, "run", "--workspace", str(ws), str(SAMPLE)]
    first = timed(run, ws)
    warm = median_of(run, ws, times=7)
    return {
        "cold_python_s": cold,
        "first_hotswap_s": first,
        "warm_hotswap_s": warm,
        "speedup": cold / warm,
    }


def bench_hello(ws: Path) -> dict[str, float]:
    """The fixed cost of going through hotswap: `hotswap run hello.py` minus `python hello.py`."""
    (ws / "hello.py").write_text("print('hello')\n")
    timed([HOTSWAP, "run", "--workspace", str(ws), "hello.py"], ws)  # daemon up
    python = median_of([PYTHON, "hello.py"], ws, times=21)
    hot = median_of([HOTSWAP, "run", "--workspace", str(ws), "hello.py"], ws, times=21)
    return {"python_hello_s": python, "hotswap_hello_s": hot, "overhead_ms": (hot - python) * 1e3}


def main() -> None:
    results: dict[str, object] = {"machine": f"{platform.machine()}, {platform.processor() or '-'}"}
    with scratch_workspace() as ws:
        results["hello"] = bench_hello(ws)
    with scratch_workspace() as ws:
        results["sample"] = bench_sample(ws)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "latest.json").write_text(json.dumps(results, indent=2) + "\n")
    s, h = results["sample"], results["hello"]
    assert isinstance(s, dict) and isinstance(h, dict)
    print("| benchmark | result | target |")
    print("|---|---|---|")
    print(f"| tiny_gpt 124M: cold `python train.py` | {s['cold_python_s']:.2f} s | |")
    print(f"| tiny_gpt 124M: warm `hotswap run train.py` | {s['warm_hotswap_s']:.3f} s | |")
    print(f"| speedup warm vs cold | {s['speedup']:.0f}x | >= 20x |")
    print(f"| `python hello.py` | {h['python_hello_s'] * 1e3:.0f} ms | |")
    print(f"| `hotswap run hello.py` | {h['hotswap_hello_s'] * 1e3:.0f} ms | |")
    print(f"| fixed overhead | {h['overhead_ms']:.0f} ms | <= 50 ms |")


if __name__ == "__main__":
    main()
