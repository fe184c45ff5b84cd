"""What the language server shows: entry scripts and their code lenses, and the hover of a
``hotswap.warm("key", ...)`` call. Pure: text in, LSP types out."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, NamedTuple

from lsprotocol import types as lsp

from .lsp_runs import RunResult

MAIN_GUARD = re.compile(r"""^if\s+__name__\s*==\s*(['"])__main__\1\s*:""", re.MULTILINE)
WARM_CALL = re.compile(r"""\bwarm\(\s*(?P<f>[fF]?)(?P<q>['"])(?P<key>[^'"\\]+)(?P=q)""")
FIELD = re.compile(r"\{[^{}]*\}")


def entry_line(source: str, path: Path, configured: set[Path]) -> int | None:
    """The line a script's lenses sit on: its ``if __name__ == "__main__":``, or the first
    line of a configured entry; None for a file that is no entry script."""
    match = MAIN_GUARD.search(source)
    if match is not None:
        return source.count("\n", 0, match.start())
    return 0 if path in configured else None


def code_lenses(uri: str, line: int, result: RunResult | None) -> list[lsp.CodeLens]:
    where = lsp.Range(lsp.Position(line, 0), lsp.Position(line, 0))
    commands = [
        lsp.Command("Run on warm GPU", "hotswap.run", arguments=[uri]),
        lsp.Command("Debug", "hotswap.debug", arguments=[uri]),
    ]
    if result is not None:
        commands.append(lsp.Command(result.title(), "hotswap.status"))
    return [lsp.CodeLens(range=where, command=command) for command in commands]


class WarmCall(NamedTuple):
    """A ``warm("key", ...)`` call in the source: its key, whether it is an f-string, its span."""

    key: str
    fstring: bool
    start: int
    end: int

    def names(self, key: str) -> bool:
        """Whether a warm object's ``key`` is the one this call names (an f-string's
        ``{fields}`` match any text)."""
        if not self.fstring:
            return key == self.key
        parts = FIELD.split(self.key)
        return re.fullmatch(".+?".join(re.escape(p) for p in parts), key) is not None


def warm_call_at(line: str, character: int) -> WarmCall | None:
    """The ``warm("key"`` call under the cursor, if any."""
    for match in WARM_CALL.finditer(line):
        if match.start() <= character <= match.end():
            return WarmCall(match["key"], bool(match["f"]), match.start(), match.end())
    return None


def warm_hover(call: WarmCall, workers: dict[int, list[dict[str, Any]]], connected: bool) -> str:
    """Markdown for a warm call: where its object is warm and what it holds, or that it is not."""
    title = f'**hotswap.warm({"f" if call.fstring else ""}"{call.key}")**'
    if not connected:
        return f"{title}: no hotswap daemon serves this workspace yet; run a script to start one."
    held = [
        (index, w) for index, warm in sorted(workers.items()) for w in warm if call.names(w["key"])
    ]
    if not held:
        return f"{title}: not warm. The next run builds it; the runs after it reuse it."
    parts = []
    for index, record in held:
        rows = [
            ("type", f"`{record['type']}`"),
            ("parameters", _count(record["parameters"])),
            ("memory", _bytes(record["bytes"])),
            ("device", record["device"] or "—"),
            ("dtype", record.get("dtype") or "—"),
            ("load time", f"{record['build_seconds']:.2f} s"),
            ("reused", f"{record['hits']} times"),
        ]
        table = "\n".join(f"| {name} | {value} |" for name, value in rows)
        named = f'**hotswap.warm("{record["key"]}")**'
        parts.append(f"{named}: warm on worker {index}\n\n| | |\n|---|---|\n{table}")
    return "\n\n".join(parts)


def _count(value: int | None) -> str:
    return "—" if value is None else f"{value:,}"


def _bytes(value: int) -> str:
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{value} B"
