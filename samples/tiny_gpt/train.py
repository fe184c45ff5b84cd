"""Train a small low-rank adapter on top of a frozen GPT-2-shaped model.

The model is loaded through ``hotswap.warm``, so under ``hotswap run`` reruns skip the load.
"""

from __future__ import annotations

import argparse
import functools
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import hotswap
import torch
from torch import nn
from transformers import AutoModelForCausalLM, GPT2Config, GPT2LMHeadModel, PreTrainedModel
from transformers.utils import logging as hf_logging

HERE = Path(__file__).resolve().parent
DATA_FILE = HERE / "data.txt"
CACHE_DIR = HERE / ".cache"

SIZES: dict[str, dict[str, Any]] = {
    "124m": {},  # GPT2Config() defaults
    "tiny": {
        "n_layer": 2,
        "n_embd": 64,
        "n_head": 2,
        "n_positions": 128,
        "vocab_size": 256,  # byte-level ids
        "bos_token_id": 0,  # the defaults (50256) are outside a 256-id vocab
        "eos_token_id": 0,
    },
}


def build_model(size: str, model_dir: Path) -> None:
    """Create a randomly initialised model and save it atomically to ``model_dir``."""
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(**SIZES[size]))
    tmp_dir = tempfile.mkdtemp(prefix=f".model-{size}-", dir=CACHE_DIR)
    os.chmod(tmp_dir, 0o755)
    try:
        model.save_pretrained(tmp_dir)
        os.rename(tmp_dir, model_dir)
    except OSError:
        if not (model_dir / "config.json").exists():
            raise
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)  # no-op once renamed


def load_model(size: str) -> PreTrainedModel:
    """Load the saved model (building it first if needed), frozen and in eval mode."""
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    model_dir = CACHE_DIR / f"model-{size}"
    if not model_dir.exists():
        build_model(size, model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    model.requires_grad_(False)
    return model.eval()


class LowRankHead(nn.Module):
    """A LoRA-style delta on the output head: logits + (h @ A) @ B, with B starting at zero."""

    def __init__(self, hidden: int, vocab: int, rank: int) -> None:
        super().__init__()
        self.down = nn.Parameter(torch.randn(hidden, rank) / hidden**0.5)
        self.up = nn.Parameter(torch.zeros(rank, vocab))

    def forward(self, hidden: torch.Tensor, base_logits: torch.Tensor) -> torch.Tensor:
        return base_logits + hidden @ self.down @ self.up


def read_batch(batch: int, seq_len: int) -> torch.Tensor:
    """Random windows of ``seq_len + 1`` byte ids (0..255) from the text file."""
    ids = torch.tensor(list(DATA_FILE.read_bytes()), dtype=torch.long)
    starts = torch.randint(0, len(ids) - seq_len - 1, (batch,))
    return torch.stack([ids[s : s + seq_len + 1] for s in starts.tolist()])


@torch.no_grad()
def frozen_features(
    model: PreTrainedModel, inputs: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """One forward of the frozen model: final hidden states and the base logits."""
    hidden = model.base_model(inputs).last_hidden_state
    return hidden, model.get_output_embeddings()(hidden)


def train(args: argparse.Namespace, model: PreTrainedModel) -> float:
    """Train a fresh adapter for ``args.steps`` steps on one batch; return the final loss."""
    torch.manual_seed(0)
    tokens = read_batch(args.batch, args.seq_len)
    hidden, base_logits = frozen_features(model, tokens[:, :-1])
    targets = tokens[:, 1:].reshape(-1)
    adapter = LowRankHead(hidden.shape[-1], base_logits.shape[-1], args.rank)
    optimizer = torch.optim.Adam(adapter.parameters(), lr=args.lr)
    loss = torch.tensor(float("nan"))
    for step in range(1, args.steps + 1):
        logits = adapter(hidden, base_logits)
        loss = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        print(f"step {step}/{args.steps} loss {loss.item():.4f}")
    return loss.item()


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--size", choices=sorted(SIZES), default=os.environ.get("TINY_GPT_SIZE", "124m")
    )
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--seq-len", type=int, default=16)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--lr", type=float, default=0.01)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    model = hotswap.warm(f"tiny_gpt/{args.size}", functools.partial(load_model, args.size))
    print(f"model: {sum(p.numel() for p in model.parameters()):,} parameters")
    final = train(args, model)
    print(f"done: {args.steps} steps, final loss {final:.4f}")


if __name__ == "__main__":
    main()
