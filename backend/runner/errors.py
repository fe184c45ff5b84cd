"""How a run's uncaught errors are printed and described: as the interpreter prints them, with
hotswap's own frames cut out; the described frames show mirror paths as the client's."""

from __future__ import annotations

import os
import sys
import traceback
import types
from typing import Any

from ..paths import HOTSWAP_DIR, PathMap, map_prefix


def without_runner_frames(tb: types.TracebackType | None) -> types.TracebackType | None:
    """The traceback with hotswap's own frames taken out (user frames keep their order).

    A cancel at a breakpoint raises in the debugger's wait loop, which runs in the user's
    frame's trace call: the traceback ends where the debugger's frames begin, and that user
    frame, listed twice, is shown once.
    """
    kept: list[types.TracebackType] = []
    while tb is not None and not _in_debugger(tb.tb_frame.f_code.co_filename):
        ours = tb.tb_frame.f_code.co_filename.startswith(HOTSWAP_DIR + os.sep)
        if not ours and not (kept and kept[-1].tb_frame is tb.tb_frame):
            kept.append(tb)
        tb = tb.tb_next
    rebuilt: types.TracebackType | None = None
    for item in reversed(kept):
        rebuilt = types.TracebackType(rebuilt, item.tb_frame, item.tb_lasti, item.tb_lineno)
    return rebuilt


def _in_debugger(filename: str) -> bool:
    debugpy = sys.modules.get("debugpy")  # only a debug run imports it
    if debugpy is None or not debugpy.__file__:
        return False
    return filename.startswith((os.path.dirname(debugpy.__file__) + os.sep, "_pydevd_bundle"))


def _to_client(path: str, path_map: PathMap | None) -> str:
    return map_prefix(path, *path_map) if path_map else path


def describe_error(exc: BaseException, path_map: PathMap | None = None) -> dict[str, Any]:
    cls = type(exc)
    name = (
        cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
    )
    frames = [
        {"file": _to_client(f.filename, path_map), "line": f.lineno or 0, "function": f.name}
        for f in traceback.extract_tb(exc.__traceback__)
    ]
    if isinstance(exc, SyntaxError) and exc.filename:
        file = _to_client(exc.filename, path_map)
        frames.append({"file": file, "line": exc.lineno or 0, "function": "<module>"})
    return {"type": name, "message": str(exc), "frames": frames}


def print_uncaught(exc: BaseException, path_map: PathMap | None = None) -> dict[str, Any]:
    """Print as the interpreter prints an uncaught exception, through sys.excepthook. Mirror
    paths in it are mapped by the daemon, as in everything the run writes on stderr."""
    exc = exc.with_traceback(without_runner_frames(exc.__traceback__))
    try:
        sys.excepthook(type(exc), exc, exc.__traceback__)
    except BaseException as hook_error:
        print("Error in sys.excepthook:", file=sys.stderr)
        sys.__excepthook__(type(hook_error), hook_error, hook_error.__traceback__)
        print("\nOriginal exception was:", file=sys.stderr)
        sys.__excepthook__(type(exc), exc, exc.__traceback__)
    return describe_error(exc, path_map)


def report_atexit_error(func: Any, exc: BaseException) -> None:
    """As python reports it (an unraisable exception, since 3.10)."""
    exc = exc.with_traceback(without_runner_frames(exc.__traceback__))
    print(f"Exception ignored in atexit callback: {func!r}", file=sys.stderr)
    traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
