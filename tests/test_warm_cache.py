"""Level 1: the warm cache, factory fingerprints and object descriptions, in this process."""

from __future__ import annotations

import functools
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import hotswap
import pytest
from hotswap.warm import WarmCache, active_cache, factory_fingerprint, install


class Thing:
    """Stands for a model: an object whose identity tells cache hits from rebuilds."""

    def __init__(self, tag: object = None) -> None:
        self.tag = tag


@pytest.fixture
def installed_cache() -> Iterator[WarmCache]:
    """A cache installed as the process's warm cache, as the runner worker does."""
    cache = WarmCache()
    install(cache)
    try:
        yield cache
    finally:
        install(None)


# -- get_or_build, forget, clear, keys ------------------------------------------------


def test_get_or_build_returns_the_same_object_until_forgotten() -> None:
    cache = WarmCache()
    calls: list[int] = []

    def build() -> Thing:
        calls.append(1)
        return Thing()

    first = cache.get_or_build("model", build)
    assert cache.get_or_build("model", build) is first
    assert len(calls) == 1
    assert cache.keys() == ["model"]
    assert cache.reused == ["model"]
    assert cache.forget("model") is True
    assert cache.keys() == []
    assert cache.get_or_build("model", build) is not first
    assert len(calls) == 2


def test_changed_factory_code_rebuilds_the_entry() -> None:
    cache = WarmCache()
    old = cache.get_or_build("model", lambda: Thing("old"))
    new = cache.get_or_build("model", lambda: Thing("new"))
    assert new is not old and new.tag == "new"
    assert cache.get_or_build("model", lambda: Thing("new")) is new
    assert cache.keys() == ["model"]


def test_forget_of_an_unknown_key_is_false() -> None:
    cache = WarmCache()
    assert cache.forget("nothing") is False


def test_clear_drops_every_key_and_returns_them() -> None:
    cache = WarmCache()
    for key in ("a", "b", "c"):
        cache.get_or_build(key, Thing)
    assert sorted(cache.keys()) == ["a", "b", "c"]
    assert sorted(cache.clear()) == ["a", "b", "c"]
    assert cache.keys() == []
    assert cache.clear() == []


def test_reset_counters_empties_the_reused_list() -> None:
    cache = WarmCache()
    cache.get_or_build("a", Thing)
    cache.get_or_build("a", Thing)
    assert cache.reused == ["a"]
    cache.reset_counters()
    assert cache.reused == []


def test_on_change_is_called_on_build_forget_and_clear_but_not_on_a_hit() -> None:
    changes: list[list[str]] = []
    cache = WarmCache(on_change=lambda: changes.append(cache.keys()))
    cache.get_or_build("a", Thing)
    assert changes == [["a"]]
    cache.get_or_build("a", Thing)
    assert changes == [["a"]], "a cache hit is not a change"
    cache.get_or_build("b", Thing)
    cache.forget("a")
    assert changes == [["a"], ["a", "b"], ["b"]]
    cache.forget("a")
    assert len(changes) == 3, "forgetting nothing is not a change"
    cache.clear()
    assert changes[-1] == [] and len(changes) == 4
    cache.clear()
    assert len(changes) == 4


def test_a_factory_that_raises_caches_nothing() -> None:
    cache = WarmCache()

    def broken() -> Thing:
        raise RuntimeError("no weights")

    with pytest.raises(RuntimeError, match="no weights"):
        cache.get_or_build("model", broken)
    assert cache.keys() == []
    assert cache.get_or_build("model", Thing) is cache.get_or_build("model", Thing)


def test_two_threads_asking_for_one_key_build_it_once() -> None:
    cache = WarmCache()
    builds: list[Thing] = []
    building = threading.Event()

    def slow_build() -> Thing:
        building.set()
        time.sleep(0.3)  # keep the second thread waiting on the key's lock
        builds.append(Thing())
        return builds[-1]

    results: list[Thing] = []
    first = threading.Thread(target=lambda: results.append(cache.get_or_build("k", slow_build)))
    second = threading.Thread(target=lambda: results.append(cache.get_or_build("k", slow_build)))
    first.start()
    assert building.wait(10)
    second.start()
    first.join(30)
    second.join(30)
    assert len(builds) == 1
    assert len(results) == 2 and results[0] is results[1] is builds[0]


