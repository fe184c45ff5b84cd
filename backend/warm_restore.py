"""Snapshots of warm objects, and putting back only what a run changed.

Tensors are checked with torch's per-tensor version counter, storage pointer and dtype; modules
and other objects by the identity of what their ``__dict__`` (children, parameters, hooks, mode)
holds; transformers configs by value. A restored tensor is verified with a checksum.
"""

from __future__ import annotations

import copy
import functools
import operator
import sys
from collections import OrderedDict
from typing import Any

from .warm_store import CannotRestore, FileCopy, HostCopy, checksum, close_files, file_copies
from .warm_unchanged import Unchanged

_MISSING = object()
_SHALLOW = (dict, OrderedDict, list, set)
_WATCH_KEY = "hotswap-restore"
_TENSOR_HOOKS = ("_backward_hooks", "_post_accumulate_grad_hooks")
_CONFIG_CLASSES = ("PretrainedConfig", "PreTrainedConfig", "GenerationConfig")


def _is_config(value: Any) -> bool:
    return any(
        c.__name__ in _CONFIG_CLASSES and c.__module__.startswith("transformers")
        for c in type(value).__mro__
    )


def _is_tokenizer(value: Any) -> bool:
    return any(
        c.__name__ == "PreTrainedTokenizerBase" and c.__module__.startswith("transformers")
        for c in type(value).__mro__
    )


class TensorState:
    """One tensor's values (a host copy), dtype, device, requires_grad and hooks.

    A change is seen by torch's version counter and storage pointer, and, for updates that
    skip the version counter (fused optimizers such as ``AdamW(fused=True)``, which the HF
    Trainer uses), by a gradient having reached the tensor during the run.
    """

    __slots__ = (
        "device",
        "dtype",
        "hooks",
        "ptr",
        "requires_grad",
        "shape",
        "shared",
        "store",
        "sum",
        "tensor",
        "trained",
        "version",
    )

    def __init__(self, tensor: Any, keep_values: bool, store: FileCopy | None = None) -> None:
        self.tensor = tensor
        self.dtype, self.device = tensor.dtype, tensor.device
        self.requires_grad = tensor.requires_grad
        self.trained = [False]
        if keep_values and tensor.is_leaf:
            _watch_gradients(tensor, self.trained)
        self.hooks = [(name, _hooks_state(getattr(tensor, name, None))) for name in _TENSOR_HOOKS]
        self.shared = False
        self.shape = tensor.shape
        self.store: FileCopy | HostCopy | None = None
        if keep_values:
            self.store = store or HostCopy(tensor)
            self.sum = checksum(tensor)
        self._seen()

    def _seen(self) -> None:
        self.version, self.ptr = self.tensor._version, self.tensor.data_ptr()
        self.trained[0] = False

    @property
    def nbytes(self) -> int:
        return self.store.nbytes if self.store is not None else 0

    def changed(self) -> bool:
        t = self.tensor
        return (
            self.trained[0]
            or t._version != self.version
            or t.data_ptr() != self.ptr
            or t.dtype != self.dtype
        )

    def restore(self) -> bool:
        """Put the tensor back; True if its values had to be copied back."""
        t = self.tensor
        if t.grad is not None:
            t.grad = None
        if t.requires_grad != self.requires_grad:
            t.requires_grad_(self.requires_grad)
        self._restore_hooks()
        if not self.changed():
            return False
        torch = sys.modules["torch"]
        assert self.store is not None, "keep_values=False snapshots are never restored"
        values = self.store.values()
        with torch.no_grad():
            if t.data_ptr() == self.ptr and t.dtype == self.dtype and t.shape == self.shape:
                t.copy_(values)
            elif self.shared:
                raise CannotRestore("a tensor sharing its memory with another was replaced")
            else:
                t.data = values.to(self.device, copy=True)
        self._verify()
        self._seen()
        return True

    def _restore_hooks(self) -> None:
        t = self.tensor
        for name, (saved, contents) in self.hooks:
            if getattr(t, name, None) is not saved:
                setattr(t, name, saved)
            if contents is not None:
                contents.restore()

    def _verify(self) -> None:
        t = self.tensor
        if (t.dtype, t.device, t.shape) != (self.dtype, self.device, self.shape):
            raise CannotRestore(f"a tensor came back as {t.dtype} on {t.device}")
        if checksum(t) != self.sum:
            raise CannotRestore("a restored tensor failed its checksum")


