"""Warm objects without drift: restore cost and snapshot memory, and a forward edit vs a rebuild.

``python bench/warm.py [--large]``: GPT-2 124M (and ~500M with --large), random weights saved
to a temporary folder and loaded as a user would.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from common import HOTSWAP, REPO, scratch_workspace, timed

SIZES = {"124m": {}, "500m": {"n_layer": 24, "n_embd": 1280, "n_head": 20}}


def best_ms(action: Any, times: int = 15) -> float:
    samples = []
    for _ in range(times):
        started = time.perf_counter()
        action()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1e3


def bench_restore(size: str, folder: Path) -> dict[str, float]:
    import torch
    from hotswap.warm_restore import Snapshot
    from transformers import AutoModelForCausalLM, GPT2Config, GPT2LMHeadModel

    GPT2LMHeadModel(GPT2Config(**SIZES[size])).save_pretrained(folder)
    started = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(folder)
    load_s = time.perf_counter() - started
    snap = Snapshot(model)
    weights = list(model.parameters())

    def one_layer() -> None:
        with torch.no_grad():
            model.transformer.h[0].mlp.c_fc.weight.add_(1)
        snap.restore()

    def all_weights() -> None:
        with torch.no_grad():
            torch._foreach_add_(weights, 1.0)
        snap.restore()

    return {
        f"{size}_fresh_load_s": load_s,
        f"{size}_restore_untouched_ms": best_ms(snap.restore, times=101),
        f"{size}_restore_one_layer_ms": best_ms(one_layer),
        f"{size}_restore_all_weights_ms": best_ms(all_weights, times=5),
        f"{size}_snapshot_mb": snap.nbytes / 2**20,
    }


MODEL = """\
import torch
from transformers import GPT2Config, GPT2Model


class Tagger(torch.nn.Module):
    def __init__(self):
        super().__init__(){extra}
        self.body = GPT2Model(GPT2Config())

    def forward(self, ids):
        return self.body(ids).last_hidden_state.mean() * {scale}
"""

RUN = """\
import hotswap
import torch
import model

tagger = hotswap.warm("tagger", model.Tagger)
with torch.no_grad():
    print(tagger(torch.zeros(1, 4, dtype=torch.long)).item())
"""


def bench_edit(ws: Path) -> dict[str, float]:
    """A warm run after editing forward (swapped in place) vs after editing __init__ (rebuilt)."""
    (ws / "run.py").write_text(RUN)
    run = [HOTSWAP, "run", "--workspace", str(ws), "run.py"]
    figures: dict[str, list[float]] = {"forward_edit_run_s": [], "init_edit_run_s": []}
    for i in range(3):
        (ws / "model.py").write_text(MODEL.format(extra="", scale=i + 1))
        timed(run, ws)  # the object as this loop starts
        (ws / "model.py").write_text(MODEL.format(extra="", scale=i + 10))
        figures["forward_edit_run_s"].append(timed(run, ws))
        (ws / "model.py").write_text(MODEL.format(extra=f"\n        self.n = {i}", scale=i + 10))
        figures["init_edit_run_s"].append(timed(run, ws))
    return {name: statistics.median(values) for name, values in figures.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--large", action="store_true", help="also the ~500M model")
    args = parser.parse_args()
    results: dict[str, float] = {}
    for size in ["124m", "500m"] if args.large else ["124m"]:
        with tempfile.TemporaryDirectory() as folder:
            results |= bench_restore(size, Path(folder))
    with scratch_workspace() as ws:
        results |= bench_edit(ws)
    out = REPO / "bench" / "results" / "warm.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    for name, value in results.items():
        print(f"{name:34} {value:10.3f}")


if __name__ == "__main__":
    main()
