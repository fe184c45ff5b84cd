"""Train tiny_gpt's low-rank adapter with DistributedDataParallel, checkpointing and resuming.

An unchanged torchrun script: ``torchrun --nproc-per-node 2 train_ddp.py`` or, with the model
and the process group kept warm between runs, ``hotswap run --nproc-per-node 2 train_ddp.py``.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
from pathlib import Path

import hotswap
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tiny_gpt"))  # the model and data of samples/tiny_gpt

from train import SIZES, LowRankHead, frozen_features, load_model, read_batch  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--size", choices=sorted(SIZES), default=os.environ.get("TINY_GPT_SIZE", "124m")
    )
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--seq-len", type=int, default=16)
    parser.add_argument("--batch", type=int, default=1, help="per rank")
    parser.add_argument("--rank", type=int, default=8, help="of the adapter")
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--checkpoint-every", type=int, default=3, metavar="K")
    parser.add_argument("--checkpoint", type=Path, default=HERE / ".cache" / "checkpoint.pt")
    parser.add_argument("--resume", action="store_true", help="continue from --checkpoint")
    return parser.parse_args()


def save_checkpoint(
    path: Path, step: int, adapter: nn.Module, optimizer: torch.optim.Optimizer
) -> None:
    """Rank 0 writes it atomically; every rank waits until it is there."""
    if dist.get_rank() == 0:
        path.parent.mkdir(parents=True, exist_ok=True)
        state = {"step": step, "adapter": adapter.state_dict(), "optimizer": optimizer.state_dict()}
        torch.save(state, path.with_suffix(".tmp"))
        os.replace(path.with_suffix(".tmp"), path)
        print(f"checkpoint at step {step}: {path.name}", flush=True)
    dist.barrier()


def load_checkpoint(path: Path, adapter: nn.Module, optimizer: torch.optim.Optimizer) -> int:
    """The step to continue from (0 without a checkpoint); every rank loads the same state."""
    if not path.exists():
        return 0
    state = torch.load(path, map_location=next(adapter.parameters()).device)
    adapter.load_state_dict(state["adapter"])
    optimizer.load_state_dict(state["optimizer"])
    return int(state["step"])


def load_on(size: str, device: torch.device) -> nn.Module:
    return load_model(size).to(device)


def train(args: argparse.Namespace, model: nn.Module, device: torch.device) -> float:
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.manual_seed(0)  # the same fresh adapter on every rank
    adapter = LowRankHead(model.config.n_embd, model.config.vocab_size, args.rank).to(device)
    optimizer = torch.optim.Adam(adapter.parameters(), lr=args.lr)
    start = load_checkpoint(args.checkpoint, adapter, optimizer) if args.resume else 0
    if start and rank == 0:
        print(f"resumed at step {start}", flush=True)
    ddp = DistributedDataParallel(adapter)
    mean = torch.tensor(float("nan"))
    for step in range(start + 1, args.steps + 1):
        torch.manual_seed(1000 * step + rank)  # each rank its own batch; the same on a resume
        tokens = read_batch(args.batch, args.seq_len).to(device)
        hidden, base_logits = frozen_features(model, tokens[:, :-1])
        logits = ddp(hidden, base_logits)
        targets = tokens[:, 1:].reshape(-1)
        loss = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        mean = loss.detach().clone()
        dist.all_reduce(mean)
        mean /= world
        if rank == 0:
            print(f"step {step}/{args.steps} loss {mean.item():.4f}", flush=True)
        if step % args.checkpoint_every == 0:
            save_checkpoint(args.checkpoint, step, adapter, optimizer)
    return float(mean.item())


def main() -> None:
    args = parse_args()
    if torch.cuda.is_available():
        device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    load = functools.partial(load_on, args.size, device)
    if dist.get_rank() == 0:  # rank 0 builds the model's files the first time, alone
        model = hotswap.warm(f"tiny_gpt/{args.size}", load)
    dist.barrier()
    if dist.get_rank() != 0:
        model = hotswap.warm(f"tiny_gpt/{args.size}", load)
    final = train(args, model, device)
    if dist.get_rank() == 0:
        print(f"done: final loss {final:.4f} on {dist.get_world_size()} ranks", flush=True)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