def _hooks_state(hooks: Any) -> tuple[Any, ContainerState | None]:
    return hooks, (ContainerState(hooks) if hooks is not None else None)


def _watch_gradients(tensor: Any, flag: list[bool]) -> None:
    """Set ``flag`` when a gradient is accumulated into the tensor (set directly, so frozen
    tensors are watched too: a run may unfreeze and train them)."""
    hooks = getattr(tensor, "_post_accumulate_grad_hooks", None)
    if hooks is None:
        hooks = OrderedDict()
    hooks[_WATCH_KEY] = functools.partial(_mark_trained, flag)
    tensor._post_accumulate_grad_hooks = hooks


def _mark_trained(flag: list[bool], tensor: Any) -> None:
    flag[0] = True


class ContainerState:
    """A dict, list or set whose contents (by identity) are put back."""

    __slots__ = ("container", "items")

    def __init__(self, container: Any) -> None:
        self.container = container
        self.items: Any = container.copy() if not isinstance(container, list) else list(container)

    def changed(self) -> bool:
        now, then = self.container, self.items
        if len(now) != len(then):
            return True
        if isinstance(then, set):
            return bool(now != then)
        if isinstance(then, list):
            return not all(map(operator.is_, now, then))
        return list(now) != list(then) or not all(map(operator.is_, now.values(), then.values()))

    def restore(self) -> bool:
        if not self.changed():
            return False
        self.container.clear()
        if isinstance(self.items, list):
            self.container.extend(self.items)
        else:
            self.container.update(self.items)
        return True


class ObjectState:
    """An object's class and attributes (shallowly), and the containers among them."""

    __slots__ = ("attrs", "cls", "containers", "obj")

    def __init__(self, obj: Any) -> None:
        self.obj, self.cls = obj, type(obj)
        self.attrs = ContainerState(obj.__dict__)
        self.containers = [ContainerState(v) for v in obj.__dict__.values() if type(v) in _SHALLOW]

    def restore(self) -> bool:
        restored = False
        if type(self.obj) is not self.cls:
            self.obj.__class__ = self.cls
            restored = True
        restored |= self.attrs.restore()
        for state in self.containers:
            restored |= state.restore()
        return restored

    def adopt(self) -> None:
        """Take the object as it is now as pristine (after a code edit was applied to it)."""
        self.cls = type(self.obj)
        self.attrs = ContainerState(self.obj.__dict__)


class ConfigState:
    """A transformers config compared and put back by value (scripts set ``use_cache`` etc.)."""

    __slots__ = ("config", "saved")

    def __init__(self, config: Any) -> None:
        self.config, self.saved = config, copy.deepcopy(config.__dict__)

    def restore(self) -> bool:
        try:
            same = bool(self.config.__dict__ == self.saved)
        except Exception:
            same = False
        if same:
            return False
        self.config.__dict__.clear()
        self.config.__dict__.update(copy.deepcopy(self.saved))
        return True


class TokenizerState:
    """Tokenizers hold their vocabulary in Rust: a change there is detected, not undone
    (the entry is loaded again)."""

    __slots__ = ("signature", "tokenizer")

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer, self.signature = tokenizer, _tokenizer_signature(tokenizer)

    def restore(self) -> bool:
        if _tokenizer_signature(self.tokenizer) != self.signature:
            raise CannotRestore("its vocabulary changed")
        return False


def _tokenizer_signature(tokenizer: Any) -> tuple[Any, ...]:
    # Not truncation/padding: transformers sets those anew in every call.
    return (len(tokenizer), repr(getattr(tokenizer, "added_tokens_decoder", None)))


