"""Level 1: snapshots of warm objects and putting back what a run changed, with real torch."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

torch = pytest.importorskip("torch")

from hotswap.warm import WarmCache, install  # noqa: E402
from hotswap.warm_restore import Snapshot, restore, take_snapshot  # noqa: E402


class Net(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.first = torch.nn.Linear(4, 4)
        self.second = torch.nn.Sequential(torch.nn.Linear(4, 2), torch.nn.ReLU())
        self.register_buffer("steps", torch.zeros(1))
        self.eval()


def state(module: Any) -> dict[str, Any]:
    return {k: v.clone() for k, v in module.state_dict().items()}


def same_state(module: Any, saved: dict[str, Any]) -> bool:
    now = module.state_dict()
    return now.keys() == saved.keys() and all(
        now[k].dtype == saved[k].dtype and torch.equal(now[k], saved[k]) for k in saved
    )


def snapshot_of(value: Any) -> Snapshot:
    snap = take_snapshot(value)
    assert isinstance(snap, Snapshot), snap
    return snap


def test_an_untouched_module_restores_nothing_and_keeps_its_tensors() -> None:
    net = Net()
    snap = snapshot_of(net)
    ptrs = [p.data_ptr() for p in net.parameters()]
    assert snap.restore() == 0
    assert [p.data_ptr() for p in net.parameters()] == ptrs
    assert snap.nbytes == sum(t.numel() * t.element_size() for t in net.state_dict().values())


def test_a_training_step_is_undone_in_place() -> None:
    net = Net()
    saved, params = state(net), list(net.parameters())
    snap = snapshot_of(net)
    ptrs = [p.data_ptr() for p in params]
    net.train()
    optimizer = torch.optim.SGD(net.parameters(), lr=0.5)
    net.second(net.first(torch.ones(1, 4))).sum().backward()
    optimizer.step()
    net.steps += 1
    assert not same_state(net, saved)
    assert snap.restore() > 0
    assert same_state(net, saved) and not net.training
    assert list(net.parameters()) == params, "the same parameter objects"
    assert [p.data_ptr() for p in params] == ptrs, "values copied back into the same memory"
    assert all(p.grad is None for p in params)


@pytest.mark.parametrize("frozen", [False, True])
def test_a_fused_optimizer_step_that_skips_the_version_counter_is_undone(frozen: bool) -> None:
    net = Net()
    net.requires_grad_(not frozen)
    saved = state(net)
    snap = snapshot_of(net)
    net.requires_grad_(True)  # a run may unfreeze what the factory froze
    optimizer = torch.optim.AdamW(net.parameters(), lr=0.5, fused=True)
    versions = [p._version for p in net.parameters()]
    net.second(net.first(torch.ones(1, 4))).sum().backward()
    optimizer.step()
    optimizer.zero_grad()
    assert [p._version for p in net.parameters()] == versions, "fused: no version bump"
    assert not same_state(net, saved)
    snap.restore()
    assert same_state(net, saved)
    assert all(p.requires_grad is not frozen for p in net.parameters())


def test_dtype_device_requires_grad_hooks_layers_and_attributes_are_put_back() -> None:
    net = Net()
    saved, linear = state(net), net.second[0]
    snap = snapshot_of(net)
    net.first.register_forward_hook(lambda *args: None)
    net.register_forward_pre_hook(lambda *args: None)
    net.second[0] = torch.nn.Identity()
    net.first.weight.register_hook(lambda grad: grad)
    net.first.weight.requires_grad_(False)
    net.extra = "left by a run"
    net.double().train()
    snap.restore()
    assert same_state(net, saved)
    assert net.second[0] is linear and not net.training
    assert not net.first._forward_hooks and not net._forward_pre_hooks
    assert net.first.weight.requires_grad and not net.first.weight._backward_hooks
    assert not hasattr(net, "extra")


def test_tensors_and_containers_of_them() -> None:
    tensor, table = torch.arange(4.0), {"a": torch.ones(2)}
    items = [tensor, table]
    snap = snapshot_of((items, tensor))
    tensor.mul_(3)
    table["a"].zero_()
    table["b"] = torch.zeros(1)
    items.append("more")
    snap.restore()
    assert torch.equal(tensor, torch.arange(4.0)) and torch.equal(table["a"], torch.ones(2))
    assert list(table) == ["a"] and len(items) == 2


def test_a_transformers_config_is_put_back_by_value() -> None:
    transformers = pytest.importorskip("transformers")
    config = transformers.GPT2Config(n_layer=1, n_embd=8, n_head=2, vocab_size=16)
    model = transformers.GPT2LMHeadModel(config)
    snap = snapshot_of(model)
    model.config.use_cache = False
    model.config.n_layer = 7
    snap.restore()
    assert model.config is config and config.use_cache and config.n_layer == 1


def test_replacing_a_tensor_that_shares_memory_cannot_be_undone() -> None:
    base = torch.zeros(4)
    module = torch.nn.Module()
    module.low = torch.nn.Parameter(base[:2])
    module.high = torch.nn.Parameter(base[2:])
    snap = snapshot_of(module)
    module.low.data = torch.ones(2)
    assert restore(snap) == (
        "it could not be put back as its factory built it: "
        "a tensor sharing its memory with another was replaced"
    )


def test_a_restore_that_fails_its_checksum_is_reported() -> None:
    tensor = torch.zeros(8)
    snap = snapshot_of(tensor)
    snap.tensors[0].store.tensor[3] = 1.0  # type: ignore[union-attr]  # the copy went bad
    tensor.add_(1)
    assert restore(snap) == (
        "it could not be put back as its factory built it: a restored tensor failed its checksum"
    )


def test_meta_tensors_cannot_be_kept_pristine() -> None:
    assert take_snapshot(torch.empty(2, device="meta")) == "it holds tensors on the meta device"
    keep = take_snapshot(torch.empty(2, device="meta"), keep_values=False)
    assert isinstance(keep, Snapshot) and keep.nbytes == 0


@pytest.fixture
def cache() -> Iterator[WarmCache]:
    cache = WarmCache()
    install(cache)
    cache.begin_run(None)
    try:
        yield cache
    finally:
        install(None)


def test_an_object_that_cannot_be_put_back_is_rebuilt_with_a_message(
    cache: WarmCache, capsys: pytest.CaptureFixture[str]
) -> None:
    built: list[Any] = []

    def factory() -> Any:
        module = torch.nn.Module()
        base = torch.zeros(4)
        module.low, module.high = torch.nn.Parameter(base[:2]), torch.nn.Parameter(base[2:])
        built.append(module)
        return module

    first = cache.get_or_build("shared", factory)
    first.low.data = torch.ones(2)
    cache.after_run()
    assert cache.keys() == [], "evicted after the run, so its memory is freed at once"
    cache.begin_run(None)
    second = cache.get_or_build("shared", factory)
    assert second is not first and len(built) == 2
    why = "it could not be put back as its factory built it: a tensor sharing its memory with "
    why += "another was replaced"
    assert capsys.readouterr().err == (
        f"hotswap: warm 'shared' dropped after the run: {why}\n"
        f"hotswap: warm 'shared' rebuilt: {why}\n"
    )


def test_the_same_run_gets_the_object_as_it_left_it(cache: WarmCache) -> None:
    first = cache.get_or_build("t", lambda: torch.zeros(2))
    first.add_(1)
    assert torch.equal(cache.get_or_build("t", lambda: torch.zeros(2)), torch.ones(2))
    cache.after_run()
    cache.begin_run(None)
    assert torch.equal(cache.get_or_build("t", lambda: torch.zeros(2)), torch.zeros(2))


def test_a_tokenizer_whose_vocabulary_grew_is_rebuilt(
    cache: WarmCache, capsys: pytest.CaptureFixture[str]
) -> None:
    transformers = pytest.importorskip("transformers")
    tokenizers = pytest.importorskip("tokenizers")

    def factory() -> Any:
        bpe = tokenizers.Tokenizer(tokenizers.models.BPE())
        bpe.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel()
        return transformers.PreTrainedTokenizerFast(tokenizer_object=bpe)

    first = cache.get_or_build("tok", factory)
    first.add_tokens(["<new>"])
    first.model_max_length = 3
    cache.after_run()
    cache.begin_run(None)
    second = cache.get_or_build("tok", factory)
    assert second is not first and "<new>" not in second.get_vocab()
    assert "its vocabulary changed" in capsys.readouterr().err


def test_weights_from_safetensors_are_read_back_from_the_file(tmp_path: Any) -> None:
    transformers = pytest.importorskip("transformers")
    config = transformers.GPT2Config(n_layer=1, n_embd=8, n_head=2, vocab_size=16)
    transformers.GPT2LMHeadModel(config).save_pretrained(tmp_path)
    model = transformers.AutoModelForCausalLM.from_pretrained(tmp_path)
    saved = state(model)
    snap = snapshot_of(model)
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    assert snap.nbytes < weights / 10, "no second copy of the weights in memory"
    with torch.no_grad():
        model.transformer.h[0].mlp.c_fc.weight.add_(1)
    model.half()
    snap.restore()
    assert same_state(model, saved)

    model.half()
    (tmp_path / "model.safetensors").write_bytes(b"")
    assert restore(snap) == (
        "it could not be put back as its factory built it: "
        f"{tmp_path / 'model.safetensors'} changed on disk since it was loaded"
    )
