"""The worker, for each run, as a fresh ``python`` would be: what is read before a run and put
back after it, beyond the interpreter state of process_state.py. Its cost is measured per run."""

from __future__ import annotations

import os
import sys
import threading
import time
import types
from collections.abc import Callable, Iterable

from .leftovers import reap_children, stop_daemon_threads
from .patches import LibraryPatches
from .stdio import WorkerPipes
from .switches import LIBRARY_SWITCHES, Switches, fresh_seeds, fresh_thread_names


class Isolation:
    def __init__(self, is_user_module: Callable[[types.ModuleType], bool]) -> None:
        self.pipes = WorkerPipes()
        self.patches = LibraryPatches(is_user_module)
        self.patches.install()
        self.switches = Switches()
        self.seconds = 0.0  # the last run's cost of isolation (bench/run.py reports it)

    def before_run(self, is_user_module: Callable[[types.ModuleType], bool]) -> None:
        started = time.perf_counter()
        self.patches.is_user_module = is_user_module
        self.patches.catch_up()
        self.switches.capture()
        self.patches.on_import = {
            name: self.switches.library_imported(name)
            for name in LIBRARY_SWITCHES
            if name not in sys.modules
        }
        fresh_seeds()
        fresh_thread_names()
        self.seconds = time.perf_counter() - started

    def end_threads(
        self, known: Iterable[threading.Thread], is_user_file: Callable[[str], bool]
    ) -> list[str]:
        """The run's daemon threads, stopped as the interpreter's exit would end them."""
        return [
            f"hotswap: the run's daemon thread {name!r} did not stop (blocked in a call that "
            "Python cannot interrupt, or catching SystemExit); it ends at its next Python line"
            for name in stop_daemon_threads(known, is_user_file)
        ]

    def undo_patches(self) -> None:
        """Before any other code of ours runs after the script: names it rebound in builtins
        and library modules (``os.path.join``, ``len``) are its own again."""
        started = time.perf_counter()
        self.patches.undo_builtins()
        self.patches.on_import = {}
        self.patches.undo()
        self.seconds += time.perf_counter() - started

    def after_run(self) -> tuple[list[str], str | None]:
        """Put the rest back; return (notes for the run's output, reason to replace the
        worker or None)."""
        started = time.perf_counter()
        broken = self.pipes.put_back()
        notes = [
            f"hotswap: could not put back {name} after the run; restart with `hotswap stop`"
            for name in self.switches.restore()
        ]
        reap_children()
        self.seconds += time.perf_counter() - started
        _log_cost(self.seconds)
        return notes, broken


_COST_LOG = os.environ.get("HOTSWAP_ISOLATION_LOG")  # bench/run.py: one line per run, in ms


def _log_cost(seconds: float) -> None:
    if _COST_LOG:
        with open(_COST_LOG, "a") as log:
            log.write(f"{seconds * 1e3:.3f}\n")


def write_notes(notes: list[str]) -> None:
    """Straight to fd 2 (the daemon's pipe again): the run's own streams are gone by now."""
    for note in notes:
        try:
            os.write(2, f"{note}\n".encode())
        except OSError:
            return
