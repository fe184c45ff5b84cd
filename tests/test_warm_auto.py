"""Zero-code warm loading through the real CLI: an unedited script's ``from_pretrained`` calls
are served warm on the next run, pristine, with the output plain python gives."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from conftest import DEFAULT_PYPROJECT, Workspace, notices

pytestmark = pytest.mark.slow

SAVE = """\
import sys
import torch
from tokenizers import Tokenizer, models, pre_tokenizers, trainers, decoders
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

out, seed = sys.argv[1], int(sys.argv[2])
torch.manual_seed(seed)
config = GPT2Config(n_layer=2, n_embd=32, n_head=2, n_positions=32, vocab_size=300,
                    bos_token_id=0, eos_token_id=0)
GPT2LMHeadModel(config).save_pretrained(out)
bpe = Tokenizer(models.BPE())
bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
bpe.decoder = decoders.ByteLevel()
trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>"],
                              initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
bpe.train_from_iterator(["hello warm world, hello again"] * 20, trainer)
PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|endoftext|>").save_pretrained(out)
"""

SCRIPT = """\
import os
import sys

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
from transformers.utils import logging

logging.disable_progress_bar()
MODEL = sys.argv[1]
tokenizer = AutoTokenizer.from_pretrained(MODEL)
model = AutoModelForCausalLM.from_pretrained(MODEL, dtype=torch.float32)
config = AutoConfig.from_pretrained(MODEL)
ids = tokenizer("hello warm world", return_tensors="pt").input_ids
with torch.no_grad():
    print("logits", round(model(ids).logits.sum().item(), 3), "tokens", ids.tolist())
print("layers", config.n_layer, "pad", tokenizer.pad_token, "dtype", model.dtype)
second = AutoModelForCausalLM.from_pretrained(MODEL, dtype=torch.float32)
print("second call, own object:", second is not model)
print("switch seen by the script:", os.environ.get("HOTSWAP_AUTO_WARM"))
tokenizer.pad_token = tokenizer.eos_token
config.n_layer = 99
model.half().train()
print("id", id(model), id(tokenizer))
"""

CALLS = (
    "AutoTokenizer.from_pretrained('{model}')",
    "AutoModelForCausalLM.from_pretrained('{model}', dtype=torch.float32)",
    "AutoConfig.from_pretrained('{model}')",
)


def save_model(ws: Workspace, folder: Path, seed: int) -> None:
    ws.write("save_model.py", SAVE)
    proc = ws.python("save_model.py", str(folder), str(seed))
    assert proc.returncode == 0, proc.stderr


def compared(ws: Workspace, model: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    """A hotswap run whose output, but for ids and hotswap's own lines, is python's."""
    plain, hot = ws.python("load.py", str(model)), ws.run("-v", *flags, "load.py", str(model))
    assert hot.returncode == plain.returncode == 0, hot.stderr
    assert without_ids(hot.stdout) == without_ids(plain.stdout)
    ours = [line for line in hot.stderr.splitlines(True) if not line.startswith("hotswap: ")]
    assert "".join(ours) == plain.stderr
    return hot


def without_ids(stdout: str) -> list[str]:
    return [line for line in stdout.splitlines() if not line.startswith("id ")]


def ids(proc: subprocess.CompletedProcess[str]) -> str:
    return next(line for line in proc.stdout.splitlines() if line.startswith("id "))


def served(proc: subprocess.CompletedProcess[str], model: Path) -> list[str]:
    return [
        line
        for line in proc.stderr.splitlines()
        if line in {f"hotswap: served warm: {c.format(model=model)}" for c in CALLS}
    ]


def test_an_unedited_script_loads_once_and_prints_what_python_prints(
    workspace: Workspace, tmp_path: Path
) -> None:
    model = tmp_path / "model"
    save_model(workspace, model, seed=0)
    workspace.write("load.py", SCRIPT)
    first = compared(workspace, model)
    assert served(first, model) == []
    second = compared(workspace, model)
    assert ids(second) == ids(first), "the model and tokenizer were loaded once"
    assert len(served(second, model)) == 3, second.stderr
    keys = {e["key"] for e in workspace.status()["workers"][0]["warm"]}
    assert keys == {f"from_pretrained: {c.format(model=model)}" for c in CALLS}

    save_model(workspace, model, seed=1)  # the checkpoint on disk changed
    reloaded = compared(workspace, model)
    assert without_ids(reloaded.stdout) != without_ids(second.stdout)
    assert "hotswap: loading again, its files changed: " in reloaded.stderr


@pytest.mark.parametrize("how", ["pyproject", "flag"])
def test_auto_warm_can_be_turned_off(workspace: Workspace, tmp_path: Path, how: str) -> None:
    model = tmp_path / "model"
    save_model(workspace, model, seed=0)
    workspace.write("load.py", SCRIPT)
    if how == "pyproject":
        workspace.write("pyproject.toml", DEFAULT_PYPROJECT + "auto_warm = false\n")
    flags = ("--no-auto-warm",) if how == "flag" else ()
    compared(workspace, model, *flags)
    second = compared(workspace, model, *flags)
    assert notices(second.stderr) == []
    assert workspace.status()["workers"][0]["warm"] == []
