"""Process-wide switches a run may flip (umask, gc, sys limits, torch's global modes, ...),
read before the run (or when their library is first imported in it) and set back after it.
"""

from __future__ import annotations

import contextlib
import gc
import itertools
import os
import random
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

Getter = Callable[[], Any]
Setter = Callable[[Any], Any]


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _gc_state() -> tuple[bool, tuple[int, ...], int, list[Any]]:
    return gc.isenabled(), gc.get_threshold(), gc.get_debug(), list(gc.callbacks)


def _set_gc(state: tuple[bool, tuple[int, ...], int, list[Any]]) -> None:
    enabled, threshold, debug, callbacks = state
    (gc.enable if enabled else gc.disable)()
    gc.set_threshold(*threshold)
    gc.set_debug(debug)
    gc.callbacks[:] = callbacks


def _process_switches() -> Iterator[tuple[str, Getter, Setter]]:
    yield "umask", _umask, os.umask
    yield "gc", _gc_state, _set_gc
    yield "switchinterval", sys.getswitchinterval, sys.setswitchinterval
    yield "dont_write_bytecode", lambda: sys.dont_write_bytecode, _set_sys("dont_write_bytecode")
    yield "threading.excepthook", lambda: threading.excepthook, _set_threading_excepthook
    yield "threading.stack_size", threading.stack_size, threading.stack_size
    if hasattr(sys, "get_int_max_str_digits"):
        yield "int_max_str_digits", sys.get_int_max_str_digits, sys.set_int_max_str_digits
    if hasattr(sys, "getdlopenflags"):
        yield "dlopenflags", sys.getdlopenflags, sys.setdlopenflags
    yield "faulthandler", _faulthandler_enabled, _set_faulthandler


def _set_sys(name: str) -> Setter:
    return lambda value: setattr(sys, name, value)


def _set_threading_excepthook(hook: Any) -> None:
    threading.excepthook = hook


def _faulthandler_enabled() -> bool:
    faulthandler = sys.modules.get("faulthandler")
    return bool(faulthandler and faulthandler.is_enabled())


def _set_faulthandler(enabled: bool) -> None:
    faulthandler = sys.modules.get("faulthandler")
    if faulthandler is not None and not enabled:
        faulthandler.disable()


def _torch_switches(torch: Any) -> Iterator[tuple[str, Getter, Setter]]:
    """torch's global modes. Attributes are looked up when called, so a torch that lacks one
    only loses that switch."""
    printing = torch._tensor_str.PRINT_OPTS
    cudnn, matmul = torch.backends.cudnn, torch.backends.cuda.matmul
    yield "grad", lambda: torch.is_grad_enabled(), lambda v: torch.set_grad_enabled(v)
    yield "dtype", lambda: torch.get_default_dtype(), lambda v: torch.set_default_dtype(v)
    yield "threads", lambda: torch.get_num_threads(), lambda v: torch.set_num_threads(v)
    yield (
        "deterministic",
        lambda: (
            torch.are_deterministic_algorithms_enabled(),
            torch.is_deterministic_algorithms_warn_only_enabled(),
        ),
        lambda v: torch.use_deterministic_algorithms(v[0], warn_only=v[1]),
    )
    yield (
        "matmul_precision",
        lambda: torch.get_float32_matmul_precision(),
        lambda v: torch.set_float32_matmul_precision(v),
    )
    yield (
        "anomaly",
        lambda: (torch.is_anomaly_enabled(), torch.is_anomaly_check_nan_enabled()),
        lambda v: torch.autograd.set_detect_anomaly(*v),
    )
    yield "print_options", lambda: dict(vars(printing)), lambda v: vars(printing).update(v)
    yield "warn_always", lambda: torch.is_warn_always_enabled(), lambda v: torch.set_warn_always(v)
    yield "default_device", lambda: str(torch.get_default_device()), _torch_default_device(torch)
    for name in ("benchmark", "deterministic", "enabled", "allow_tf32"):
        yield f"cudnn.{name}", _getattr(cudnn, name), _setattr(cudnn, name)
    yield "cuda.matmul.allow_tf32", _getattr(matmul, "allow_tf32"), _setattr(matmul, "allow_tf32")


def _torch_default_device(torch: Any) -> Setter:
    # None, not "cpu": a fresh torch has no default-device mode installed at all.
    return lambda v: torch.set_default_device(None if v == "cpu" else v)


def _getattr(obj: Any, name: str) -> Getter:
    return lambda: getattr(obj, name)


def _setattr(obj: Any, name: str) -> Setter:
    return lambda value: setattr(obj, name, value)


def _multiprocessing_switches(mp: Any) -> Iterator[tuple[str, Getter, Setter]]:
    """The start method a script sets once (``set_start_method``), as in a fresh process."""
    context = mp.context._default_context
    yield "start_method", lambda: context._actual_context, _setattr(context, "_actual_context")


def _numpy_switches(numpy: Any) -> Iterator[tuple[str, Getter, Setter]]:
    yield (
        "numpy.printoptions",
        lambda: numpy.get_printoptions(),
        lambda v: numpy.set_printoptions(**v),
    )
    yield "numpy.errstate", lambda: numpy.geterr(), lambda v: numpy.seterr(**v)


def _socket_switches(socket: Any) -> Iterator[tuple[str, Getter, Setter]]:
    yield "socket.timeout", socket.getdefaulttimeout, socket.setdefaulttimeout


LIBRARY_SWITCHES: dict[str, Callable[[Any], Iterator[tuple[str, Getter, Setter]]]] = {
    "torch": _torch_switches,
    "numpy": _numpy_switches,
    "multiprocessing": _multiprocessing_switches,
    "socket": _socket_switches,
}


class Switches:
    """Values of every switch before the run; :meth:`restore` sets back the changed ones."""

    def __init__(self) -> None:
        self.saved: list[tuple[str, Any, Getter, Setter]] = []

    def capture(self) -> None:
        self.saved = []
        self._read(_process_switches())
        for name, switches in LIBRARY_SWITCHES.items():
            if name in sys.modules:
                self._read(switches(sys.modules[name]))

    def library_imported(self, name: str) -> Callable[[], None]:
        """For a library first imported during the run: its switches as the import left them."""
        return lambda: self._read(LIBRARY_SWITCHES[name](sys.modules[name]))

    def _read(self, switches: Iterator[tuple[str, Getter, Setter]]) -> None:
        with contextlib.suppress(Exception):  # a library without its usual layout: skip it
            for name, get, put in switches:
                with contextlib.suppress(Exception):  # an older version without this switch
                    self.saved.append((name, get(), get, put))

    def restore(self) -> list[str]:
        """Set back what changed; return the names of switches that would not go back."""
        failed = []
        for name, value, get, put in self.saved:
            try:
                if get() != value:
                    put(value)
            except Exception:
                failed.append(name)
        return failed


def fresh_seeds() -> None:
    """Random generators start from fresh entropy, as in a new interpreter."""
    random.seed()
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        with contextlib.suppress(Exception):
            numpy.random.seed()
    torch = sys.modules.get("torch")
    if torch is not None:
        with contextlib.suppress(Exception):
            torch.seed()


def fresh_thread_names() -> None:
    """A run's first unnamed thread is Thread-1, as in a new interpreter."""
    threading._counter = itertools.count(1).__next__  # type: ignore[attr-defined]
