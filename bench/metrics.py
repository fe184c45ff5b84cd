"""The cost of ``hotswap.log`` per call, in a run on the real worker (and under plain python,
where it does nothing), and of delivering the points: the run's end waits for the last batch.

``python bench/metrics.py``: prints one JSON object; README quotes it.
"""

from __future__ import annotations

import json
import subprocess
import time

from common import HOTSWAP, PYTHON, env, scratch_workspace

CALLS = 1_000_000
SCRIPT = f"""\
import json, time
import torch
import hotswap

def per_call_us(make, calls):
    log = hotswap.log
    started = time.perf_counter()
    for i in range(calls):
        log(make(i))
    return (time.perf_counter() - started) / calls * 1e6

def baseline_us(make, calls):  # the loop and the dict alone
    started = time.perf_counter()
    for i in range(calls):
        make(i)
    return (time.perf_counter() - started) / calls * 1e6

loss = torch.tensor(0.5)
cases = {{
    "float": (lambda i: {{"loss": i * 0.5}}, {CALLS}),
    "four_floats": (lambda i: {{"loss": 0.5, "acc": 0.1, "lr": 1e-3, "gn": 2.0}}, {CALLS // 4}),
    "tensor_0d": (lambda i: {{"loss": loss}}, {CALLS // 4}),
}}
out = {{}}
for name, (make, calls) in cases.items():
    out[name + "_us"] = round(per_call_us(make, calls) - baseline_us(make, calls), 3)
print(json.dumps(out))
"""


def measure(argv: list[str], cwd: str) -> tuple[dict[str, float], float]:
    started = time.perf_counter()
    proc = subprocess.run(argv, cwd=cwd, env=env(), capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.splitlines()[-1]), time.perf_counter() - started


def main() -> None:
    with scratch_workspace() as ws:
        (ws / "log_bench.py").write_text(SCRIPT)
        plain, _ = measure([PYTHON, "log_bench.py"], str(ws))
        run = [HOTSWAP, "run", "--workspace", str(ws), "log_bench.py"]
        measure(run, str(ws))  # the first run imports torch in the worker
        hot, wall = measure(run, str(ws))
        shown = subprocess.run(
            [HOTSWAP, "metrics", "--workspace", str(ws), "--json"],
            env=env(),
            capture_output=True,
            text=True,
            check=True,
        )
        series = json.loads(shown.stdout)
        logged = sum(d["logged"] for d in series["downsampled"].values())
    result = {
        "hotswap_us_per_call": hot,
        "python_us_per_call": plain,
        "points_logged_in_run": logged,
        "run_wall_s": round(wall, 2),
        "budget_us": 5.0,
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
