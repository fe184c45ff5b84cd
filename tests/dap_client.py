"""A small Debug Adapter Protocol client for the tests: what VS Code or nvim-dap says to debugpy.

DAP over a TCP socket: each message is JSON after a ``Content-Length`` header. Requests carry a
``seq`` that their response names in ``request_seq``; events arrive any time and are queued here.
debugpy answers ``attach`` only after ``configurationDone``, so ``attach`` sends without waiting
and ``session`` runs the whole handshake: initialize, attach, (initialized event),
setBreakpoints..., configurationDone.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

TIMEOUT = 30.0

Message = dict[str, Any]


class DapError(Exception):
    """A request failed, or no answer came in time."""


class DapClient:
    def __init__(self, host: str, port: int, timeout: float = TIMEOUT) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.settimeout(None)
        self.reader = self.sock.makefile("rb")
        self.seq = itertools.count(1)
        self.responses: dict[int, Message] = {}
        self.events: list[Message] = []
        self.closed = False
        self.changed = threading.Condition()
        self.write_lock = threading.Lock()
        threading.Thread(target=self._read_all, name="dap-reader", daemon=True).start()

    # -- the wire ------------------------------------------------------------------------

    def _read_message(self) -> Message | None:
        length = None
        while (line := self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("ascii").partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        if not line or length is None:
            return None
        message: Message = json.loads(self.reader.read(length))
        return message

    def _read_all(self) -> None:
        try:
            while (message := self._read_message()) is not None:
                with self.changed:
                    if message["type"] == "response":
                        self.responses[message["request_seq"]] = message
                    elif message["type"] == "event":
                        self.events.append(message)
                    self.changed.notify_all()
        except (OSError, ValueError):
            pass
        with self.changed:
            self.closed = True
            self.changed.notify_all()

    def send(self, command: str, arguments: dict[str, Any] | None = None) -> int:
        """Send a request; its seq, for ``response``."""
        seq = next(self.seq)
        message = {"seq": seq, "type": "request", "command": command}
        if arguments is not None:
            message["arguments"] = arguments
        data = json.dumps(message).encode()
        with self.write_lock:
            self.sock.sendall(b"Content-Length: %d\r\n\r\n%s" % (len(data), data))
        return seq

    def _wait_for(self, found: Callable[[], Any], what: str, timeout: float) -> Any:
        deadline = time.monotonic() + timeout
        with self.changed:
            while (result := found()) is None:
                left = deadline - time.monotonic()
                if self.closed or left <= 0:
                    state = "the connection closed" if self.closed else f"{timeout:g}s passed"
                    raise DapError(f"no {what}: {state}; events so far: {self.event_names()}")
                self.changed.wait(left)
            return result

    def response(self, seq: int, timeout: float = TIMEOUT) -> dict[str, Any]:
        """The body of the response to request ``seq``; DapError if it failed."""
        reply: Message = self._wait_for(
            lambda: self.responses.pop(seq, None), f"response to request {seq}", timeout
        )
        if not reply["success"]:
            raise DapError(f"{reply['command']} failed: {reply.get('message')} {reply.get('body')}")
        return dict(reply.get("body") or {})

    def request(
        self, command: str, arguments: dict[str, Any] | None = None, timeout: float = TIMEOUT
    ) -> dict[str, Any]:
        return self.response(self.send(command, arguments), timeout)

    def wait_event(
        self,
        name: str,
        timeout: float = TIMEOUT,
        where: Callable[[dict[str, Any]], bool] = lambda body: True,
    ) -> dict[str, Any]:
        """The body of the oldest unclaimed event ``name`` (matching ``where``), taken off."""

        def take() -> dict[str, Any] | None:
            for event in self.events:
                body = dict(event.get("body") or {})
                if event["event"] == name and where(body):
                    self.events.remove(event)
                    return body
            return None

        body: dict[str, Any] = self._wait_for(take, f"{name!r} event", timeout)
        return body

    def event_names(self) -> list[str]:
        return [e["event"] for e in self.events]

    def close(self) -> None:
        """Drop the connection (as a crashed editor would); the reader's file would keep an
        unshut socket open."""
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()

    # -- the requests a debugging session uses -------------------------------------------

    def initialize(self) -> dict[str, Any]:
        return self.request(
            "initialize",
            {
                "clientID": "hotswap-tests",
                "adapterID": "debugpy",
                "pathFormat": "path",
                "linesStartAt1": True,
                "columnsStartAt1": True,
                "supportsVariableType": True,
            },
        )

    def attach(
        self, just_my_code: bool = True, path_mappings: list[dict[str, str]] | None = None
    ) -> int:
        """Send ``attach`` as VS Code's debugpy attach configuration would; its seq (debugpy
        answers it after configurationDone)."""
        return self.send(
            "attach",
            {
                "name": "hotswap tests",
                "type": "debugpy",
                "request": "attach",
                "justMyCode": just_my_code,
                "pathMappings": path_mappings or [],
                "subProcess": False,
                "redirectOutput": False,
                "showReturnValue": True,
            },
        )

    def set_breakpoints(self, path: str, lines: list[int]) -> list[dict[str, Any]]:
        body = self.request(
            "setBreakpoints",
            {
                "source": {"path": path},
                "breakpoints": [{"line": line} for line in lines],
                "lines": lines,
            },
        )
        return list(body["breakpoints"])

    def configuration_done(self) -> None:
        self.request("configurationDone")

    def session(
        self,
        breakpoints: dict[str, list[int]] | None = None,
        just_my_code: bool = True,
        path_mappings: list[dict[str, str]] | None = None,
    ) -> None:
        """The attach handshake, breakpoints set before the debuggee is let go."""
        self.initialize()
        attached = self.attach(just_my_code, path_mappings)
        self.wait_event("initialized")
        for path, lines in (breakpoints or {}).items():
            self.set_breakpoints(path, lines)
        self.configuration_done()
        self.response(attached)

    def threads(self) -> list[dict[str, Any]]:
        return list(self.request("threads")["threads"])

    def stack_trace(self, thread_id: int) -> list[dict[str, Any]]:
        return list(self.request("stackTrace", {"threadId": thread_id})["stackFrames"])

    def scopes(self, frame_id: int) -> list[dict[str, Any]]:
        return list(self.request("scopes", {"frameId": frame_id})["scopes"])

    def variables(self, reference: int) -> dict[str, str]:
        """Variable name -> the debugger's rendering of its value (``repr``, mostly)."""
        body = self.request("variables", {"variablesReference": reference})
        return {v["name"]: v["value"] for v in body["variables"]}

    def locals(self, frame_id: int) -> dict[str, str]:
        """A frame's local variables, without debugpy's groups ("special variables": dunders,
        "function variables"...)."""
        scope = next(s for s in self.scopes(frame_id) if s["name"] == "Locals")
        found = self.variables(scope["variablesReference"])
        return {name: value for name, value in found.items() if not name.endswith(" variables")}

    def continue_(self, thread_id: int) -> None:
        self.request("continue", {"threadId": thread_id})

    def disconnect(self, terminate: bool = False) -> None:
        """Detach (the debuggee runs on, unless ``terminate``)."""
        self.request("disconnect", {"terminateDebuggee": terminate, "restart": False})
        self.close()
