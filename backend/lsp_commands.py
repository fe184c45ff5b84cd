"""The language server's ``workspace/executeCommand`` commands (run, debug, cancel, status,
release) and run on save: each one request (or sync-then-run) to the daemon."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

from .client import DaemonClient
from .lsp_view import entry_line
from .protocol import new_id
from .sync_client import sync_then_run

if TYPE_CHECKING:
    from .lsp import HotswapServer

DEBUG_READY_TIMEOUT = 120.0  # a first debug run may load its models before debugpy listens
COMMANDS = ["run", "debug", "cancel", "status", "release"]


class CommandError(Exception):
    """A command the server cannot do as asked; the message says what to send instead."""


class Commands:
    """``hotswap.<name>`` for each of COMMANDS, performed on the daemon link's thread."""

    def __init__(self, server: HotswapServer) -> None:
        self.server = server
        self.last_entry: Path | None = None  # what a save reruns when it is no entry itself
        self.last_touched: Path | None = None  # the entry script last opened or edited

    def register(self) -> None:
        for name in COMMANDS:
            self.server.command(f"hotswap.{name}")(_handler(getattr(self, name)))

    async def _call(self, fn: Any) -> Any:
        link = self.server.link
        if link is None:
            raise CommandError("the language server is not initialized yet")
        return await asyncio.wrap_future(link.call(fn))

    async def run(self, *args: Any) -> dict[str, Any]:
        """``hotswap.run [file [args]]``: run a script (if none is named, the last one run,
        else the entry script last opened or edited)."""
        request = self._run_request(args, debug=False)
        return dict(await self._call(lambda c: self._start(c, request)))

    async def debug(self, *args: Any) -> dict[str, Any]:
        """``hotswap.debug [file [args]]``: run under debugpy; returns where a DAP client
        attaches (``host``, ``port``, ``path_mappings``) once debugpy listens."""
        request = self._run_request(args, debug=True)
        return dict(await self._call(lambda c: self._start_debug(c, request)))

    async def cancel(self, *args: Any) -> dict[str, Any]:
        """``hotswap.cancel [run_id]``: that run, or every active run of any client."""

        def cancel(client: DaemonClient) -> dict[str, Any]:
            run_ids = [a for a in args if isinstance(a, str)]
            if not run_ids:
                runs = client.request("status")["body"]["runs"]
                run_ids = [r["run_id"] for r in runs if r["state"] != "finished"]
            cancelled = []
            for run_id in run_ids:
                cancelled += client.request("cancel", {"run_id": run_id})["body"]["cancelled"]
            return {"cancelled": cancelled}

        return dict(await self._call(cancel))

    async def status(self, *args: Any) -> dict[str, Any]:
        """``hotswap.status``: the daemon's status reply (workers, warm objects, runs)."""
        body = await self._call(lambda c: c.request("status")["body"])
        return {k: v for k, v in body.items() if k != "status"}

    async def release(self, *args: Any) -> dict[str, Any]:
        """``hotswap.release [keys]``: drop those warm objects (all of them without keys)."""
        keys = args[0] if args and isinstance(args[0], list) else None
        body = await self._call(lambda c: c.request("release", {"keys": keys})["body"])
        return {"released": body["released"]}

    def touched(self, path: Path, source: str) -> None:
        """Note an opened or edited file: a command without a file runs the last entry seen
        (Helix's `:lsp-workspace-command` sends no arguments)."""
        if entry_line(source, path, self.server.entry_scripts()) is not None:
            self.last_touched = path

    async def rerun_on_save(self, saved: Path) -> None:
        """A save reruns the saved script if it is an entry, else the last script run here."""
        source = saved.read_text(errors="replace") if saved.is_file() else ""
        is_entry = entry_line(source, saved, self.server.entry_scripts()) is not None
        entry = saved if is_entry else self.last_entry
        if entry is not None and entry.is_relative_to(self.server.root):
            await self.run(str(entry))

    # -- helpers --------------------------------------------------------------------------

    def _run_request(self, args: tuple[Any, ...], debug: bool) -> dict[str, Any]:
        named = _path(args[0]) if args and isinstance(args[0], str) else None
        entry = named or self.last_entry or self.last_touched
        if entry is None:
            raise CommandError(
                "name the script to run (hotswap.run takes its path or URI), or open it first"
            )
        script_args = args[1] if len(args) > 1 and isinstance(args[1], list) else []
        self.last_entry = entry
        return {
            "run_id": new_id(),
            "entry": str(entry),
            "args": [str(a) for a in script_args],
            "entry_kind": "path",
            "cwd": str(self.server.root),
            "env": dict(os.environ),
            "debug": debug,
            "wait": True,
            "just_my_code": True,
        }

    def _start(self, client: DaemonClient, request: dict[str, Any]) -> dict[str, Any]:
        reply = sync_then_run(client, self.server.root, request)
        return {"run_id": reply["run_id"], "queued": reply["queued"]}

    def _start_debug(self, client: DaemonClient, request: dict[str, Any]) -> dict[str, Any]:
        run_id = self._start(client, request)["run_id"]
        assert self.server.link is not None
        msg = self.server.link.wait_for(
            client,
            lambda m: (
                m["type"] in ("debug_ready", "run_finished") and m["body"]["run_id"] == run_id
            ),
            DEBUG_READY_TIMEOUT,
        )
        if msg["type"] == "run_finished":
            self.server.link.on_event(msg)
            raise CommandError(f"the run ended before debugpy listened: {msg['body']['message']}")
        ready = msg["body"]
        keep = ("host", "port", "path_mappings", "just_my_code")
        # attached: a debugger that stayed attached since an earlier run debugs this one, and
        # needs no new attach (a new session would replace it, stopping this run).
        attached = bool(ready.get("attached", False))
        return {"run_id": run_id, **{k: ready[k] for k in keep}, "attached": attached}


def _handler(method: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """What pygls calls: it passes the server as ``ls``, then the command's arguments."""

    async def handler(ls: Any, *args: Any) -> Any:
        return await method(*args)

    return handler


def _path(value: str) -> Path:
    """A file named by a URI (``file:///...``) or a path."""
    if value.startswith("file:"):
        return Path(unquote(urlparse(value).path))
    return Path(value).expanduser().resolve()
