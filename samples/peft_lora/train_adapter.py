"""Workflow 1: wrap the warm base with a fresh LoRA adapter, train it, save it.

The base is handed out pristine in every run: the LoRA layers `get_peft_model` injects are gone
in the next run, and the base's weights never change.
"""

from __future__ import annotations

import argparse

import torch
from common import ADAPTERS, base_model, batch
from peft import LoraConfig, get_peft_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("name", help="the adapter's folder under the adapters directory")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=4)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["c_attn"], fan_in_fan_out=True)
    model = get_peft_model(base_model(), config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.01)
    model.train()
    for step in range(1, args.steps + 1):
        tokens = batch(seed=args.seed * 100 + step)
        loss = model(tokens, labels=tokens).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        print(f"{args.name} step {step} loss {loss.item():.4f}")
    model.save_pretrained(ADAPTERS / args.name)


if __name__ == "__main__":
    main()