def test_a_slow_build_does_not_block_other_keys() -> None:
    cache = WarmCache()
    release = threading.Event()
    result: list[Thing] = []

    def blocked_build() -> Thing:
        release.wait(30)
        return Thing("slow")

    thread = threading.Thread(
        target=lambda: result.append(cache.get_or_build("slow", blocked_build))
    )
    thread.start()
    try:
        assert cache.get_or_build("fast", lambda: Thing("fast")).tag == "fast"
    finally:
        release.set()
        thread.join(30)
    assert result[0].tag == "slow"


# -- fingerprints -----------------------------------------------------------------------


def make_in_one_place() -> Callable[[], Thing]:
    return lambda: Thing("same")


def make_in_another_place() -> Callable[[], Thing]:
    # A different line and enclosing function: the same code must give the same fingerprint,
    # or every edit above a factory would rebuild the model.

    return lambda: Thing("same")


def capture(value: object) -> Callable[[], Thing]:
    return lambda: Thing(value)


def test_identical_factories_defined_in_two_places_share_a_fingerprint() -> None:
    one, other = make_in_one_place(), make_in_another_place()
    assert one is not other
    assert one.__code__.co_firstlineno != other.__code__.co_firstlineno
    assert factory_fingerprint(one) == factory_fingerprint(other)
    cache = WarmCache()
    assert cache.get_or_build("k", one) is cache.get_or_build("k", other)


def test_fingerprint_changes_with_the_code() -> None:
    assert factory_fingerprint(lambda: Thing("a")) != factory_fingerprint(lambda: Thing("b"))
    assert factory_fingerprint(lambda: Thing([1])) != factory_fingerprint(lambda: Thing((1,)))
    assert factory_fingerprint(lambda: Thing()) != factory_fingerprint(lambda: Thing(None))


def test_fingerprint_changes_with_a_nested_function_body() -> None:
    def outer_a() -> int:
        return (lambda: 1)()

    def outer_b() -> int:
        return (lambda: 2)()

    assert factory_fingerprint(outer_a) != factory_fingerprint(outer_b)


@pytest.mark.parametrize(
    ("same", "different"),
    [((1, 1), (1, 2)), (("gpt2", "gpt2"), ("gpt2", "gpt2-medium")), ((0.5, 0.5), (0.5, 0.25))],
)
def test_fingerprint_follows_simple_captured_values(
    same: tuple[object, object], different: tuple[object, object]
) -> None:
    assert factory_fingerprint(capture(same[0])) == factory_fingerprint(capture(same[1]))
    assert factory_fingerprint(capture(different[0])) != factory_fingerprint(capture(different[1]))


def test_fingerprint_follows_defaults_and_keyword_defaults() -> None:
    def build_a(size: int = 1) -> Thing:
        return Thing(size)

    def build_b(size: int = 2) -> Thing:
        return Thing(size)

    def build_c(size: int = 1) -> Thing:
        return Thing(size)

    def kw_a(*, size: int = 1) -> Thing:
        return Thing(size)

    def kw_b(*, size: int = 2) -> Thing:
        return Thing(size)

    assert factory_fingerprint(build_a) != factory_fingerprint(build_b)
    assert factory_fingerprint(build_a) == factory_fingerprint(build_c)
    assert factory_fingerprint(kw_a) != factory_fingerprint(kw_b)


def build_sized(size: int, name: str = "m") -> Thing:
    return Thing((size, name))


def test_fingerprint_handles_functools_partial() -> None:
    fp = factory_fingerprint
    assert fp(functools.partial(build_sized, 1)) == fp(functools.partial(build_sized, 1))
    assert fp(functools.partial(build_sized, 1)) != fp(functools.partial(build_sized, 2))
    assert fp(functools.partial(build_sized, 1, name="a")) != fp(
        functools.partial(build_sized, 1, name="b")
    )
    assert fp(functools.partial(build_sized, 1)) != fp(functools.partial(Thing, 1))
    cache = WarmCache()
    first = cache.get_or_build("p", functools.partial(build_sized, 1))
    assert cache.get_or_build("p", functools.partial(build_sized, 1)) is first
    assert cache.get_or_build("p", functools.partial(build_sized, 2)).tag == (2, "m")


