"""Level 3: `hotswap lsp` driven by a real LSP client (pytest-lsp) against a real daemon, with
runs started by the CLI and by the server's own commands."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import HOTSWAP, Workspace, base_env, following
from dap_client import DapClient
from lsprotocol import types as lsp
from pytest_lsp import ClientServerConfig, LanguageClient

pytestmark = pytest.mark.asyncio

LIB = """\
def check(x):
    if x > 2:
        raise ValueError(f"too big: {x}")
    return x
"""
FIXED_LIB = LIB.replace('raise ValueError(f"too big: {x}")', "return 0")
TRAIN = """\
from lib import check


def main():
    print("result", check(3))


if __name__ == "__main__":
    main()
"""


@contextlib.asynccontextmanager
async def language_server(
    ws: Workspace, options: dict[str, Any] | None = None
) -> AsyncIterator[LanguageClient]:
    """`hotswap lsp` for ``ws``, initialized as an editor with lens refresh and progress."""
    config = ClientServerConfig(server_command=[HOTSWAP, "lsp"], server_env=base_env())
    client: LanguageClient = await config.start()  # type: ignore[assignment]
    capabilities = lsp.ClientCapabilities(
        workspace=lsp.WorkspaceClientCapabilities(
            code_lens=lsp.CodeLensWorkspaceClientCapabilities(refresh_support=True)
        ),
        window=lsp.WindowClientCapabilities(work_done_progress=True),
    )
    params = lsp.InitializeParams(
        capabilities=capabilities,
        root_uri=ws.root.as_uri(),
        workspace_folders=[lsp.WorkspaceFolder(ws.root.as_uri(), "ws")],
        initialization_options=options,
    )
    refreshes: list[None] = []
    client.feature(lsp.WORKSPACE_CODE_LENS_REFRESH)(lambda ls, params: refreshes.append(None))
    client.lens_refreshes = refreshes  # type: ignore[attr-defined]
    try:
        result = await client.initialize_session(params)
        client.capabilities_of_server = result.capabilities  # type: ignore[attr-defined]
        if (options or {}).get("startDaemon", True):
            await command(client, "hotswap.status")  # the daemon is up and the server subscribed
        ws.note_daemon()
        yield client
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.shutdown_session(), 10)
        await client.stop()
        ws.note_daemon()


async def command(client: LanguageClient, name: str, *args: Any) -> Any:
    params = lsp.ExecuteCommandParams(command=name, arguments=list(args))
    return await asyncio.wait_for(client.workspace_execute_command_async(params), 120)


def cleared(client: LanguageClient, path: Path) -> bool:
    """The server published an empty list for ``path`` (pygls gives it as a tuple)."""
    return len(client.diagnostics.get(path.as_uri(), [None])) == 0


async def eventually(condition: Callable[[], Any], failure: str, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        assert time.monotonic() < deadline, failure
        await asyncio.sleep(0.05)
    return result


def open_file(client: LanguageClient, path: Path) -> None:
    item = lsp.TextDocumentItem(path.as_uri(), "python", 1, path.read_text())
    client.text_document_did_open(lsp.DidOpenTextDocumentParams(item))


async def lens_titles(client: LanguageClient, path: Path) -> list[str]:
    params = lsp.CodeLensParams(lsp.TextDocumentIdentifier(path.as_uri()))
    lenses = await client.text_document_code_lens_async(params)
    return [lens.command.title for lens in lenses or [] if lens.command]


async def cli_run(ws: Workspace, *args: str) -> Any:
    return await asyncio.to_thread(ws.run, *args)


async def test_a_failed_cli_run_shows_at_its_deepest_workspace_frame_until_fixed(
    workspace: Workspace,
) -> None:
    lib, train = workspace.write("lib.py", LIB), workspace.write("train.py", TRAIN)
    async with language_server(workspace) as client:
        open_file(client, train)
        assert await lens_titles(client, train) == ["Run on warm GPU", "Debug"]

        assert (await cli_run(workspace, "train.py")).returncode == 1
        diagnostics = await eventually(
            lambda: client.diagnostics.get(lib.as_uri()), "no diagnostics after a failed run"
        )
        (problem,) = diagnostics
        assert problem.message == "ValueError: too big: 3"
        assert problem.range.start == lsp.Position(2, 8)  # the raise, from its first character
        related = [
            (r.location.uri, r.location.range.start.line) for r in problem.related_information
        ]
        assert related == [(train.as_uri(), 4), (train.as_uri(), 8)]  # main(), then the guard
        titles = await lens_titles(client, train)
        assert titles == ["Run on warm GPU", "Debug", "✗ ValueError · line 3"]
        assert client.lens_refreshes, "the editor was asked to refresh its lenses"  # type: ignore[attr-defined]

        lib.write_text(FIXED_LIB)
        assert (await cli_run(workspace, "train.py")).returncode == 0
        await eventually(lambda: cleared(client, lib), "a fixed run left the diagnostic")
        titles = await lens_titles(client, train)
        assert titles[:2] == ["Run on warm GPU", "Debug"]
        assert titles[2].startswith("✓ ") and titles[2].endswith(" s · 0 warm reused"), titles


async def test_editing_the_failing_file_clears_its_diagnostic(workspace: Workspace) -> None:
    lib, train = workspace.write("lib.py", LIB), workspace.write("train.py", TRAIN)
    async with language_server(workspace) as client:
        open_file(client, lib)
        assert (await cli_run(workspace, "train.py")).returncode == 1
        await eventually(lambda: client.diagnostics.get(lib.as_uri()), "no diagnostics")
        change = lsp.TextDocumentContentChangeWholeDocument(text=FIXED_LIB)
        document = lsp.VersionedTextDocumentIdentifier(version=2, uri=lib.as_uri())
        client.text_document_did_change(lsp.DidChangeTextDocumentParams(document, [change]))
        await eventually(lambda: cleared(client, lib), "an edit left the diagnostic")
        assert train.exists()


WARM = """\
import hotswap
import torch


