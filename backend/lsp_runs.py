"""What the language server knows of runs: which entry each run ran, the last result per entry,
and the diagnostics an entry's last failure left. Pure: no sockets, no LSP server."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lsprotocol import types as lsp

LineText = Callable[[Path, int], str]  # (file, 0-based line) -> its text, "" if unknown
SKIPPED_DIRS = {"site-packages", "dist-packages", ".venv", "venv", ".hotswap", "node_modules"}


@dataclass
class RunResult:
    """How the last run of an entry ended, as its code lens shows it."""

    exit_code: int
    reason: str
    duration: float
    warm_reused: int
    error_type: str | None = None
    line: int | None = None  # 1-based, in the deepest workspace frame

    def title(self) -> str:
        if self.exit_code == 0:
            return f"✓ {self.duration:.1f} s · {self.warm_reused} warm reused"
        if self.error_type is not None:
            where = f" · line {self.line}" if self.line else ""
            return f"✗ {self.error_type.rsplit('.', 1)[-1]}{where}"
        return f"✗ {self.reason} · exit {self.exit_code}"


class RunBook:
    """Runs seen on the daemon (any client's), their results and the problems they left."""

    def __init__(self, root: Path, line_text: LineText) -> None:
        self.root = root
        self.line_text = line_text
        self.entries: dict[str, Path | None] = {}  # run_id -> the entry script it ran
        self.results: dict[Path, RunResult] = {}
        self.problems: dict[Path | None, dict[Path, list[lsp.Diagnostic]]] = {}

    def started(self, body: dict[str, Any]) -> Path | None:
        """Note a run_started; return the local path of the script it runs, if it is one."""
        entry = entry_path(body)
        self.entries[body["run_id"]] = entry
        return entry

    def finished(self, body: dict[str, Any]) -> tuple[Path | None, set[Path]]:
        """Note a run_finished; return its entry and the files whose diagnostics changed."""
        entry = self.entries.pop(body["run_id"], None)
        if body["reason"] in ("cancelled", "superseded"):
            return entry, set()  # an interrupted run proves nothing about the code
        frames = self.workspace_frames(body.get("error"))
        result = RunResult(
            body["exit_code"], body["reason"], body["duration"], len(body["warm_reused"])
        )
        if body.get("error"):
            result.error_type = body["error"]["type"]
            result.line = frames[-1]["line"] if frames else None
        if entry is not None:
            self.results[entry] = result
        before = set(self.problems.pop(entry, {}))
        if frames and body["exit_code"] != 0:
            self.problems[entry] = self._diagnostics(body["error"], frames)
        return entry, before | set(self.problems.get(entry, {}))

    def edited(self, file: Path) -> bool:
        """Drop the diagnostics shown in ``file`` (the user is changing it); True if any were."""
        found = False
        for by_file in self.problems.values():
            found = by_file.pop(file, None) is not None or found
        return found

    def diagnostics(self, file: Path) -> list[lsp.Diagnostic]:
        return [d for by_file in self.problems.values() for d in by_file.get(file, [])]

    def workspace_frames(self, error: dict[str, Any] | None) -> list[dict[str, Any]]:
        """The error's frames in files of this workspace (not libraries), outermost first."""
        if not error:
            return []
        return [f for f in error["frames"] if self._ours(f["file"]) and f["line"] > 0]

    def _ours(self, file: str) -> bool:
        path = Path(file)
        if not path.is_absolute() or not path.is_relative_to(self.root):
            return False
        return not SKIPPED_DIRS & set(path.relative_to(self.root).parts)

    def _diagnostics(
        self, error: dict[str, Any], frames: list[dict[str, Any]]
    ) -> dict[Path, list[lsp.Diagnostic]]:
        deepest = frames[-1]
        related = [
            lsp.DiagnosticRelatedInformation(
                location=lsp.Location(Path(f["file"]).as_uri(), self._range(f)),
                message=f"in {f['function']}",
            )
            for f in reversed(frames[:-1])
        ]
        message = f"{error['type']}: {error['message']}" if error["message"] else error["type"]
        diagnostic = lsp.Diagnostic(
            range=self._range(deepest),
            message=message,
            severity=lsp.DiagnosticSeverity.Error,
            source="hotswap",
            related_information=related or None,
        )
        return {Path(deepest["file"]): [diagnostic]}

    def _range(self, frame: dict[str, Any]) -> lsp.Range:
        """The frame's line, from its first non-blank character to its end."""
        line = frame["line"] - 1
        text = self.line_text(Path(frame["file"]), line)
        start = len(text) - len(text.lstrip())
        return lsp.Range(lsp.Position(line, start), lsp.Position(line, max(len(text), start)))


def entry_path(body: dict[str, Any]) -> Path | None:
    """The local path of the script a run_started runs (None for -m, -c or an old daemon)."""
    if body.get("entry_kind", "path") != "path":
        return None
    entry = body["entry"]
    if not os.path.isabs(entry):
        if "cwd" not in body:
            return None
        entry = os.path.join(body["cwd"], entry)
    entry = os.path.normpath(entry)
    for mapping in body["path_mappings"]:  # mirror mode: the daemon's copy -> the client's file
        remote = mapping["remoteRoot"].rstrip("/")
        if entry == remote or entry.startswith(remote + "/"):
            entry = mapping["localRoot"].rstrip("/") + entry[len(remote) :]
    return Path(entry)
