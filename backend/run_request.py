"""What a ``run`` request becomes: the ``Run`` record the queue keeps, and the exec body its
workers get (paths mapped into the mirror, checked before any worker sees it)."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from .paths import PathMap, StreamMapper, map_run_into_mirror, path_mappings
from .protocol import ENTRY_KINDS, ProtocolError, check_path_length
from .ranks import check_nproc


class WorkerHandle(Protocol):
    """What a run needs of a worker: its index and pid, and a way to message it."""

    index: int
    current_run: Run | None

    @property
    def pid(self) -> int: ...

    def send(self, msg_type: str, body: dict[str, Any]) -> None: ...


@dataclass(eq=False)  # a run is itself, whatever its fields: queues find it by identity
class Run:
    run_id: str
    client: bytes
    body: dict[str, Any]  # the exec body: paths already mapped into the mirror
    queued: bool
    requested: float = field(default_factory=time.time)
    state: str = "pending"  # pending → running → finished
    workers: list[WorkerHandle] = field(default_factory=list)  # one, or one per rank
    started: float | None = None
    seq: int = 0
    cancel_deadline: float | None = None
    stdin: list[tuple[bytes, bool]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    announced: bool = False  # run_started has been sent
    early_output: list[tuple[str, bytes, int | None]] = field(default_factory=list)
    orphaned: bool = False  # its client vanished: it goes on, its events reach nobody
    waiting_stdin: bool = False  # the script blocks reading its stdin (the worker says)
    cancel_note: str = ""  # why it was interrupted, when its run_finished should say so
    mirror: tuple[str, str] | None = None  # (mirror root, client root): mapped back on stderr
    stderr_maps: dict[int | None, StreamMapper] = field(default_factory=dict)  # one per rank
    held_since: float = 0.0  # when a stderr map began holding back the start of a root
    nproc: int | None = None  # ranks asked for (None: the workspace's; 0: plain)
    debug_rank: int = 0
    rank_done: dict[int, dict[str, Any]] = field(default_factory=dict)  # rank → exec_done body
    failed_rank: int | None = None

    def __post_init__(self) -> None:
        self.nproc = self.body.pop("nproc_per_node", None)
        self.debug_rank = self.body.pop("debug_rank", 0)
        path_map = self.body.get("path_map")
        if path_map:
            self.mirror = (path_map[0], path_map[1])

    @property
    def worker(self) -> WorkerHandle | None:
        return self.workers[0] if self.workers else None

    @property
    def path_mappings(self) -> list[dict[str, str]]:
        path_map = self.body["path_map"]
        return path_mappings((path_map[0], path_map[1]) if path_map else None)

    def describe(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "entry": self.body["entry"],
            "state": self.state,
            "requested": self.requested,
            "started": self.started,
            "worker": self.worker.index if self.worker else None,
            **self.summary,
        }


def exec_body(
    request: dict[str, Any], workspace: str, debug_timeout: float, path_map: PathMap | None
) -> dict[str, Any]:
    """What a worker runs for a ``run`` request: paths mapped into the mirror if there is one."""
    fields = {
        "entry": request["entry"],
        "args": request["args"],
        "cwd": request["cwd"],
        "env": dict(request["env"]),
        "workspace": workspace,
        "path_map": None,
        "debug": bool(request.get("debug")),
        "wait": request.get("wait", True),
        "debug_timeout": debug_timeout,
        "just_my_code": request.get("just_my_code", True),
        "entry_kind": request.get("entry_kind", "path"),
        "nproc_per_node": request.get("nproc_per_node"),
        "debug_rank": request.get("debug_rank", 0),
    }
    if path_map is not None:
        fields = map_run_into_mirror(fields, path_map)
    _check_exec_body(fields)
    check_nproc(fields["nproc_per_node"], fields["debug_rank"])
    return fields


def _check_exec_body(body: dict[str, Any]) -> None:
    if body["entry_kind"] not in ENTRY_KINDS:
        raise ProtocolError(
            f"run: entry_kind must be one of {', '.join(ENTRY_KINDS)}, got {body['entry_kind']!r}"
        )
    if not body["entry"] and body["entry_kind"] != "code":  # python -c "" runs nothing
        raise ProtocolError("run: entry is empty", hint="name the script to run")
    if not all(isinstance(a, str) for a in body["args"]):
        raise ProtocolError("run: args must be strings")
    env = body["env"]
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
        raise ProtocolError("run: env must map strings to strings")
    check_path_length("run: cwd", body["cwd"])
    if body["entry_kind"] == "path":
        check_path_length("run: entry", body["entry"])
    if not os.path.isabs(body["cwd"]):
        raise ProtocolError(
            f"run: cwd must be an absolute path, got {body['cwd']!r}",
            hint="send the client's os.getcwd(): the daemon's own cwd means nothing to the run",
        )
    if not os.path.isdir(body["cwd"]):
        raise ProtocolError(
            f"run: the working directory {body['cwd']} does not exist on the daemon's host",
            hint="run from a folder that exists where the daemon runs",
        )
