"""Zero-code warm loading: transformers' ``from_pretrained`` calls served from the warm cache.

A call from the user's code with the same arguments as in an earlier run gets the object that
call loaded, put back as loaded; a local folder whose files changed is loaded again. Off with
``[tool.hotswap] auto_warm = false`` or ``hotswap run --no-auto-warm``.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.abc
import importlib.machinery
import os
import sys
import threading
import types
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from ..warm import WarmCache, active_cache, is_building, is_user_file, say

ENV_SWITCH = "HOTSWAP_AUTO_WARM"  # "0" from `hotswap run --no-auto-warm`
KEY_PREFIX = "from_pretrained: "

# Where transformers defines the from_pretrained classmethods that user code calls.
TARGETS: dict[str, tuple[str, ...]] = {
    "transformers.modeling_utils": ("PreTrainedModel",),
    "transformers.configuration_utils": ("PreTrainedConfig", "PretrainedConfig"),
    "transformers.tokenization_utils_base": ("PreTrainedTokenizerBase",),
    "transformers.processing_utils": ("ProcessorMixin",),
    "transformers.feature_extraction_utils": ("FeatureExtractionMixin",),
    "transformers.image_processing_base": ("ImageProcessingMixin",),
    "transformers.models.auto.auto_factory": ("_BaseAutoModelClass",),
    "transformers.models.auto.configuration_auto": ("AutoConfig",),
    "transformers.models.auto.tokenization_auto": ("AutoTokenizer",),
    "transformers.models.auto.processing_auto": ("AutoProcessor",),
    "transformers.models.auto.image_processing_auto": ("AutoImageProcessor",),
    "transformers.models.auto.feature_extraction_auto": ("AutoFeatureExtractor",),
}


class _RunState:
    def __init__(self) -> None:
        self.enabled = False
        self.served: set[str] = set()  # keys this run asked for
        self.stamps: dict[str, str] = {}  # key → its files' sizes and times when loaded
        self.local = threading.local()  # .depth: from_pretrained calls inside one another


_state = _RunState()


def begin_run(env: dict[str, str], workspace: str) -> None:
    """Before a run: decide whether it is on (config, then the CLI's switch) and hook in."""
    _state.enabled = env.pop(ENV_SWITCH, "1") != "0" and _configured(workspace)
    _state.served = set()
    if _state.enabled:
        install_hooks()


def end_run(cache: WarmCache) -> None:
    """After a run that loaded something: drop what earlier runs loaded and this one did not
    ask for (the script moved on to another checkpoint), so memory does not pile up."""
    held = cache.keys() if _state.served else []
    for key in held:
        if key.startswith(KEY_PREFIX) and key not in _state.served:
            cache.forget(key)
            _state.stamps.pop(key, None)
    _state.enabled, _state.served = False, set()


def _configured(workspace: str) -> bool:
    from ..workspace import Config

    try:
        return Config.load(Path(workspace)).auto_warm
    except ValueError:
        return True  # the daemon reports a broken pyproject itself


# -- hooking transformers in ----------------------------------------------------------------


def install_hooks() -> None:
    """Wrap the classmethods of modules already imported; wrap the others as they load."""
    for name in TARGETS:
        module = sys.modules.get(name)
        if module is not None:
            wrap_module(module)
    if not any(isinstance(f, _WrapOnImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _WrapOnImport())


def wrap_module(module: types.ModuleType) -> None:
    for class_name in TARGETS.get(module.__name__, ()):
        owner = getattr(module, class_name, None)
        if not isinstance(owner, type):
            continue
        original = vars(owner).get("from_pretrained")
        if isinstance(original, classmethod) and not hasattr(original.__func__, "_hotswap"):
            owner.from_pretrained = classmethod(_served_warm(original.__func__))  # type: ignore[attr-defined]


class _WrapOnImport(importlib.abc.MetaPathFinder):
    """Finds the target modules with the other finders, and wraps them once executed."""

    def find_spec(
        self, name: str, path: Sequence[str] | None, target: types.ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if name not in TARGETS:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None and isinstance(spec.loader, importlib.abc.Loader):
                spec.loader = _WrappingLoader(spec.loader)
                return spec
        return None


class _WrappingLoader(importlib.abc.Loader):
    def __init__(self, loader: importlib.abc.Loader) -> None:
        self.loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: types.ModuleType) -> None:
        self.loader.exec_module(module)
        wrap_module(module)


# -- serving calls --------------------------------------------------------------------------


def _served_warm(load: Any) -> Any:
    @functools.wraps(load)
    def from_pretrained(cls: type, *args: Any, **kwargs: Any) -> Any:
        cache = active_cache()
        mine = is_user_file(sys._getframe(1).f_code.co_filename)  # not a library's own load
        key = _key(cls, args, kwargs) if cache is not None and mine and _may_serve() else None
        if cache is None or key is None or key in _state.served:
            # a second identical call in one run gets its own object, as under python
            with _nested():
                return load(cls, *args, **kwargs)
        return _serve(cache, key, lambda: load(cls, *args, **kwargs), args, kwargs)

    from_pretrained._hotswap = True  # type: ignore[attr-defined]
    return from_pretrained


def _serve(cache: WarmCache, key: str, load: Any, args: Any, kwargs: dict[str, Any]) -> Any:
    _state.served.add(key)
    stamp = files_stamp(_source(args, kwargs), kwargs)
    if _state.stamps.get(key, stamp) != stamp and cache.forget(key):
        say(f"loading again, its files changed: {key[len(KEY_PREFIX) :]}", "reloaded")
    _state.stamps[key] = stamp
    hits = len(cache.reused)

    def build() -> Any:
        with _nested():
            return load()

    value = cache.get_or_build(key, build)
    if len(cache.reused) > hits:
        say(f"served warm: {key[len(KEY_PREFIX) :]}", "served_warm")
    return value


def _may_serve() -> bool:
    return _state.enabled and getattr(_state.local, "depth", 0) == 0 and not is_building()


@contextlib.contextmanager
def _nested() -> Iterator[None]:
    _state.local.depth = getattr(_state.local, "depth", 0) + 1
    try:
        yield
    finally:
        _state.local.depth -= 1


def _key(cls: type, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
    """``AutoModel.from_pretrained('gpt2', dtype=torch.float16)``; None when an argument has
    no stable description (then the call is not served warm)."""
    parts = [stable_repr(a) for a in args]
    parts += [f"{k}={r}" if (r := stable_repr(v)) else None for k, v in sorted(kwargs.items())]
    if any(p is None for p in parts):
        return None
    return f"{KEY_PREFIX}{cls.__name__}.from_pretrained({', '.join(map(str, parts))})"


def stable_repr(value: Any) -> str | None:
    if value is None or isinstance(value, (bool, int, float, str)):
        return repr(value)
    if isinstance(value, os.PathLike):
        return repr(os.fspath(value))
    if isinstance(value, (list, tuple)):
        items = [stable_repr(v) for v in value]
        return None if None in items else f"[{', '.join(map(str, items))}]"
    if isinstance(value, dict):
        pairs = [(stable_repr(k), stable_repr(v)) for k, v in value.items()]
        if any(k is None or v is None for k, v in pairs):
            return None
        return "{" + ", ".join(f"{k}: {v}" for k, v in pairs) + "}"
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(value, (torch.dtype, torch.device)):
        return str(value)
    to_json = getattr(value, "to_json_string", None)
    if callable(to_json):  # configs, quantization configs
        with contextlib.suppress(Exception):
            return f"{type(value).__name__}({to_json()})"
    return None


def _source(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    return args[0] if args else kwargs.get("pretrained_model_name_or_path")


def files_stamp(source: Any, kwargs: dict[str, Any]) -> str:
    """Sizes and modification times of a local model's files, or the hub cache's commit."""
    if not isinstance(source, (str, os.PathLike)):
        return ""
    path = Path(source).expanduser()
    if path.is_dir():
        return repr(sorted(_file_stats(path)))
    if path.is_file():
        stat = path.stat()
        return repr((stat.st_size, stat.st_mtime_ns))
    return _hub_commit(str(source), kwargs.get("revision"), kwargs.get("cache_dir"))


def _file_stats(folder: Path, depth: int = 0) -> Iterator[tuple[str, int, int]]:
    with contextlib.suppress(OSError), os.scandir(folder) as entries:
        for entry in entries:
            if entry.is_dir() and depth < 2:
                yield from _file_stats(Path(entry.path), depth + 1)
            elif entry.is_file():
                stat = entry.stat()
                yield entry.path, stat.st_size, stat.st_mtime_ns


def _hub_commit(repo_id: str, revision: Any, cache_dir: Any) -> str:
    """The commit the hub cache resolves the revision to: a download of a newer one shows."""
    try:
        from huggingface_hub import constants
    except ImportError:
        return ""
    root = Path(cache_dir or constants.HF_HUB_CACHE)
    ref = root / f"models--{repo_id.replace('/', '--')}" / "refs" / str(revision or "main")
    try:
        return ref.read_text().strip()
    except OSError:
        return ""