def build():
    return torch.nn.Linear(4, 3)


layer = hotswap.warm("layer", build)
print("out", tuple(layer(torch.zeros(1, 4)).shape))
SIZE = 5
bias = hotswap.warm(f"bias/{SIZE}", lambda: torch.zeros(SIZE))
"""


async def hover_text(client: LanguageClient, path: Path, line: int, character: int) -> str:
    params = lsp.HoverParams(
        lsp.TextDocumentIdentifier(path.as_uri()), lsp.Position(line, character)
    )
    result = await client.text_document_hover_async(params)
    assert result is not None and isinstance(result.contents, lsp.MarkupContent)
    return result.contents.value


async def test_execute_command_run_warms_an_object_the_hover_then_describes(
    workspace: Workspace,
) -> None:
    script = workspace.write("warm_it.py", WARM)
    async with language_server(workspace) as client:
        open_file(client, script)
        before = await hover_text(client, script, 8, 18)
        assert 'hotswap.warm("layer")' in before and "not warm" in before

        reply = await command(client, "hotswap.run", script.as_uri())
        assert set(reply) == {"run_id", "queued"}
        await eventually(
            lambda: any("out (1, 3)" in m.message for m in client.log_messages),
            "the run's output never reached the editor's log",
        )
        text = await _warm_hover(client, script)
        assert "warm on worker 0" in text
        assert "`torch.nn.modules.linear.Linear`" in text
        assert "| parameters | 15 |" in text and "| device | cpu |" in text
        assert "| dtype | torch.float32 |" in text
        assert "| memory | 60 B |" in text  # 15 float32

        tokens = [t for t in client.progress_reports if str(t).startswith("hotswap-first-load")]
        assert tokens, "a first load (no warm objects yet) reports progress"
        reports = client.progress_reports[tokens[0]]
        await eventually(
            lambda: isinstance(reports[-1], lsp.WorkDoneProgressEnd), "the progress never ended"
        )
        assert isinstance(reports[0], lsp.WorkDoneProgressBegin)
        assert "first load of warm_it.py" in reports[0].title

        fstring = await hover_text(client, script, 11, 20)  # an f-string key: the one it built
        assert fstring.startswith('**hotswap.warm("bias/5")**: warm on worker 0'), fstring
        assert "| parameters | 5 |" in fstring and "| memory | 20 B |" in fstring

        status = await command(client, "hotswap.status")
        assert sorted(w["key"] for w in status["workers"][0]["warm"]) == ["bias/5", "layer"]
        released = (await command(client, "hotswap.release", ["layer"]))["released"]
        assert released == ["layer"]


async def _warm_hover(client: LanguageClient, script: Path) -> str:
    deadline = time.monotonic() + 60
    while True:
        text = await hover_text(client, script, 8, 18)
        if "warm on worker" in text or time.monotonic() > deadline:
            return text
        await asyncio.sleep(0.1)


SAVED = """\
import sys

