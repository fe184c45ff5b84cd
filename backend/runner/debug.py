"""debugpy in the runner worker: listen once per process, announce, wait for a debugger.

debugpy allows one ``listen()`` per process, so the worker listens lazily on its first debug run
(or at start when configured) and keeps the port; debuggers attach and detach in turn.
"""

from __future__ import annotations

import json
import os
import sys
import threading

HOTSWAP_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_address: tuple[str, int] | None = None


class DebuggerTimeout(Exception):
    pass


def listening_address() -> tuple[str, int] | None:
    return _address


def ensure_listening() -> tuple[str, int]:
    """Start debugpy's DAP server on loopback (once); return its (host, port)."""
    global _address
    if _address is None:
        # The runner's frames are not the user's: pydevd reads this when listening starts.
        os.environ["PYDEVD_FILTERS"] = json.dumps({f"{HOTSWAP_DIR}/**": True})
        os.environ["PYDEVD_DISABLE_FILE_VALIDATION"] = "1"  # we start with frozen modules off
        import debugpy

        host, port = debugpy.listen(("127.0.0.1", 0))
        _address = (str(host), int(port))
    return _address


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

    debugpy.trace_this_thread(False)
