"""Level 3: rank workers (``hotswap run --nproc-per-node N``) against real torchrun, on CPU with
gloo: the same losses, a warm model and process group on the second run, cancels and crashes
that stop every rank, another world size.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import socket
import subprocess

import pytest
from conftest import DEFAULT_PYPROJECT, PYTHON, SAMPLES, Workspace, base_env, following, wait_until
from test_debug import attached, debug_run, line_of, stopped, where
from test_faults import workspace_pids

DDP = """\
import argparse, os
import hotswap
import torch
import torch.distributed as dist
from torch import nn

LR = 0.1

def build():
    print(f"building the model on rank {os.environ['RANK']}", flush=True)
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 1))

parser = argparse.ArgumentParser()
parser.add_argument("--steps", type=int, default=3)
parser.add_argument("--crash-at", type=int, default=-1)
parser.add_argument("--raise-at", type=int, default=-1)
parser.add_argument("--sleep", type=float, default=0.0)
args = parser.parse_args()
dist.init_process_group("gloo")
rank, world = dist.get_rank(), dist.get_world_size()
model = hotswap.warm("mlp", build)
ddp = nn.parallel.DistributedDataParallel(model)
opt = torch.optim.SGD(ddp.parameters(), lr=LR)
data = torch.Generator().manual_seed(100 + rank)
for step in range(args.steps):
    if rank == world - 1 and step == args.crash_at:
        os._exit(3)
    if rank == 0 and step == args.raise_at:
        raise ValueError(f"bad batch at step {step}")
    loss = ddp(torch.randn(4, 8, generator=data)).pow(2).mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
    mean = loss.detach().clone()
    dist.all_reduce(mean)
    print(f"rank {rank} step {step} loss {mean.item() / world:.6f}", flush=True)
    if args.sleep:
        import time
        time.sleep(args.sleep)