class Snapshot:
    """Everything reachable in a warm value that hotswap knows how to put back."""

    def __init__(self, value: Any, keep_values: bool = True) -> None:
        self.keep_values = keep_values
        self.objects: list[ObjectState] = []
        self.tensors: list[TensorState] = []
        self.others: list[ContainerState | ConfigState | TokenizerState] = []
        self._seen: set[int] = set()
        self._collect(value, top=True)
        self._mark_shared_storage()
        self.check = Unchanged([], [], [])
        if keep_values:
            self.check = Unchanged(
                [state.obj for state in self.objects], self._containers(), self.tensors
            )

    def _containers(self) -> list[Any]:
        found = [c.container for s in self.objects for c in (s.attrs, *s.containers)]
        found += [s.container for s in self.others if isinstance(s, ContainerState)]
        found += [c.container for t in self.tensors for _, (_, c) in t.hooks if c is not None]
        return found

    @property
    def nbytes(self) -> int:
        return sum(t.nbytes for t in self.tensors)

    def restore(self) -> int:
        """Put everything back; the number of things that had changed. Raises CannotRestore."""
        by_value = [s for s in self.others if not isinstance(s, ContainerState)]
        if self.check.holds():
            return sum(state.restore() for state in by_value)
        count = 0
        for state in [*self.objects, *self.others]:
            count += state.restore()
        try:
            for tensor in self.tensors:
                count += tensor.restore()
        finally:
            close_files()
        self.check.rebase()
        return count

    def _collect(self, value: Any, top: bool = False) -> None:
        if id(value) in self._seen:
            return
        self._seen.add(id(value))
        torch = sys.modules.get("torch")
        if torch is not None and isinstance(value, torch.nn.Module):
            self._module(value)
        elif torch is not None and isinstance(value, torch.Tensor):
            self.tensors.append(TensorState(value, self.keep_values))
        elif _is_config(value):
            self.others.append(ConfigState(value))
        elif type(value) in _SHALLOW or isinstance(value, tuple):
            self._container(value)
        elif top and hasattr(value, "__dict__") and not isinstance(value, type):
            self.objects.append(ObjectState(value))
            if _is_tokenizer(value):
                self.others.append(TokenizerState(value))

    def _container(self, value: Any) -> None:
        if not isinstance(value, tuple):
            self.others.append(ContainerState(value))
        items = value.values() if isinstance(value, dict) else value
        if not isinstance(value, set):
            for item in items:
                self._collect(item, top=True)

    def _module(self, root: Any) -> None:
        files = file_copies(root) if self.keep_values else {}
        pending = [root]
        while pending:
            module = pending.pop()
            self.objects.append(ObjectState(module))
            for value in module.__dict__.values():
                if _is_config(value) and id(value) not in self._seen:
                    self._seen.add(id(value))
                    self.others.append(ConfigState(value))
            for tensor in [*module._parameters.values(), *module._buffers.values()]:
                if tensor is not None and id(tensor) not in self._seen:
                    self._seen.add(id(tensor))
                    state = TensorState(tensor, self.keep_values, files.get(id(tensor)))
                    self.tensors.append(state)
            for child in module._modules.values():
                if child is not None and id(child) not in self._seen:
                    self._seen.add(id(child))
                    pending.append(child)

    def _mark_shared_storage(self) -> None:
        owners: dict[int, TensorState] = {}
        for state in self.tensors:
            try:
                ptr = state.tensor.untyped_storage().data_ptr()
            except (RuntimeError, NotImplementedError):
                continue
            if ptr and ptr in owners:
                state.shared = owners[ptr].shared = True
            owners.setdefault(ptr, state)

    def adopt(self, changed: list[Any]) -> None:
        """Objects a code edit was applied to: how they are now is how they are restored."""
        ids = {id(obj) for obj in changed}
        for state in self.objects:
            if id(state.obj) in ids:
                state.adopt()
        self.check = Unchanged([s.obj for s in self.objects], self._containers(), self.tensors)


def take_snapshot(value: Any, keep_values: bool = True) -> Snapshot | str:
    """The value's snapshot, or why it cannot have one."""
    try:
        return Snapshot(value, keep_values)
    except CannotRestore as exc:
        return str(exc)
    except Exception as exc:  # an object of a kind we do not know how to copy
        return f"taking its snapshot failed: {type(exc).__name__}: {exc}"


def restore(snapshot: Snapshot | str) -> str | None:
    """Put a warm value back as built; None, or why it could not be."""
    if isinstance(snapshot, str):
        return f"it cannot be kept pristine ({snapshot})"
    try:
        snapshot.restore()
    except CannotRestore as exc:
        return f"it could not be put back as its factory built it: {exc}"
    except Exception as exc:
        return f"putting it back failed ({type(exc).__name__}: {exc})"
    return None


def live_objects(value: Any) -> list[Any]:
    """The value and, for modules, every submodule; the items of containers."""
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(value, torch.nn.Module):
        return list(value.modules())
    if isinstance(value, dict):
        return [obj for item in value.values() for obj in live_objects(item)]
    if isinstance(value, (list, tuple)):
        return [obj for item in value for obj in live_objects(item)]
    return [value] if hasattr(value, "__dict__") and not isinstance(value, type) else []
