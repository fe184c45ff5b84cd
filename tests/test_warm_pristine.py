"""Pristine warm objects through the real CLI: whatever a run does to a warm model, the next
run gets what a fresh ``from_pretrained`` of the same directory gives plain python."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from conftest import Workspace, notices, wait_until, without_footer

pytestmark = pytest.mark.slow
pytest.importorskip("peft", reason="pip install -e '.[dev]' installs peft")

SAVE_TINY_GPT = """\
import sys
import torch
from transformers import GPT2Config, GPT2LMHeadModel

torch.manual_seed(0)
config = GPT2Config(n_layer=2, n_embd=32, n_head=2, n_positions=32, vocab_size=64,
                    bos_token_id=0, eos_token_id=0)
GPT2LMHeadModel(config).save_pretrained(sys.argv[1])
"""

# Prints a fingerprint of the model as handed out, then (with --mutate) does all the things
# a run may do to a model.
MUTATE = """\
import hashlib
import json
import sys

import hotswap
import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM
from transformers.utils import logging

MODEL = sys.argv[1]
logging.disable_progress_bar()


def load():
    return AutoModelForCausalLM.from_pretrained(MODEL)


def describe(m):
    sd = m.state_dict()
    h = hashlib.sha256()
    for name in sorted(sd):
        t = sd[name].detach().contiguous()
        h.update(f"{name} {t.dtype} {t.device} {tuple(t.shape)}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes())
    return {
        "state": h.hexdigest(),
        "modules": [
            [n, type(x).__name__, x.training, len(x._forward_hooks), len(x._forward_pre_hooks)]
            for n, x in m.named_modules()
        ],
        "requires_grad": [p.requires_grad for p in m.parameters()],
        "grads": sum(p.grad is not None for p in m.parameters()),
        "attrs": sorted(vars(m)),
        "config": m.config.to_json_string(),
        "generation": m.generation_config.to_json_string(),
    }


model = hotswap.warm("gpt", load)
print(json.dumps(describe(model), sort_keys=True))
if "--mutate" in sys.argv:
    model.train()
    tokens = torch.randint(0, 64, (2, 8))
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    model(tokens, labels=tokens).loss.backward()
    optimizer.step()
    lora = get_peft_model(model, LoraConfig(r=4, target_modules=["c_attn"], fan_in_fan_out=True))
    lora(tokens, labels=tokens).loss.backward()
    torch.optim.AdamW(lora.parameters(), lr=0.1).step()
    model.transformer.h[0].register_forward_hook(lambda *args: None)
    model.transformer.h[1].attn.register_forward_pre_hook(lambda *args: None)
    model.transformer.h[1].mlp = torch.nn.Identity()
    model.lm_head.weight.requires_grad_(False)
    model.config.use_cache = False
    model.generation_config.max_length = 3
    model.scratch = "left by a run"
    model.half()
    model.eval()
    with torch.no_grad():
        model.transformer.wte.weight.zero_()
print("id", id(model) if "--id" in sys.argv else 0)
"""


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("tiny-gpt")
    ws = Workspace(folder / "builder")
    ws.write("save.py", SAVE_TINY_GPT)
    proc = ws.python("save.py", str(folder / "model"))
    assert proc.returncode == 0, proc.stderr
    return folder / "model"


def test_the_run_after_a_mutating_run_gets_the_model_python_loads(
    workspace: Workspace, model_dir: Path
) -> None:
    workspace.write("mutate.py", MUTATE)
    plain = workspace.python("mutate.py", str(model_dir))
    assert plain.returncode == 0, plain.stderr
    fresh = json.loads(plain.stdout.splitlines()[0])
    assert fresh["grads"] == 0 and not any(m[2] for m in fresh["modules"]), "eval mode"

    first = workspace.run("mutate.py", str(model_dir), "--mutate", "--id")
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout.splitlines()[0]) == fresh
    for _ in range(2):
        again = workspace.run("-v", "mutate.py", str(model_dir), "--mutate", "--id")
        assert again.returncode == 0, again.stderr
        assert notices(again.stderr) == [], "nothing was rebuilt"
        assert json.loads(again.stdout.splitlines()[0]) == fresh, "the mutations did not stay"
        assert again.stdout.splitlines()[1] == first.stdout.splitlines()[1], "the same object"
    hot = workspace.run("mutate.py", str(model_dir))
    assert (hot.returncode, hot.stdout, hot.stderr) == (0, plain.stdout, plain.stderr)

    [worker] = workspace.status()["workers"]
    [entry] = worker["warm"]
    assert entry["reset"] == "pristine"
    assert entry["snapshot_bytes"] == 0, "weights are read back from model.safetensors"


KEEP = """\
import hotswap
import torch

counter = hotswap.warm("counter", lambda: torch.zeros(1), reset="{reset}")
counter += 1
print(int(counter.item()))
"""


@pytest.mark.parametrize(("reset", "second"), [("keep", "2"), ("pristine", "1")])
def test_reset_keep_hands_out_the_object_as_the_last_run_left_it(
    workspace: Workspace, reset: str, second: str
) -> None:
    workspace.write("keep.py", KEEP.format(reset=reset))
    assert workspace.run("keep.py").stdout == "1\n"
    assert workspace.run("keep.py").stdout == f"{second}\n"
    [worker] = workspace.status()["workers"]
    assert worker["warm"][0]["snapshot_bytes"] == (0 if reset == "keep" else 4)
    status = workspace.hotswap("status").stdout
    assert (re.search(r"warm 'counter' .* snapshot 4 B$", status, re.M) is None) == (
        reset == "keep"
    ), status


def test_a_bad_reset_mode_is_a_clear_error(workspace: Workspace) -> None:
    workspace.write("keep.py", KEEP.format(reset="always"))
    proc = workspace.run("keep.py")
    assert proc.returncode == 1
    assert "hotswap.warm: reset must be 'pristine' or 'keep', got 'always'" in proc.stderr


SHARED = """\
import hotswap
import torch


def build():
    print("building")
    module = torch.nn.Module()
    base = torch.zeros(4)
    module.low, module.high = torch.nn.Parameter(base[:2]), torch.nn.Parameter(base[2:])
    return module


module = hotswap.warm("shared", build)
print(module.low.tolist(), module.high.tolist())
module.low.data = torch.ones(2)  # cannot be undone without breaking the shared memory
"""


def test_what_cannot_be_put_back_is_dropped_after_the_run_and_rebuilt_with_a_message(
    workspace: Workspace,
) -> None:
    workspace.write("shared.py", SHARED)
    plain = workspace.python("shared.py")
    why = "it could not be put back as its factory built it: a tensor sharing its memory with "
    why += "another was replaced"
    first = workspace.run("-v", "shared.py")
    assert (first.returncode, first.stdout) == (0, plain.stdout)
    assert without_footer(first.stderr) == [f"hotswap: warm 'shared' dropped after the run: {why}"]
    wait_until(
        lambda: workspace.status()["workers"][0]["warm"] == [],
        "not evicted when the run ended (its memory would stay held until the next run)",
    )
    second = workspace.run("-v", "shared.py")
    assert (second.returncode, second.stdout) == (0, plain.stdout)
    assert without_footer(second.stderr) == [
        f"hotswap: warm 'shared' rebuilt: {why}",
        f"hotswap: warm 'shared' dropped after the run: {why}",  # the script changed it again
    ]


BIG = """\
import torch

big = torch.ones(50_000_000)  # 200 MB, gone when the run ends
print(big.sum().item())
"""
MB = 1 << 20


def last_run(ws: Workspace) -> dict[str, int] | None:
    memory = dict(ws.status()["workers"][0]["memory"])
    return memory if "run_peak_rss" in memory else None


def test_status_shows_the_last_runs_peak_and_what_it_left_behind(workspace: Workspace) -> None:
    workspace.write("small.py", "import torch\nprint(torch.zeros(1).sum().item())\n")
    workspace.write("big.py", BIG)
    assert workspace.run("small.py").returncode == 0
    small = wait_until(lambda: last_run(workspace), "the run's memory was never reported")
    assert workspace.run("big.py").stdout == "50000000.0\n"

    def after_big() -> dict[str, int] | None:
        memory = dict(workspace.status()["workers"][0]["memory"])
        return memory if memory["run_peak_rss"] > small["run_peak_rss"] + 150 * MB else None

    memory = wait_until(after_big, "the 200 MB peak of the run was not reported")
    assert memory["rss_beyond_warm"] < memory["run_peak_rss"] - 150 * MB, "the tensor was freed"
    assert "last run: peak" in workspace.hotswap("status").stdout
