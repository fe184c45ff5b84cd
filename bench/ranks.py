"""`make bench`, rank workers: the DDP sample on 2 ranks, cold under torchrun against warm under
`hotswap run --nproc-per-node 2` (the model and the process group kept between runs)."""

from __future__ import annotations

import json
import socket
import statistics
import sys

from common import HOTSWAP, PYTHON, REPO, scratch_workspace, timed

SAMPLE = REPO / "samples" / "ddp" / "train_ddp.py"
RESULTS = REPO / "bench" / "results"
RANKS = 2


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def bench_ranks(size: str, times: int) -> dict[str, float]:
    with scratch_workspace() as ws:
        script = [str(SAMPLE), "--size", size, "--checkpoint", str(ws / "ckpt.pt")]

        def torchrun() -> float:
            argv = [PYTHON, "-m", "torch.distributed.run", f"--nproc-per-node={RANKS}"]
            return timed([*argv, f"--master-port={free_port()}", *script], ws)

        torchrun()  # the model's files are built once, outside the figures
        cold = statistics.median(torchrun() for _ in range(times))
        run = [HOTSWAP, "run", "--workspace", str(ws), f"--nproc-per-node={RANKS}", *script]
        first = timed(run, ws)
        warm = statistics.median(timed(run, ws) for _ in range(2 * times + 1))
    return {
        "cold_torchrun_s": cold,
        "first_hotswap_s": first,
        "warm_hotswap_s": warm,
        "speedup": cold / warm,
    }


def main() -> None:
    size = sys.argv[1] if len(sys.argv) > 1 else "124m"
    result = bench_ranks(size, times=3)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "ranks.json").write_text(json.dumps({size: result}, indent=2) + "\n")
    rows = [
        (f"DDP sample ({size}, {RANKS} ranks): cold `torchrun`", result["cold_torchrun_s"]),
        (f"first `hotswap run --nproc-per-node {RANKS}` (ranks start)", result["first_hotswap_s"]),
        (f"warm `hotswap run --nproc-per-node {RANKS}`", result["warm_hotswap_s"]),
    ]
    for name, seconds in rows:
        print(f"| {name} | {seconds:.3f} s | |")
    print(f"| speedup warm vs cold | {result['speedup']:.0f}x | |")


if __name__ == "__main__":
    main()
