"""Level 1: the walls of the house (docs/architecture.md): module sizes and who imports whom."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

BACKEND = Path(__file__).resolve().parent.parent / "backend"
ROOMS = [
    "runs",
    "run_request",
    "workers",
    "ranks",
    "worker_process",
    "sync_daemon",
    "paths",
    "messages",
]


def runtime_imports(path: Path) -> set[str]:
    """Modules of the hotswap package that ``path`` imports when it runs (not for typing)."""
    tree = ast.parse(path.read_text())
    typing_only: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            typing_only |= {id(n) for n in ast.walk(node)}
    package = path.relative_to(BACKEND).parent.parts
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level and id(node) not in typing_only:
            base = list(package[: len(package) - node.level + 1])
            found.add(".".join([*base, node.module] if node.module else base))
    return found


def _modules() -> list[object]:
    return sorted(BACKEND.rglob("*.py"))


@pytest.mark.parametrize("path", _modules(), ids=lambda p: p.name)
def test_no_backend_module_is_over_400_lines(path: Path) -> None:
    limit = 300 if path.name == "server.py" else 400
    assert len(path.read_text().splitlines()) <= limit, f"{path.name}: split it"


@pytest.mark.parametrize("room", ROOMS)
def test_rooms_never_import_the_server(room: str) -> None:
    assert "server" not in runtime_imports(BACKEND / f"{room}.py")


def test_runs_know_no_worker_processes() -> None:
    assert not {"workers", "worker_process", "server"} & runtime_imports(BACKEND / "runs.py")
    assert not {"workers", "worker_process", "server"} & runtime_imports(BACKEND / "ranks.py")


@pytest.mark.parametrize("path", sorted((BACKEND / "runner").glob("*.py")), ids=lambda p: p.name)
def test_the_runner_never_imports_the_sync_modules(path: Path) -> None:
    assert not {"sync", "sync_daemon", "sync_client"} & runtime_imports(path)


def modules_loaded_by(code: str) -> set[str]:
    """Every module a fresh interpreter holds after running ``code``."""
    code += "\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))\n"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    ).stdout
    return set(json.loads(out))


def test_a_worker_process_loads_no_sync_module() -> None:
    loaded = modules_loaded_by("import hotswap.runner.worker")
    assert "hotswap.runner.execute" in loaded
    assert not {"hotswap.sync", "hotswap.sync_daemon", "hotswap.server"} & loaded


LSP_MODULES = sorted(BACKEND.glob("lsp*.py"))


@pytest.mark.parametrize("path", LSP_MODULES, ids=lambda p: p.name)
def test_the_language_server_is_a_client_not_a_daemon(path: Path) -> None:
    """It reaches the daemon through the protocol, never through the daemon's rooms."""
    rooms = {"server", "runs", "workers", "worker_process", "sync_daemon", "warm"}
    imported = runtime_imports(path)
    assert not {m for m in imported if m in rooms or m.split(".")[0] == "runner"}, imported


def test_the_language_server_loads_no_torch_nor_daemon() -> None:
    loaded = modules_loaded_by("import hotswap.lsp\nhotswap.lsp.build_server()")
    assert "pygls" in loaded and "hotswap.lsp_daemon" in loaded
    assert not {"torch", "transformers", "hotswap.server", "hotswap.runner"} & loaded