def test_fingerprint_of_bound_methods_and_classes() -> None:
    class Builder:
        def __init__(self, n: int) -> None:
            self.n = n

        def build(self) -> Thing:
            return Thing(self.n)

    assert factory_fingerprint(Builder(1).build) == factory_fingerprint(Builder(2).build)


def test_a_class_defined_again_from_the_same_code_keeps_its_fingerprint() -> None:
    # Every run executes the script again: its classes are new objects made from the same code.
    source = "class Model:\n    def __init__(self):\n        self.size = 1\n"
    first: dict[str, Any] = {"__name__": "model"}
    second: dict[str, Any] = {"__name__": "model"}
    edited: dict[str, Any] = {"__name__": "model"}
    exec(compile(source, "model.py", "exec"), first)
    exec(compile(source, "model.py", "exec"), second)
    exec(compile(source.replace("= 1", "= 2"), "model.py", "exec"), edited)
    assert first["Model"] is not second["Model"]
    assert factory_fingerprint(first["Model"]) == factory_fingerprint(second["Model"])
    assert factory_fingerprint(first["Model"]) != factory_fingerprint(edited["Model"])


def test_classes_and_builtins_as_factories_are_told_apart() -> None:
    class Small:
        def __init__(self) -> None:
            self.size = 1

    class Edited:  # the same name after an edit of __init__
        def __init__(self) -> None:
            self.size = 2

    Edited.__qualname__ = Small.__qualname__
    fp = factory_fingerprint
    assert fp(Thing) != fp(dict) != fp(list)
    assert fp(Small) != fp(Edited)
    assert fp(time.time) != fp(time.monotonic)
    cache = WarmCache()
    assert isinstance(cache.get_or_build("k", Thing), Thing)
    assert isinstance(cache.get_or_build("k", dict), dict)


FACTORIES = """
import functools


def build(size=3, name="m"):
    return [size, name]


class Model:
    def __init__(self):
        self.size = {"a": 1, "b": 2}


factories = [build, lambda: build(4), functools.partial(build, 5, name="n"), Model]
factories.append(lambda: {"k", "v"})
"""

PRINT_FINGERPRINTS = (
    "import sys; sys.path.insert(0, sys.argv[1]); import warm_factories as m; "
    "from hotswap.warm import factory_fingerprint as fp; "
    "print(' '.join(fp(f) for f in m.factories))"
)