done = True  # all steps done
dist.destroy_process_group()
"""

_CACHE = shutil.ignore_patterns(".cache", "__pycache__")
LOSS = re.compile(r"rank (\d+) step (\d+) loss ([\d.]+)")
PREFIX = re.compile(r"^\[rank(\d+)\]: ", re.M)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


_TORCHRUN: dict[tuple[str, int, tuple[str, ...]], set[tuple[str, ...]]] = {}


def torchrun(ws: Workspace, nproc: int, *args: str) -> set[tuple[str, ...]]:
    """The losses of ``ddp.py`` under real torchrun (its exit code is not compared: torch
    2.13's gloo sometimes aborts in destroy_process_group at exit). Deterministic, so each
    script, world size and arguments is run once per session."""
    key = ((ws.root / "ddp.py").read_text(), nproc, args)
    if key not in _TORCHRUN:
        _TORCHRUN[key] = _torchrun(ws, nproc, *args)
    return _TORCHRUN[key]


def _torchrun(ws: Workspace, nproc: int, *args: str) -> set[tuple[str, ...]]:
    argv = [PYTHON, "-m", "torch.distributed.run", f"--nproc-per-node={nproc}"]
    argv += [f"--master-port={free_port()}", "ddp.py", *args]
    proc = subprocess.run(
        argv, capture_output=True, text=True, cwd=ws.root, env=base_env(), timeout=180
    )
    losses = set(LOSS.findall(proc.stdout))
    assert len(losses) == nproc * 3, proc.stdout + proc.stderr
    return losses


def hotswap_run(ws: Workspace, nproc: int, *args: str) -> subprocess.CompletedProcess[str]:
    return ws.run("--nproc-per-node", str(nproc), "ddp.py", *args)


def losses(proc: subprocess.CompletedProcess[str]) -> set[tuple[str, ...]]:
    """Each rank's loss lines, checked to carry their rank's prefix (rank 0: none)."""
    for line in proc.stdout.splitlines():
        if found := LOSS.search(line):
            prefix = PREFIX.match(line)
            assert (prefix[1] if prefix else "0") == found[1], line
    return set(LOSS.findall(proc.stdout))


def builds(proc: subprocess.CompletedProcess[str]) -> list[str]:
    return sorted(re.findall(r"building the model on rank (\d)", proc.stdout))


def rank_workers(ws: Workspace) -> dict[int, int]:
    return {w["index"]: w["pid"] for w in ws.status()["workers"]}


@pytest.fixture
def ddp(workspace: Workspace) -> Workspace:
    workspace.write("ddp.py", DDP)
    return workspace


ENV = """\
import json, os
names = ("RANK", "LOCAL", "WORLD", "GROUP", "ROLE", "MASTER", "TORCH", "OMP")
print(json.dumps({k: v for k, v in os.environ.items() if k.startswith(names)}, sort_keys=True))
"""
ASK = """\
import os
try:
    print("rank", os.environ["RANK"], "read", repr(input()))
except EOFError:
    print("rank", os.environ["RANK"], "EOF")
"""
# Not as torchrun: its port, and what belongs to its elastic agent (there is none here).
AGENT_ONLY = {"MASTER_PORT", "TORCHELASTIC_ERROR_FILE", "TORCHELASTIC_USE_AGENT_STORE"}


def rank_envs(stdout: str) -> list[dict[str, str]]:
    lines = [PREFIX.sub("", line) for line in stdout.splitlines()]
    envs = [json.loads(line) for line in lines if line.startswith("{")]
    return sorted(({k: v for k, v in e.items() if k not in AGENT_ONLY} for e in envs), key=str)


def test_two_ranks_match_torchrun_run_after_run_with_the_model_warm(ddp: Workspace) -> None:
    expected = torchrun(ddp, 2)
    first = hotswap_run(ddp, 2)
    assert first.returncode == 0, first.stderr
    assert losses(first) == expected
    assert builds(first) == ["0", "1"]
    workers = rank_workers(ddp)
    second = hotswap_run(ddp, 2)
    assert (second.returncode, losses(second), builds(second)) == (0, expected, []), second
    assert rank_workers(ddp) == workers  # the same processes, their process group kept
    ddp.write("ddp.py", DDP.replace("LR = 0.1", "LR = 0.3"))
    edited = hotswap_run(ddp, 2)
    assert builds(edited) == [] and edited.returncode == 0, edited.stderr
    assert losses(edited) == torchrun(ddp, 2) != expected
    ddp.write("env.py", ENV)
    argv = [PYTHON, "-m", "torch.distributed.run", "--nproc-per-node=2"]
    argv += [f"--master-port={free_port()}", "env.py"]
    plain = subprocess.run(argv, capture_output=True, text=True, cwd=ddp.root, env=base_env())
    ours = ddp.run("--nproc-per-node", "2", "env.py")
    assert rank_envs(ours.stdout) == rank_envs(plain.stdout), plain.stderr
    assert len(rank_envs(plain.stdout)) == 2 and "RANK" in rank_envs(plain.stdout)[0]
    ddp.write("ask.py", ASK)
    asked = ddp.run("--nproc-per-node", "2", "ask.py", input="hello\n")
    assert sorted(asked.stdout.splitlines()) == ["[rank1]: rank 1 EOF", "rank 0 read 'hello'"]


def test_three_ranks_then_another_world_size(ddp: Workspace) -> None:
    expected = torchrun(ddp, 3)
    for builds_expected in (["0", "1", "2"], []):
        proc = hotswap_run(ddp, 3)
        assert (proc.returncode, losses(proc)) == (0, expected), proc.stderr
        assert builds(proc) == builds_expected
    two = hotswap_run(ddp, 2)
    assert "this run asks for 2 ranks; the workers ran 3 ranks: restarted them" in two.stderr
    assert two.returncode == 0 and builds(two) == ["0", "1"], two.stderr
    assert losses(two) == torchrun(ddp, 2)
    assert sorted(rank_workers(ddp)) == [0, 1]
    assert [w["ranks"] for w in ddp.status()["workers"]] == [2, 2]
    assert "worker 1 (rank 1 of 2)  pid" in ddp.hotswap("status").stdout


def test_cancel_stops_every_rank_and_asking_another_group_restarts_them(ddp: Workspace) -> None:
    ddp.write("pyproject.toml", DEFAULT_PYPROJECT + "nproc_per_node = 2\n")  # no flag needed
    with following(ddp, "ddp.py", "--steps", "500", "--sleep", "0.05") as run:
        wait_until(lambda: "[rank1]: rank 1 step 2 " in run.stdout, run.stderr, timeout=120)
        run.proc.send_signal(signal.SIGINT)
        assert run.finish() == 130, run.stderr
    status = ddp.status()
    assert [w["state"] for w in status["workers"]] == ["idle", "idle"]
    assert status["runs"][-1]["reason"] in ("cancelled", "killed")
    after = hotswap_run(ddp, 2)
    assert after.returncode == 0 and len(losses(after)) == 6, after.stderr
    ddp.write("other.py", OTHER_GROUP)
    other = ddp.run("--nproc-per-node", "2", "other.py")
    assert other.returncode == 1 and "initialized True" in other.stdout, other.stderr
    assert (
        "this rank's process group is warm as (backend gloo, world size 2, rank 0)" in other.stderr
    )
    assert "restarted the rank workers; warm objects lost: mlp" in other.stderr
    again = hotswap_run(ddp, 2)
    assert again.returncode == 0 and builds(again) == ["0", "1"], again.stderr


OTHER_GROUP = """\
import torch.distributed as dist
print("initialized", dist.is_initialized())  # the warm group
dist.init_process_group("gloo", world_size=1, rank=0)
"""

IGNORES_CANCEL = """\
import os, signal, time
import torch, torch.distributed as dist
dist.init_process_group("gloo")
if dist.get_rank() == 0:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    print("rank 0 ignores cancels", flush=True)
    time.sleep(120)
dist.all_reduce(torch.ones(1))  # rank 1 waits here, inside gloo, for rank 0
"""


def test_a_rank_that_ignores_the_cancel_gets_every_rank_restarted(ddp: Workspace) -> None:
    ddp.write("stuck.py", IGNORES_CANCEL)
    assert hotswap_run(ddp, 2).returncode == 0
    with following(ddp, "--nproc-per-node", "2", "stuck.py") as run:
        run.wait_for("rank 0 ignores cancels")
        run.proc.send_signal(signal.SIGINT)
        assert run.finish() == 130
    assert "did not stop within 2s of the cancel" in run.stderr
    assert "restarted the rank workers; warm objects lost: mlp" in run.stderr
    after = hotswap_run(ddp, 2)
    assert after.returncode == 0 and builds(after) == ["0", "1"], after.stderr


OUT_OF_STEP = """\
import time, torch, torch.distributed as dist
dist.init_process_group("gloo")
if dist.get_rank() == 0:
    pending = dist.all_reduce(torch.ones(1), async_op=True)  # rank 1 never joins it
print("waiting", flush=True)
time.sleep(120)
"""


def test_ranks_cancelled_out_of_step_are_restarted(ddp: Workspace) -> None:
    ddp.write("out_of_step.py", OUT_OF_STEP)
    with following(ddp, "--nproc-per-node", "2", "out_of_step.py") as run:
        wait_until(lambda: run.stdout.count("waiting") == 2, run.stderr, timeout=120)
        run.proc.send_signal(signal.SIGINT)
        assert run.finish() == 130
    said = "the ranks stopped out of step (collectives so far: rank 0 1, rank 1 0)"
    assert said in run.stderr and "restarted the rank workers" in run.stderr
    after = hotswap_run(ddp, 2)
    assert after.returncode == 0 and len(losses(after)) == 6, after.stderr


def test_a_rank_that_raises_or_exits_fails_the_run_and_the_next_run_works(
    ddp: Workspace,
) -> None:
    assert hotswap_run(ddp, 2).returncode == 0
    failed = hotswap_run(ddp, 2, "--raise-at", "1")
    assert failed.returncode == 1, failed.stderr
    # rank 0 is printed as it comes: the prefix is torch's excepthook's, set on the warm group
    assert "\n[rank0]: ValueError: bad batch at step 1\n" in failed.stderr
    assert "rank 0 failed (ValueError: bad batch at step 1)" in failed.stderr
    assert "the other ranks were interrupted" in failed.stderr
    assert hotswap_run(ddp, 2).returncode == 0
    old = set(rank_workers(ddp).values())
    crashed = hotswap_run(ddp, 2, "--crash-at", "1")
    assert crashed.returncode == 3, crashed.stderr
    assert "rank 1: the worker process exited with code 3" in crashed.stderr
    assert "restarted the rank workers" in crashed.stderr
    after = hotswap_run(ddp, 2)
    assert after.returncode == 0 and len(losses(after)) == 6, after.stderr
    daemon = int(ddp.connection()["pid"])
    assert workspace_pids(ddp.root) == {daemon, *rank_workers(ddp).values()}
    assert not old & set(rank_workers(ddp).values())


def test_debug_attaches_to_rank_0_or_the_rank_chosen_while_the_others_run_on(
    ddp: Workspace,
) -> None:
    ddp.write("pyproject.toml", DEFAULT_PYPROJECT + "nproc_per_node = 2\n")
    beyond = ddp.run("--debug", "--debug-rank", "2", "ddp.py")  # 2 ranks from the pyproject
    assert beyond.returncode == 2 and "--debug-rank 2: the run has ranks 0 to 1" in beyond.stderr
    proc = ddp.run("--nproc-per-node", "2", "--debug", "--no-wait", "--debug-rank", "1", "ddp.py")
    assert proc.returncode == 0 and len(losses(proc)) == 6, proc.stderr
    assert proc.stderr.count("debugger listening on") == 1
    debug = {w["index"]: w["debug"] for w in ddp.status()["workers"]}
    assert debug[0] is None and debug[1] is not None
    script = ddp.root / "ddp.py"
    line = line_of(script, "all steps done")
    with (
        debug_run(ddp, "--nproc-per-node", "2", "ddp.py") as run,
        attached(run.address(), {script: [line]}) as dap,
    ):
        thread, frames = stopped(dap)
        assert where(frames[0]) == (str(script), line)
        assert dap.locals(frames[0]["id"])["rank"] == "0"
        wait_until(lambda: "[rank1]: rank 1 step 2 " in run.stdout, run.stdout)  # ran on
        dap.continue_(thread)
        assert run.finish() == 0, run.stderr
    assert run.stderr.count("debugger listening on") == 1


def test_the_ddp_sample_resumes_from_its_checkpoint_as_under_torchrun(workspace: Workspace) -> None:
    for sample in ("ddp", "tiny_gpt"):
        shutil.copytree(SAMPLES / sample, workspace.root / sample, ignore=_CACHE)
    script = ["ddp/train_ddp.py", "--size", "tiny", "--checkpoint", "ckpt.pt"]
    argv = [PYTHON, "-m", "torch.distributed.run", "--nproc-per-node=2"]
    argv += [f"--master-port={free_port()}", *script, "--checkpoint", "torchrun.pt"]
    plain = subprocess.run(argv, capture_output=True, text=True, cwd=workspace.root, timeout=180)
    expected = re.findall(r"step \d/6 loss [\d.]+", plain.stdout)
    assert len(expected) == 6, plain.stdout + plain.stderr
    first = workspace.run("--nproc-per-node", "2", *script, "--steps", "3")
    assert first.returncode == 0 and "checkpoint at step 3" in first.stdout, first.stderr
    resumed = workspace.run("--nproc-per-node", "2", *script, "--resume")
    assert resumed.returncode == 0 and "resumed at step 3" in resumed.stdout, resumed.stderr
    got = re.findall(r"step \d/\d loss [\d.]+", first.stdout + resumed.stdout)
    assert [line.split(" loss ")[1] for line in got] == [e.split(" loss ")[1] for e in expected]
    assert "[rank1]" not in resumed.stdout  # rank 0 alone prints
