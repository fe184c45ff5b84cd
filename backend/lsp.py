"""``hotswap lsp``: a language server (pygls, stdio) over the workspace's daemon. It shows any
client's failed runs as diagnostics, lenses to run and debug entry scripts with the last result,
and the hover of warm objects. Never imports torch: it is one more client of the daemon."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from lsprotocol import types as lsp
from pygls.lsp.server import LanguageServer

from . import __version__
from .client import DaemonClient, DaemonError
from .lsp_commands import Commands
from .lsp_daemon import DaemonLink
from .lsp_runs import RunBook
from .lsp_view import code_lenses, entry_line, warm_call_at, warm_hover
from .protocol import ProtocolError
from .workspace import find_workspace

log = logging.getLogger("hotswap.lsp")


class HotswapServer(LanguageServer):
    """The server's state: the workspace, what its daemon said, and the link to it."""

    def __init__(self, workspace: str | None = None) -> None:
        super().__init__("hotswap", __version__)
        self.workspace_option = workspace  # `hotswap lsp --workspace`, over what the editor says
        self.root = Path.cwd()
        self.options: dict[str, Any] = {}
        self.book = RunBook(self.root, self.line_text)
        self.warm: dict[int, list[dict[str, Any]]] = {}
        self.connected = False
        self.link: DaemonLink | None = None
        self.commands_ = Commands(self)
        self.progress_tokens: dict[str, str | None] = {}  # run_id -> token once begun
        self.loop: asyncio.AbstractEventLoop | None = None
        self.caught_up = False

    # -- the daemon's side ----------------------------------------------------------------

    def start_link(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.link = DaemonLink(self.root, self._from_thread, self._connected)
        self.link.start()
        if self.options.get("startDaemon", True):  # VS Code's extension starts it on first run
            self.link.call(lambda client: None)  # start the daemon now, as the CLI would

    def _from_thread(self, msg: dict[str, Any]) -> None:
        assert self.loop is not None
        self.loop.call_soon_threadsafe(self.on_daemon_event, msg)

    def _connected(self, client: DaemonClient) -> None:
        status = client.request("status")["body"]
        self._from_thread({"type": "connected", "body": status})
        if not self.caught_up:  # runs that ended before this server started, once
            self.caught_up = True
            with contextlib.suppress(ProtocolError, DaemonError):  # a daemon without `runs`
                runs = client.request("runs")["body"]["runs"]
                self._from_thread({"type": "past_runs", "body": {"runs": runs}})

    def on_daemon_event(self, msg: dict[str, Any]) -> None:
        handler = getattr(self, f"on_{msg['type']}", None)
        if handler is not None:
            try:
                handler(msg["body"])
            except Exception:  # one odd event must not stop the server
                log.exception("handling %s failed", msg["type"])

    def on_connected(self, status: dict[str, Any]) -> None:
        self.connected = True
        self.warm = {w["index"]: w["warm"] for w in status["workers"]}

    def on_disconnected(self, body: dict[str, Any]) -> None:
        self.connected, self.warm = False, {}  # what a stopped daemon held is gone

    def on_run_started(self, body: dict[str, Any]) -> None:
        self.book.started(body)
        if not body["warm_keys"]:
            self.begin_progress(body["run_id"], body["entry"])
        self.refresh_lenses()

    def on_run_finished(self, body: dict[str, Any]) -> None:
        entry, files = self.book.finished(body)
        log.info("run %s of %s: %s", body["run_id"], entry or "?", body["reason"])
        for file in files:
            self.publish(file)
        self.end_progress(body["run_id"])
        self.refresh_lenses()

    def on_past_runs(self, body: dict[str, Any]) -> None:
        """Replay the kept runs, oldest first: each entry's newest failure shows, unless a later
        run of it succeeded."""
        files: set[Path] = set()
        for record in reversed(body["runs"]):
            if record["state"] == "finished" and record["exit_code"] is not None:
                self.book.started(record)
                files |= self.book.finished(record)[1]
        for file in files:
            self.publish(file)
        self.refresh_lenses()

    def on_warm_changed(self, body: dict[str, Any]) -> None:
        self.warm[body["worker"]] = body["warm"]
        for run_id, token in self.progress_tokens.items():
            keys = ", ".join(w["key"] for w in body["warm"])
            if token is not None and keys:
                message = f"warm: {keys}"
                self.work_done_progress.report(token, lsp.WorkDoneProgressReport(message=message))
                log.debug("run %s: %s", run_id, message)

    def on_worker_restarted(self, body: dict[str, Any]) -> None:
        self.warm[body["worker"]] = []

    def on_stream(self, body: dict[str, Any]) -> None:
        text = body["data"].decode(errors="replace").rstrip("\n")
        if text:  # the output of a run this server started: the editor's log shows it
            self.window_log_message(lsp.LogMessageParams(lsp.MessageType.Log, text))

    # -- what the editor sees -------------------------------------------------------------

    def publish(self, file: Path) -> None:
        diagnostics = self.book.diagnostics(file)
        params = lsp.PublishDiagnosticsParams(uri=file.as_uri(), diagnostics=diagnostics)
        self.text_document_publish_diagnostics(params)

    def refresh_lenses(self) -> None:
        workspace = self.client_capabilities.workspace
        lenses = workspace.code_lens if workspace else None
        if lenses is not None and lenses.refresh_support:
            self.workspace_code_lens_refresh(None)

    def begin_progress(self, run_id: str, entry: str) -> None:
        window = self.client_capabilities.window
        if window is None or not window.work_done_progress:
            return
        self.progress_tokens[run_id] = None
        token = f"hotswap-first-load-{run_id}"

        def created(*_: object) -> None:
            if run_id not in self.progress_tokens:
                return  # the run ended before the editor answered
            self.progress_tokens[run_id] = token
            title = f"hotswap: first load of {Path(entry).name}"
            message = "no warm objects yet: this run builds them, the next ones reuse them"
            begin = lsp.WorkDoneProgressBegin(title=title, message=message)
            self.work_done_progress.begin(token, begin)

        self.work_done_progress.create(token, created)

    def end_progress(self, run_id: str) -> None:
        token = self.progress_tokens.pop(run_id, None)
        if token is not None:
            self.work_done_progress.end(token, lsp.WorkDoneProgressEnd(message="done"))

    def line_text(self, path: Path, line: int) -> str:
        document = self.workspace.text_documents.get(path.as_uri())
        try:
            lines = document.lines if document else path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return lines[line].rstrip("\r\n") if 0 <= line < len(lines) else ""

    def entry_scripts(self) -> set[Path]:
        entry = self.options.get("entry")
        return {(self.root / entry).resolve()} if isinstance(entry, str) and entry else set()


def uri_path(uri: str) -> Path:
    return Path(unquote(urlparse(uri).path))


def build_server(workspace: str | None = None) -> HotswapServer:
    """A server with its features and commands registered (none is built at import)."""
    ls = HotswapServer(workspace)
    ls.feature(lsp.INITIALIZE)(initialize)
    ls.feature(lsp.INITIALIZED)(lambda ls, params: ls.start_link())
    ls.feature(lsp.SHUTDOWN)(lambda ls, params: ls.link and ls.link.stop())
    ls.feature(lsp.TEXT_DOCUMENT_DID_OPEN)(did_open)
    ls.feature(lsp.TEXT_DOCUMENT_DID_CHANGE)(did_change)
    ls.feature(lsp.TEXT_DOCUMENT_DID_SAVE)(did_save)
    ls.feature(lsp.TEXT_DOCUMENT_CODE_LENS)(code_lens)
    ls.feature(lsp.TEXT_DOCUMENT_HOVER)(hover)
    return ls


def initialize(ls: HotswapServer, params: lsp.InitializeParams) -> None:
    folders = params.workspace_folders or []
    start = uri_path(folders[0].uri) if folders else None
    start = start or (uri_path(params.root_uri) if params.root_uri else None)
    ls.root = find_workspace(ls.workspace_option, str(start) if start else None).resolve()
    ls.book.root = ls.root
    options = params.initialization_options
    ls.options = dict(options) if isinstance(options, dict) else {}
    if ls.options.get("executeCommands", True):  # VS Code's extension has its own hotswap.*
        ls.commands_.register()


def did_open(ls: HotswapServer, params: lsp.DidOpenTextDocumentParams) -> None:
    ls.commands_.touched(uri_path(params.text_document.uri), params.text_document.text)


def did_change(ls: HotswapServer, params: lsp.DidChangeTextDocumentParams) -> None:
    path = uri_path(params.text_document.uri)
    ls.commands_.touched(path, ls.workspace.get_text_document(params.text_document.uri).source)
    if ls.book.edited(path):
        ls.publish(path)


async def did_save(ls: HotswapServer, params: lsp.DidSaveTextDocumentParams) -> None:
    if ls.options.get("runOnSave"):
        await ls.commands_.rerun_on_save(uri_path(params.text_document.uri))


def code_lens(ls: HotswapServer, params: lsp.CodeLensParams) -> list[lsp.CodeLens]:
    uri = params.text_document.uri
    path = uri_path(uri)
    line = entry_line(ls.workspace.get_text_document(uri).source, path, ls.entry_scripts())
    return [] if line is None else code_lenses(uri, line, ls.book.results.get(path))


def hover(ls: HotswapServer, params: lsp.HoverParams) -> lsp.Hover | None:
    position = params.position
    line = ls.line_text(uri_path(params.text_document.uri), position.line)
    call = warm_call_at(line, position.character)
    if call is None:
        return None
    text = warm_hover(call, ls.warm, ls.connected)
    span = lsp.Range(lsp.Position(position.line, call.start), lsp.Position(position.line, call.end))
    return lsp.Hover(lsp.MarkupContent(lsp.MarkupKind.Markdown, text), span)


def main(workspace: str | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="hotswap lsp: %(levelname)s %(message)s")
    logging.getLogger("pygls").setLevel(logging.WARNING)  # it logs every registration
    ls = build_server(workspace)
    ls.start_io()  # stdin/stdout carry LSP; logging goes to stderr
    if ls.link is not None:
        ls.link.stop()
    logging.shutdown()
    os._exit(0)  # pygls closed stdout; nothing is left to flush or to wait for
