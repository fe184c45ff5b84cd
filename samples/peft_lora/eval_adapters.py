"""Workflow 2: evaluate saved adapters one after another on the warm base, swapping each in
with peft's `hotswap_adapter` (no re-wrapping, no reload of the base)."""

from __future__ import annotations

import sys

import torch
from common import ADAPTERS, base_model, batch
from peft import PeftModel
from peft.utils.hotswap import hotswap_adapter


def main() -> None:
    names = sys.argv[1:] or sorted(p.name for p in ADAPTERS.iterdir())
    model = PeftModel.from_pretrained(base_model(), ADAPTERS / names[0]).eval()
    tokens = batch(seed=12345)
    for i, name in enumerate(names):
        if i:
            hotswap_adapter(model, str(ADAPTERS / name), adapter_name="default")
        with torch.no_grad():
            print(f"{name} eval loss {model(tokens, labels=tokens).loss.item():.4f}")


if __name__ == "__main__":
    main()
