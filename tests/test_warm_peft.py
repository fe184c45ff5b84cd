"""The PEFT sample through the real CLI: fresh adapters trained on a warm base, then saved
adapters swapped in with peft's hotswap_adapter; every run prints what python prints."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import SAMPLES, Workspace, base_env, notices

pytestmark = pytest.mark.slow
pytest.importorskip("peft", reason="pip install -e '.[dev]' installs peft")

SAMPLE = SAMPLES / "peft_lora"


def test_adapters_trained_and_evaluated_on_a_warm_base_match_python(
    workspace: Workspace, tmp_path: Path
) -> None:
    plain_env = base_env(PEFT_SAMPLE_DIR=str(tmp_path / "plain"))
    hot_env = base_env(PEFT_SAMPLE_DIR=str(tmp_path / "hot"))
    train = str(SAMPLE / "train_adapter.py")
    for name, seed in (("first", "0"), ("second", "1"), ("third", "2")):
        plain = workspace.python(train, name, "--seed", seed, env=plain_env)
        assert plain.returncode == 0, plain.stderr
        hot = workspace.run("-v", train, name, "--seed", seed, env=hot_env)
        assert (hot.returncode, hot.stdout) == (0, plain.stdout), hot.stderr
        assert notices(hot.stderr) == [], "the base was put back, not rebuilt"

    evaluate = str(SAMPLE / "eval_adapters.py")
    plain = workspace.python(evaluate, env=plain_env)
    assert plain.returncode == 0, plain.stderr
    assert len(set(plain.stdout.splitlines())) == 3, "three adapters, three losses"
    for _ in range(2):
        hot = workspace.run(evaluate, env=hot_env)
        assert (hot.returncode, hot.stdout) == (0, plain.stdout), hot.stderr
    [entry] = workspace.status()["workers"][0]["warm"]
    assert (entry["key"], entry["hits"]) == ("peft-base", 4), "loaded once for five runs"
