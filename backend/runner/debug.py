"""debugpy in the runner worker: listen once per process, announce, wait for a debugger.

debugpy allows one ``listen()`` per process, so the worker listens lazily on its first debug run
(or at start when configured) and keeps the port; debuggers attach and detach in turn.
"""

from __future__ import annotations

import os
import runpy
import sys
import threading
from collections.abc import Callable
from typing import Any

from ..paths import HOTSWAP_DIR

_address: tuple[str, int] | None = None


class DebuggerTimeout(Exception):
    pass


def listening_address() -> tuple[str, int] | None:
    return _address


def ensure_listening(stop_run: Callable[[], None]) -> tuple[str, int]:
    """Start debugpy's DAP server on loopback (once); return its (host, port). A debugger's
    terminate calls ``stop_run`` instead of ending the process."""
    global _address
    if _address is None:
        os.environ["PYDEVD_DISABLE_FILE_VALIDATION"] = "1"  # we start with frozen modules off
        hook = sys.breakpointhook
        import debugpy

        host, port = debugpy.listen(("127.0.0.1", 0))
        # Importing debugpy installs its breakpointhook process-wide, and each run restores
        # the hooks it found: keep the plain one, so only debug runs (trace_this_run) stop.
        sys.breakpointhook = hook
        _hide_runner_frames()
        _terminate_stops_the_run(stop_run)
        stop_tracing()  # listen() traces every thread; only debug runs should be traced
        _address = (str(host), int(port))
    return _address


def _hide_runner_frames() -> None:
    """The runner's frames are not the user's: neither traced nor shown in stack traces.

    PYDEVD_FILTERS would not last: every ``attach`` replaces pydevd's exclude filters with the
    client's ``rules``. pydevd's don't-trace patterns (how debugpy hides itself) stay.
    """
    import pydevd
    from _pydevd_bundle.pydevd_api import PyDevdAPI

    py_db = pydevd.get_global_debugger()
    current = py_db.dont_trace_external_files
    # The worker starts as `python -m hotswap.runner`: runpy's frames sit under ours.
    ours = (HOTSWAP_DIR + os.sep, runpy.__file__)
    start = (*getattr(current, "start_patterns", ()), *ours)
    PyDevdAPI().set_dont_trace_start_end_patterns(
        py_db, start, getattr(current, "end_patterns", ())
    )


def _terminate_stops_the_run(stop_run: Callable[[], None]) -> None:
    """A DAP client's ``terminate``, or ``disconnect`` with ``terminateDebuggee`` (nvim-dap's
    ``dap.terminate()``, and what it sends when a new session replaces an attached one), makes
    pydevd end the process: the worker and every warm object with it. Here they stop the run,
    as a cancel does, and detach the debugger; the worker and its listener live on."""
    from _pydevd_bundle import pydevd_process_net_command_json as commands

    processor = commands.PyDevJsonCommandProcessor
    plain_disconnect = processor.on_disconnect_request

    def on_disconnect_request(self: Any, py_db: Any, request: Any) -> Any:
        arguments = request.arguments
        terminate = bool(getattr(arguments, "terminateDebuggee", False))
        if terminate:
            arguments.terminateDebuggee = False  # a plain detach: threads resume
        reply = plain_disconnect(self, py_db, request)
        if terminate:
            stop_run()
        return reply

    def on_terminate_request(self: Any, py_db: Any, request: Any) -> Any:
        # Sent on only with onTerminate: KeyboardInterrupt, which is what a cancel does.
        stop_run()
        response = commands.pydevd_base_schema.build_response(request)
        return commands.NetCommand(commands.CMD_RETURN, 0, response, is_json=True)

    processor.on_disconnect_request = on_disconnect_request
    processor.on_terminate_request = on_terminate_request


def wait_for_debugger(timeout: float) -> None:
    """Block until a debugger has attached and sent configurationDone (breakpoints set)."""
    import debugpy

    if debugpy.is_client_connected():
        return
    timer = threading.Timer(timeout, debugpy.wait_for_client.cancel)
    timer.daemon = True
    timer.start()
    try:
        debugpy.wait_for_client()
    finally:
        timer.cancel()
    if not debugpy.is_client_connected():
        raise DebuggerTimeout


def trace_this_run() -> None:
    """Re-arm tracing on the main thread (the last run's cleanup cleared it), and make
    ``breakpoint()`` stop in the attached debugger."""
    import debugpy

    debugpy.debug_this_thread()
    sys.breakpointhook = debugpy.breakpoint


def stop_tracing() -> None:
    """After a debug run: later runs without debug must not pay for tracing."""
    import debugpy
    from _pydev_bundle.pydev_monkey import undo_patch_thread_modules

    debugpy.trace_this_thread(False)
    # Or threads of later runs start traced; the next debug run patches them again.
    undo_patch_thread_modules()
    threading.settrace(None)  # type: ignore[arg-type,unused-ignore]
