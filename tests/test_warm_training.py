"""Training on warm models through the real CLI: a Hugging Face Trainer script gives python's
losses run after run, and a hundred warm training runs leave no memory behind."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import Workspace
from test_warm_pristine import SAVE_TINY_GPT

pytestmark = pytest.mark.slow

TRAINER = """\
import sys

import torch
from transformers import (AutoModelForCausalLM, Trainer, TrainerCallback, TrainingArguments)
from transformers.utils import logging

logging.set_verbosity_error()
logging.disable_progress_bar()


class Windows(torch.utils.data.Dataset):
    def __len__(self):
        return 8

    def __getitem__(self, i):
        ids = torch.randint(0, 64, (8,), generator=torch.Generator().manual_seed(i))
        return {"input_ids": ids, "labels": ids}


class PrintLoss(TrainerCallback):
    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs:
            print(f"step {state.global_step} loss {logs['loss']:.4f}")


model = AutoModelForCausalLM.from_pretrained(sys.argv[1])
args = TrainingArguments(
    output_dir=sys.argv[2], per_device_train_batch_size=2, max_steps=3, logging_steps=1,
    report_to=[], disable_tqdm=True, save_strategy="no", seed=0, use_cpu=True,
    learning_rate=0.05,
)
Trainer(model=model, args=args, train_dataset=Windows(), callbacks=[PrintLoss()]).train()
"""


@pytest.fixture
def model_dir(tmp_path: Path, workspace: Workspace) -> Path:
    workspace.write("save.py", SAVE_TINY_GPT)
    proc = workspace.python("save.py", str(tmp_path / "model"))
    assert proc.returncode == 0, proc.stderr
    return tmp_path / "model"


def losses(stdout: str) -> list[str]:
    return re.findall(r"^step \d+ loss \d+\.\d+$", stdout, re.MULTILINE)


def test_a_trainer_script_gets_pythons_losses_run_after_run(
    workspace: Workspace, model_dir: Path, tmp_path: Path
) -> None:
    workspace.write("finetune.py", TRAINER)
    out = str(tmp_path / "out")
    plain = workspace.python("finetune.py", str(model_dir), out)
    assert plain.returncode == 0, plain.stderr
    assert len(losses(plain.stdout)) == 3
    for run in range(3):
        hot = workspace.run("-v", "finetune.py", str(model_dir), out)
        assert hot.returncode == 0, hot.stderr
        assert losses(hot.stdout) == losses(plain.stdout), f"run {run + 1}"
        assert ("hotswap: served warm: " in hot.stderr) == (run > 0)


STEP = """\
import hotswap
import torch
from transformers import AutoModelForCausalLM
from transformers.utils import logging

logging.disable_progress_bar()
model = hotswap.warm("gpt", lambda: AutoModelForCausalLM.from_pretrained({model!r}))
model.train()
tokens = torch.randint(0, 64, (4, 16))
optimizer = torch.optim.AdamW(model.parameters(), lr=0.01)
model(tokens, labels=tokens).loss.backward()
optimizer.step()
print("ok")
"""


def test_a_hundred_warm_training_runs_leave_no_memory_behind(
    workspace: Workspace, model_dir: Path
) -> None:
    workspace.write("step.py", STEP.format(model=str(model_dir)))
    rss = []
    for _ in range(100):
        proc = workspace.run("step.py")
        assert (proc.returncode, proc.stdout) == (0, "ok\n"), proc.stderr
        rss.append(workspace.status()["workers"][0]["memory"]["rss"])
    assert rss[-1] <= rss[9] * 1.01, f"after run 10: {rss[9]:,} bytes, after 100: {rss[-1]:,}"
