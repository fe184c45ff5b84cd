"""Every run's record and metric series in ``.hotswap/runs/``, so they survive a restart: per
run a record and a metrics file, per entry the file digests its last run saw, each written
atomically; the newest ``[tool.hotswap] keep_runs`` runs are kept. Never sees a socket."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from pathlib import Path
from typing import Any, Protocol

from .metrics_store import Series, series_name
from .protocol import UnknownRun
from .workspace import write_private_json

log = logging.getLogger("hotswap.daemon")

SAVE_EVERY = 2.0  # seconds between saves of a run that is logging
CACHED_SERIES = 4  # finished runs whose series stay in memory
CHANGED_LISTED = 20  # changed files named in a record (changed_count has them all)
MAX_SERIES = 1000  # metric names per run: f"loss_{step}" must not grow the daemon forever


class RunLike(Protocol):
    run_id: str
    body: dict[str, Any]
    started: float | None

    @property
    def path_mappings(self) -> list[dict[str, str]]: ...


def entry_key(body: dict[str, Any]) -> str:
    """What makes two runs runs of the same entry: the script's absolute path (in the daemon's
    terms), or the module name or code."""
    if body.get("entry_kind", "path") != "path":
        return body["entry"]
    return os.path.normpath(os.path.join(body["cwd"], body["entry"]))


class RunHistory:
    def __init__(self, folder: Path, keep: int = 50) -> None:
        self.folder, self.keep = folder, keep
        self.records: dict[str, dict[str, Any]] = {}  # oldest first
        self.pending_files: dict[str, dict[str, str] | None] = {}  # run_id -> its files
        self.entry_files: dict[str, dict[str, str] | None] = {}  # entry -> its last run's
        self.series: dict[str, dict[str, Series]] = {}
        self.dirty: dict[str, float] = {}  # run_id -> when it was last saved
        self.refused: set[str] = set()  # runs told that they log too many metric names
        self._load()

    # -- what the daemon tells it ---------------------------------------------------------

    def note_files(self, run_id: str, files: dict[str, str] | None) -> None:
        """The workspace's files (path -> sha256) as the run will see them."""
        self.pending_files[run_id] = files

    def started(self, run: RunLike) -> None:
        body, key = run.body, entry_key(run.body)
        previous = next((r for r in reversed(self.records.values()) if r["entry"] == key), None)
        files = self.pending_files.pop(run.run_id, None)
        changed = _changed(self._files_of(key), files) if previous else None
        self._keep_files(key, files)
        self.records[run.run_id] = {
            "run_id": run.run_id,
            "entry": key,
            "entry_kind": body.get("entry_kind", "path"),
            "args": list(body["args"]),
            "cwd": body["cwd"],
            "path_mappings": run.path_mappings,
            "started": run.started or time.time(),
            "state": "running",
            "duration": None,
            "exit_code": None,
            "reason": None,
            "error": None,
            "warm_reused": [],
            "previous": previous["run_id"] if previous else None,
            "changed": changed[:CHANGED_LISTED] if changed is not None else None,
            "changed_count": len(changed or []),
            "args_changed": previous is not None and previous["args"] != list(body["args"]),
            "last": {},
        }
        self.series[run.run_id] = {}
        self._save(run.run_id)
        self._prune()

    def finished(self, run_id: str, body: dict[str, Any]) -> None:
        record = self.records.get(run_id)
        if record is None:  # never started (dropped while waiting): nothing ran, nothing kept
            self.pending_files.pop(run_id, None)
            return
        record.update(
            state="finished",
            duration=body["duration"],
            exit_code=body["exit_code"],
            reason=body["reason"],
            error=body["error"],
            warm_reused=body["warm_reused"],
        )
        self._save(run_id)
        self._uncache()

    def metrics(self, run_id: str, batch: dict[str, Any]) -> tuple[dict[str, Any] | None, str]:
        """Add a worker's batch: the ``metrics_update`` event body (None for a run not kept),
        and a note for the run's stderr ("" when all is well)."""
        record, series = self.records.get(run_id), self.series.get(run_id)
        if record is None or series is None:
            return None, ""
        touched, refused = [], []
        for item in batch["series"]:
            name = series_name(item["name"], batch["rank"])
            if name not in series and len(series) >= MAX_SERIES:
                refused.append(name)
                continue
            one = series.setdefault(name, Series(name))
            try:
                one.add_batch(item)
            except ValueError as exc:  # a worker's bug must not stop the daemon
                log.error("run %s: a metrics batch was refused: %s", run_id, exc)
                continue
            record["last"][name] = one.last[1] if one.last else None
            touched.append(one)
        self.dirty.setdefault(run_id, time.monotonic())
        updates = [s.record(full=False) for s in dict.fromkeys(touched)]
        note = "" if not refused or run_id in self.refused else _note(refused)
        if refused:
            self.refused.add(run_id)  # said once per run
        return {"run_id": run_id, "entry": record["entry"], "series": updates}, note

    def save_due(self) -> None:
        """Save the runs that logged since their last save, at most every SAVE_EVERY."""
        now = time.monotonic()
        for run_id, since in list(self.dirty.items()):
            if now - since >= SAVE_EVERY:
                self._save(run_id)

    def save_all(self) -> None:
        for run_id in list(self.dirty):
            self._save(run_id)

    # -- what clients ask -----------------------------------------------------------------

    def runs_reply(self, body: dict[str, Any]) -> dict[str, Any]:
        """The ``runs`` request's answer."""
        return {"runs": self.runs(body.get("entry"), body.get("limit", 50))}

    def metrics_reply(self, body: dict[str, Any]) -> dict[str, Any]:
        """The ``metrics`` request's answer."""
        run, series = self.run_metrics(body["run_id"])
        return {"run": run, "series": series}

    def runs(self, entry: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        """Records, newest first (of ``entry`` only, if given)."""
        found = [r for r in reversed(self.records.values()) if entry in (None, r["entry"])]
        return found[: max(0, limit)]

    def run_metrics(self, run_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """A run's record and every series in full (``last``: the newest run)."""
        if run_id == "last" and self.records:
            run_id = next(reversed(self.records))
        record = self.records.get(run_id)
        if record is None:
            raise UnknownRun(
                f"metrics: no run {run_id!r} is kept"
                if self.records
                else "metrics: no run is kept yet: hotswap.log in a script run with hotswap run",
                hint="`hotswap runs` lists the runs kept",
            )
        series = self.series.get(run_id)
        if series is None:
            series = self.series[run_id] = self._load_series(run_id)
            self._uncache()
        return record, [s.record(full=True) for s in series.values()]

    # -- files ----------------------------------------------------------------------------

    def _record_path(self, run_id: str) -> Path:
        return self.folder / f"{run_id}.json"

    def _series_path(self, run_id: str) -> Path:
        return self.folder / f"{run_id}.metrics.json"

    def _save(self, run_id: str) -> None:
        self.dirty.pop(run_id, None)
        record = self.records[run_id]
        write_private_json(self._record_path(run_id), {"record": record}, compact=True)
        series = self.series.get(run_id)
        if series is not None:
            saved = {name: s.saved() for name, s in series.items()}
            write_private_json(self._series_path(run_id), {"series": saved}, compact=True)

    def _load(self) -> None:
        found = []
        for path in self.folder.glob("*.json"):
            if path.name.endswith(".metrics.json") or path.name.startswith("files-"):
                continue
            try:
                saved = json.loads(path.read_text())
                found.append(saved["record"])
            except (OSError, ValueError, KeyError, TypeError):
                log.warning("ignored an unreadable run record: %s", path)
        for record in sorted(found, key=lambda r: r["started"]):
            if record["state"] == "running":  # the daemon ended without hearing its end
                record.update(state="finished", reason="lost")
            self.records[record["run_id"]] = record

    def _load_series(self, run_id: str) -> dict[str, Series]:
        try:
            saved = json.loads(self._series_path(run_id).read_text())["series"]
        except (OSError, ValueError, KeyError):
            return {}
        return {name: Series.load(name, s) for name, s in saved.items()}

    def _prune(self) -> None:
        while len(self.records) > self.keep:
            oldest = next(iter(self.records))
            entry = self.records.pop(oldest)["entry"]
            for gone in (self.series, self.dirty):
                gone.pop(oldest, None)
            self._record_path(oldest).unlink(missing_ok=True)
            self._series_path(oldest).unlink(missing_ok=True)
            if all(r["entry"] != entry for r in self.records.values()):
                self.entry_files.pop(entry, None)
                self._files_path(entry).unlink(missing_ok=True)

    # The files of each entry's last run, one file per entry apart from the records: a big
    # workspace's list is read once, when that entry runs again, not at every daemon start.

    def _files_path(self, entry: str) -> Path:
        return self.folder / f"files-{hashlib.sha256(entry.encode()).hexdigest()[:16]}.json"

    def _files_of(self, entry: str) -> dict[str, str] | None:
        if entry not in self.entry_files:
            try:
                self.entry_files[entry] = json.loads(self._files_path(entry).read_text())["files"]
            except (OSError, ValueError, KeyError):
                self.entry_files[entry] = None
        return self.entry_files[entry]

    def _keep_files(self, entry: str, files: dict[str, str] | None) -> None:
        self.entry_files[entry] = files
        if files is None:
            self._files_path(entry).unlink(missing_ok=True)
        else:
            write_private_json(self._files_path(entry), {"files": files}, compact=True)

    def _uncache(self) -> None:
        """Keep the series of running runs and of the last CACHED_SERIES others in memory."""
        finished = [r for r in self.series if self.records[r]["state"] != "running"]
        for run_id in finished[:-CACHED_SERIES] if len(finished) > CACHED_SERIES else []:
            if run_id not in self.dirty:
                del self.series[run_id]


def _note(refused: list[str]) -> str:
    if not refused:
        return ""
    return (
        f"hotswap: hotswap.log: not recorded: {', '.join(sorted(set(refused))[:3])}: a run keeps "
        f"at most {MAX_SERIES} metric names (put a changing part in step=, not in the name)\n"
    )


def _changed(before: dict[str, str] | None, after: dict[str, str] | None) -> list[str] | None:
    if before is None or after is None:
        return None
    return sorted(p for p in before.keys() | after.keys() if before.get(p) != after.get(p))
