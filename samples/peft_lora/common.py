"""The frozen base both PEFT scripts share: a tiny GPT-2-shaped model, kept warm by hotswap."""

from __future__ import annotations

import os
from pathlib import Path

import hotswap
import torch
from transformers import AutoModelForCausalLM, GPT2Config, GPT2LMHeadModel, PreTrainedModel
from transformers.utils import logging as hf_logging

HERE = Path(__file__).resolve().parent
WORKDIR = Path(os.environ.get("PEFT_SAMPLE_DIR", HERE / ".cache"))
BASE_DIR = WORKDIR / "base"
ADAPTERS = WORKDIR / "adapters"
TEXT = (HERE.parent / "tiny_gpt" / "data.txt").read_bytes()


def base_model() -> PreTrainedModel:
    """The warm base: loaded once per worker, handed out pristine to every run."""
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    if not (BASE_DIR / "config.json").exists():
        torch.manual_seed(0)
        config = GPT2Config(n_layer=2, n_embd=64, n_head=2, n_positions=64, vocab_size=256)
        GPT2LMHeadModel(config).save_pretrained(BASE_DIR)
    return hotswap.warm("peft-base", lambda: AutoModelForCausalLM.from_pretrained(BASE_DIR))


def batch(seed: int, size: int = 4, length: int = 32) -> torch.Tensor:
    """Random windows of byte ids from the tiny_gpt sample's text."""
    ids = torch.tensor(list(TEXT), dtype=torch.long)
    starts = torch.randint(
        0, len(ids) - length, (size,), generator=torch.Generator().manual_seed(seed)
    )
    return torch.stack([ids[s : s + length] for s in starts.tolist()])