if __name__ == "__main__":
    print("saved run", sys.argv[0].rsplit("/", 1)[-1], VERSION)
"""


async def test_did_save_reruns_the_entry_when_asked(workspace: Workspace) -> None:
    script = workspace.write("loop.py", "VERSION = 1\n" + SAVED)
    async with language_server(workspace, {"runOnSave": True}) as client:
        open_file(client, script)
        script.write_text("VERSION = 2\n" + SAVED)
        document = lsp.TextDocumentIdentifier(script.as_uri())
        client.text_document_did_save(lsp.DidSaveTextDocumentParams(document))
        await eventually(
            lambda: any("saved run loop.py 2" in m.message for m in client.log_messages),
            "a save did not rerun the script with its saved text",
        )
        for _ in range(200):  # the run's output can be logged before its end is handled
            titles = await lens_titles(client, script)
            if len(titles) > 2:
                break
            await asyncio.sleep(0.05)
        assert titles[2].startswith("✓ "), "the saved run's result is on the entry's lens"


async def test_without_run_on_save_a_save_runs_nothing(workspace: Workspace) -> None:
    script = workspace.write("loop.py", "VERSION = 1\n" + SAVED)
    async with language_server(workspace) as client:
        open_file(client, script)
        document = lsp.TextDocumentIdentifier(script.as_uri())
        client.text_document_did_save(lsp.DidSaveTextDocumentParams(document))
        await asyncio.sleep(2)
        status = await command(client, "hotswap.status")
        assert status["runs"] == []


STEPS = """\
total = 0
for step in range(3):
    total += step  # stop here
print("total", total)
"""


async def test_execute_command_debug_returns_where_a_dap_client_attaches(
    workspace: Workspace,
) -> None:
    script = workspace.write("steps.py", STEPS)
    async with language_server(workspace) as client:
        ready = await command(client, "hotswap.debug", str(script))
        assert ready["host"] == "127.0.0.1" and ready["path_mappings"] == []
        assert ready["attached"] is False
        dap = await asyncio.to_thread(DapClient, ready["host"], ready["port"])
        try:
            await asyncio.to_thread(dap.session, {str(script): [3]})
            event = await asyncio.to_thread(dap.wait_event, "stopped", 60)
            assert event["reason"] == "breakpoint"
            frames = await asyncio.to_thread(dap.stack_trace, event["threadId"])
            assert (frames[0]["source"]["path"], frames[0]["line"]) == (str(script), 3)
            await asyncio.to_thread(dap.set_breakpoints, str(script), [])
            await asyncio.to_thread(dap.continue_, event["threadId"])
            await eventually(
                lambda: sum("total 3" in m.message for m in client.log_messages) == 1,
                "the debugged run did not go on to its end",
            )
            # Still attached: the next debug run says so, and goes to this debugger (an editor
            # must not attach anew, which would replace this session and stop the run).
            await asyncio.to_thread(dap.set_breakpoints, str(script), [3])
            again = await command(client, "hotswap.debug", str(script))
            assert again["attached"] is True and again["port"] == ready["port"]
            event = await asyncio.to_thread(dap.wait_event, "stopped", 60)
            assert event["reason"] == "breakpoint"
            await asyncio.to_thread(dap.request, "disconnect", {"terminateDebuggee": False})
        finally:
            dap.close()
        await eventually(
            lambda: sum("total 3" in m.message for m in client.log_messages) == 2,
            "the second debugged run did not go on to its end once detached",
        )


LOOP = """\
import time