def fingerprints_in_a_new_process(folder: Path, hash_seed: str) -> list[str]:
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    done = subprocess.run(
        [sys.executable, "-c", PRINT_FINGERPRINTS, str(folder)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout.split()


def test_fingerprints_are_16_hex_digits_and_the_same_in_every_process(tmp_path: Path) -> None:
    # A worker restarted (or another one) must see the same factories as unchanged: no rebuild.
    (tmp_path / "warm_factories.py").write_text(FACTORIES)
    first = fingerprints_in_a_new_process(tmp_path, "1")
    second = fingerprints_in_a_new_process(tmp_path, "2")
    assert first == second
    assert len(first) == 5 and len(set(first)) == 5, "each factory has its own"
    assert all(re.fullmatch("[0-9a-f]{16}", fp) for fp in first), first


# -- describe ------------------------------------------------------------------------


def test_describe_a_torch_module() -> None:
    torch = pytest.importorskip("torch")
    cache = WarmCache()
    cache.get_or_build("linear", lambda: torch.nn.Linear(10, 5))
    [entry] = cache.describe()
    assert entry["key"] == "linear"
    assert entry["type"] == "torch.nn.modules.linear.Linear"
    assert entry["parameters"] == 55
    assert entry["bytes"] == 220  # 55 float32 values
    assert entry["device"] == "cpu" and entry["dtype"] == "torch.float32"
    assert entry["hits"] == 0 and entry["build_seconds"] >= 0
    cache.get_or_build("linear", lambda: torch.nn.Linear(10, 5))
    assert cache.describe()[0]["hits"] == 1
    json.dumps(cache.describe())  # status sends it over the wire


def test_describe_a_tuple_sums_its_tensors() -> None:
    torch = pytest.importorskip("torch")
    cache = WarmCache()
    cache.get_or_build("pair", lambda: (torch.nn.Linear(10, 5), "tokenizer-string"))
    cache.get_or_build("models", lambda: (torch.nn.Linear(10, 5), torch.nn.Linear(5, 2)))
    cache.get_or_build("tensors", lambda: {"w": torch.zeros(3, 4, dtype=torch.float64)})
    described = {e["key"]: e for e in cache.describe()}
    pair = described["pair"]
    assert pair["type"] == "builtins.tuple"
    assert pair["parameters"] == 55 and pair["device"] == "cpu"
    assert pair["bytes"] >= 220
    models = described["models"]
    assert (models["parameters"], models["bytes"], models["device"]) == (67, 268, "cpu")
    tensors = described["tensors"]
    assert (tensors["parameters"], tensors["bytes"], tensors["device"]) == (12, 96, "cpu")
    assert tensors["dtype"] == "torch.float64"


def test_describe_names_mixed_dtypes() -> None:
    torch = pytest.importorskip("torch")
    cache = WarmCache()
    cache.get_or_build("two", lambda: (torch.nn.Linear(2, 2), torch.nn.Linear(2, 2).half()))
    [entry] = cache.describe()
    assert entry["dtype"] == "mixed" and entry["device"] == "cpu"


def test_describe_a_plain_object_has_no_parameters() -> None:
    cache = WarmCache()
    cache.get_or_build("vocab", lambda: {"a": 1})
    [entry] = cache.describe()
    assert entry["parameters"] is None and entry["device"] is None and entry["bytes"] > 0
    assert entry["dtype"] is None


# -- the public hotswap.warm API -------------------------------------------------------


def test_warm_outside_hotswap_just_calls_the_factory() -> None:
    assert active_cache() is None
    first = hotswap.warm("model", Thing)
    assert isinstance(first, Thing)
    assert hotswap.warm("model", Thing) is not first
    assert hotswap.warm_keys() == []
    assert hotswap.forget("model") is False


def test_warm_with_an_installed_cache_keeps_the_object(installed_cache: WarmCache) -> None:
    first = hotswap.warm("model", Thing)
    assert hotswap.warm("model", Thing) is first
    assert hotswap.warm_keys() == ["model"] == installed_cache.keys()
    assert hotswap.forget("model") is True
    assert hotswap.warm_keys() == []


@pytest.mark.parametrize("key", [None, 1, b"model", "", ("a",)])
def test_warm_rejects_a_key_that_is_not_a_non_empty_str(key: Any) -> None:
    with pytest.raises(TypeError, match=r"hotswap\.warm: key must be a non-empty str"):
        hotswap.warm(key, Thing)


@pytest.mark.parametrize("factory", [None, 3, "Thing", Thing()])
def test_warm_rejects_a_factory_that_is_not_callable(factory: Any) -> None:
    with pytest.raises(TypeError, match=r"hotswap\.warm: factory must be callable") as info:
        hotswap.warm("model", factory)
    assert type(factory).__name__ in str(info.value)


def test_import_hotswap_stays_light() -> None:
    code = (
        "import json, sys, hotswap\n"
        "hotswap.warm('k', lambda: 1)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    loaded = set(json.loads(proc.stdout))
    assert "hotswap" in loaded and "hotswap.warm" in loaded
    heavy = {"zmq", "torch", "msgpack", "hotswap.server", "hotswap.client", "hotswap.workers"}
    heavy |= {"hotswap.runs", "hotswap.worker_process", "hotswap.sync_daemon"}
    assert not heavy & loaded, f"`import hotswap` pulled in {sorted(heavy & loaded)}"