print("looping", flush=True)
while True:
    time.sleep(0.05)
"""


async def test_execute_command_cancel_ends_a_run_of_any_client(workspace: Workspace) -> None:
    script = workspace.write("forever.py", LOOP)
    async with language_server(workspace) as client:
        with following(workspace, str(script)) as cli:
            await asyncio.to_thread(cli.wait_for, "looping")
            cancelled = (await command(client, "hotswap.cancel"))["cancelled"]
            assert len(cancelled) == 1
            assert await asyncio.to_thread(cli.finish) == 130
        status = await command(client, "hotswap.status")
        [run] = [r for r in status["runs"] if r["run_id"] == cancelled[0]]
        assert run["reason"] == "cancelled"


async def test_run_without_a_file_runs_the_entry_script_last_opened(workspace: Workspace) -> None:
    script = workspace.write("loop.py", "VERSION = 7\n" + SAVED)
    async with language_server(workspace) as client:
        with pytest.raises(Exception, match="name the script to run"):
            await command(client, "hotswap.run")
        open_file(client, script)
        await command(client, "hotswap.run")  # as Helix's :lsp-workspace-command sends it
        await eventually(
            lambda: any("saved run loop.py 7" in m.message for m in client.log_messages),
            "a run without arguments did not run the opened entry script",
        )


async def test_a_stopped_daemon_stays_stopped_and_the_next_one_is_followed(
    workspace: Workspace,
) -> None:
    lib, train = workspace.write("lib.py", LIB), workspace.write("train.py", TRAIN)
    connection = workspace.root / ".hotswap" / "connection.json"
    async with language_server(workspace) as client:
        assert (await asyncio.to_thread(workspace.hotswap, "stop")).returncode == 0
        await asyncio.sleep(2.5)  # the server looks for a daemon every second
        assert not connection.exists(), "the language server restarted a daemon the user stopped"
        assert (await cli_run(workspace, "-c", "pass")).returncode == 0  # starts a new daemon
        await asyncio.sleep(2.5)  # which the server finds on its own, within a second
        assert (await cli_run(workspace, "train.py")).returncode == 1
        await eventually(
            lambda: client.diagnostics.get(lib.as_uri()), "the new daemon's runs went unseen"
        )
        assert train.exists()


async def test_as_vscode_starts_it_no_commands_and_no_daemon_until_a_run(
    workspace: Workspace,
) -> None:
    lib = workspace.write("lib.py", LIB)
    workspace.write("train.py", TRAIN)
    options = {"executeCommands": False, "startDaemon": False}  # what the extension sends
    async with language_server(workspace, options) as client:
        provider = client.capabilities_of_server.execute_command_provider  # type: ignore[attr-defined]
        assert provider is None or not provider.commands, "VS Code has its own hotswap.* commands"
        await asyncio.sleep(1.5)
        assert not (workspace.root / ".hotswap" / "connection.json").exists(), "no daemon yet"
        assert (await cli_run(workspace, "-c", "pass")).returncode == 0  # the first run starts it
        await asyncio.sleep(2.5)  # the server finds it within a second
        assert (await cli_run(workspace, "train.py")).returncode == 1
        await eventually(lambda: client.diagnostics.get(lib.as_uri()), "the failure went unseen")
