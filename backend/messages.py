"""The declared messages of hotswap's protocol: every type, its kind, its fields, nested records.

Data only; protocol.py validates against it and ``spec_json()`` exports it.
"""

from __future__ import annotations

from typing import NamedTuple


class Field(NamedTuple):
    """One body field: the Python types it may have, and for a map or a list of maps, the
    RECORDS entry its value (``record``) or each of its items (``items``) must match."""

    types: tuple[type, ...]
    required: bool = True
    record: str | None = None
    items: str | None = None


_NONE = type(None)


def _f(*types: type, record: str | None = None) -> Field:
    """A required field; with ``record``, a map of that record (types include dict)."""
    return Field(types, True, record)


def _items(record: str) -> Field:
    """A required list of ``record`` maps."""
    return Field((list,), True, None, record)


def _opt(*types: type) -> Field:
    """An optional field."""
    return Field(types, False)


def _opt_record(record: str) -> Field:
    """An optional map of ``record``."""
    return Field((dict,), False, record)


def _opt_items(record: str) -> Field:
    """An optional list of ``record`` maps."""
    return Field((list,), False, None, record)


class MessageSpec(NamedTuple):
    kind: str  # one of MESSAGE_KINDS
    fields: dict[str, Field]


MESSAGE_KINDS = {
    "request": "client → daemon",
    "reply": "daemon → client, answering a request",
    "event": "daemon → client, unasked",
    "to_worker": "daemon → runner worker",
    "from_worker": "runner worker → daemon",
}


def _spec(kind: str, **fields: Field) -> MessageSpec:
    return MessageSpec(kind, fields)


RECORDS: dict[str, dict[str, Field]] = {
    "frame": {"file": _f(str), "line": _f(int), "function": _f(str)},
    "error": {"type": _f(str), "message": _f(str), "frames": _items("frame")},
    "warm_object": {
        "key": _f(str),
        "type": _f(str),
        "parameters": _f(int, _NONE),
        "bytes": _f(int),
        "device": _f(str, _NONE),
        "dtype": _f(str, _NONE),  # of its parameters (a tensor's own), "mixed" when they differ
        "build_seconds": _f(int, float),
        "hits": _f(int),
        "reset": _f(str),  # "pristine" (put back before every run) or "keep"
        "snapshot_bytes": _f(int),  # host memory of its pristine snapshot
    },
    "memory": {
        "rss": _opt(int, _NONE),
        "cuda_allocated": _opt(int),
        "cuda_reserved": _opt(int),
        "run_peak_rss": _opt(int),  # of the worker's last run
        "rss_beyond_warm": _opt(int),  # held after it beyond warm objects and snapshots
        "rss_left": _opt(int),  # how much rss_beyond_warm grew over the run (<0: it shrank)
        "run_peak_cuda_allocated": _opt(int),
        "cuda_beyond_warm": _opt(int),
    },
    # an object a run left alive beyond warm objects: "torch.Tensor", its bytes, "float32[4096,
    # 1024] cpu", and the module global (or container in one) that holds it, when found
    "survivor": {
        "type": _f(str),
        "bytes": _f(int),
        "detail": _f(str),
        "held_by": _f(str, _NONE),
    },
    "debug_endpoint": {"host": _f(str), "port": _f(int)},
    "path_mapping": {"localRoot": _f(str), "remoteRoot": _f(str)},
    "status_daemon": {
        "pid": _f(int),
        "workspace": _f(str),
        "address": _f(str),
        "started": _f(int, float),
        "version": _f(str),
        "protocol_version": _f(str),
        "stopping": _f(bool),
    },
    "status_worker": {
        "index": _f(int),
        "pid": _f(int),
        "state": _f(str),
        "started": _f(int, float),
        "warm": _items("warm_object"),
        "memory": _f(dict, record="memory"),
        "run_id": _f(str, _NONE),
        "debug": _f(dict, _NONE, record="debug_endpoint"),
        "ranks": _opt(int),  # a rank worker: the world size (its index is its rank)
    },
    "status_run": {
        "run_id": _f(str),
        "entry": _f(str),
        "state": _f(str),
        "requested": _f(int, float),
        "started": _f(int, float, _NONE),
        "worker": _f(int, _NONE),
        "exit_code": _opt(int),
        "reason": _opt(str),
        "duration": _opt(int, float),
    },
    # hotswap.log's points from a worker: int64 steps, float64 values and times, little-endian
    "metric_batch": {"name": _f(str), "steps": _f(bytes), "values": _f(bytes), "times": _f(bytes)},
    # a series as the daemon keeps it: every ``stride``-th of ``count`` points logged (min, max
    # and last added in a full copy); live, only the points kept since the last event, unless
    # ``reset`` (then the whole series: it was thinned)
    "metric_series": {
        "name": _f(str),
        "points": _f(list),  # [step, value, time] lists
        "count": _f(int),
        "stride": _f(int),
        "reset": _f(bool),
        "last": _f(list, _NONE),  # the newest [step, value, time], kept or not
    },
    # a run as .hotswap/runs/ keeps it (runs and metrics requests)
    "run_record": {
        "run_id": _f(str),
        "entry": _f(str),
        "entry_kind": _f(str),
        "args": _f(list),
        "cwd": _f(str),
        "path_mappings": _items("path_mapping"),
        "started": _f(int, float),
        "state": _f(str),  # running, finished
        "duration": _f(int, float, _NONE),
        "exit_code": _f(int, _NONE),
        "reason": _f(str, _NONE),
        "error": _f(dict, _NONE, record="error"),
        "warm_reused": _f(list),
        "previous": _f(str, _NONE),  # the run of the same entry before it
        "changed": _f(list, _NONE),  # workspace files changed since then (None: unknown)
        "changed_count": _f(int),
        "args_changed": _f(bool),
        "last": _f(dict),  # metric name -> its last value
    },
    # a piece of a run's kept output (the `logs` request), in the order the daemon read it
    "output_chunk": {"stream": _f(str), "data": _f(bytes)},
    "sync_policy": {
        "max_file_bytes": _f(int),
        "chunk_bytes": _f(int),
        "ignored_dirs": _f(list),
        "ignored_suffixes": _f(list),
        "ignore_files": _f(list),
        "nested_ignore_files": _f(list),
        "venv_markers": _f(list),
        "sync_symlinks": _f(bool),
    },
}
"""Nested records, declared once; a Field's ``record``/``items`` names one of them."""

MESSAGE_TYPES: dict[str, MessageSpec] = {
    # -- requests from clients ----------------------------------------------------
    # subscribe: also receive run_started and run_finished of every other client's runs;
    # notices: this client shows run_notice events (else they reach it on the run's stderr)
    "hello": _spec(
        "request",
        protocol_version=_f(str),
        client=_f(str),
        subscribe=_opt(bool),
        subscribe_metrics=_opt(bool),  # also receive every run's live metrics events
        notices=_opt(bool),
    ),
    "run": _spec(
        "request",
        entry=_f(str),
        args=_f(list),
        cwd=_f(str),
        env=_f(dict),
        run_id=_opt(str),
        queue=_opt(bool),
        root=_opt(str),
        state=_opt(str),
        debug=_opt(bool),
        wait=_opt(bool),
        just_my_code=_opt(bool),
        entry_kind=_opt(str),  # "path" (default), "module" (-m), "code" (-c)
        # rank workers, as torchrun's --nproc-per-node; 0 = one plain worker; absent = the
        # workspace's [tool.hotswap] nproc_per_node (plain if unset)
        nproc_per_node=_opt(int, _NONE),
        debug_rank=_opt(int),  # with debug: the rank that runs under debugpy (default 0)
    ),
    "manifest": _spec("request", root=_f(str)),
    "sync": _spec(
        "request",
        root=_f(str),
        base=_f(str),
        target=_f(str),
        files=_f(list),
        deleted=_f(list),
        transaction=_f(str),
        final=_f(bool),
        total_files=_opt(int),
        total_bytes=_opt(int),
    ),
    "cancel": _spec("request", run_id=_opt(str, _NONE)),
    "stdin": _spec("request", run_id=_f(str), data=_f(bytes), eof=_opt(bool)),
    "status": _spec("request"),
    "stop": _spec("request"),
    "release": _spec("request", keys=_opt(list, _NONE)),
    "runs": _spec("request", entry=_opt(str), limit=_opt(int)),  # entry as in run_record
    "metrics": _spec("request", run_id=_f(str)),  # or "last"
    # a run's kept output (the latest run without run_id); follow: its later events come here
    "logs": _spec("request", run_id=_opt(str, _NONE), follow=_opt(bool)),
    # -- replies (type is "<request>_reply", or "error") --------------------------
    "hello_reply": _spec(
        "reply",
        protocol_version=_f(str),
        version=_f(str),
        features=_f(list),
        daemon_pid=_f(int),
        workspace=_f(str),
        sync_policy=_f(dict, record="sync_policy"),
    ),
    "run_reply": _spec("reply", run_id=_f(str), queued=_f(bool)),
    "cancel_reply": _spec("reply", cancelled=_f(list)),
    "stdin_reply": _spec("reply", accepted=_f(bool)),
    "status_reply": _spec(
        "reply",
        daemon=_f(dict, record="status_daemon"),
        workers=_items("status_worker"),
        runs=_items("status_run"),
    ),
    "stop_reply": _spec("reply", stopping=_f(bool)),
    "manifest_reply": _spec(
        "reply", state=_f(str), mode=_f(str), files=_f(dict), daemon_root=_f(str)
    ),
    "sync_reply": _spec(
        "reply", state=_f(str), mode=_f(str), applied=_f(bool), elapsed_ms=_f(int, float)
    ),
    "release_reply": _spec("reply", released=_f(list)),
    "runs_reply": _spec("reply", runs=_items("run_record")),  # newest first
    "metrics_reply": _spec(
        "reply", run=_f(dict, record="run_record"), series=_items("metric_series")
    ),
    "logs_reply": _spec(
        "reply",
        run_id=_f(str),
        entry=_f(str),
        state=_f(str),  # pending, running, finished
        output=_items("output_chunk"),
        truncated=_f(bool),  # the start of the output was dropped (the last LOG_BYTES are kept)
        exit_code=_f(int, _NONE),
        reason=_f(str, _NONE),
        message=_f(str),
    ),
    "error": _spec("reply", ename=_f(str), evalue=_f(str), hint=_opt(str)),
    # -- events -------------------------------------------------------------------
    "run_started": _spec(
        "event",
        run_id=_f(str),
        entry=_f(str),
        worker=_f(int),
        worker_pid=_f(int),
        warm_keys=_f(list),
        path_mappings=_items("path_mapping"),
        cwd=_opt(str),  # the run's cwd, in the daemon's terms (map it with path_mappings)
        entry_kind=_opt(str),
        ranks=_opt(int),  # a run on rank workers: their number (the world size)
    ),
    "stream": _spec(
        "event",
        run_id=_f(str),
        stream=_f(str),
        seq=_f(int),
        data=_f(bytes),
        rank=_opt(int),  # a run on rank workers: the rank that wrote it
    ),
    "run_finished": _spec(
        "event",
        run_id=_f(str),
        exit_code=_f(int),
        duration=_f(int, float),
        reason=_f(str),
        error=_f(dict, _NONE, record="error"),
        message=_f(str),
        warm_reused=_f(list),
        warm_lost=_f(bool),
        memory=_opt_record("memory"),  # the footer's memory line: peak, held beyond warm
        survivors=_opt_items("survivor"),  # the largest objects the run left alive
    ),
    # what hotswap did for the run, for its header (kinds: protocol.NOTICE_KINDS), apart
    # from the script's own output: "warm 'model': GPT.forward updated in place"
    "run_notice": MessageSpec("event", {"run_id": _f(str), "kind": _f(str), "text": _f(str)}),
    "worker_restarted": _spec(
        "event", worker=_f(int), pid=_f(int), reason=_f(str), warm_lost=_f(list)
    ),
    "warm_changed": _spec("event", worker=_f(int), warm=_items("warm_object")),
    "metrics_update": _spec("event", run_id=_f(str), entry=_f(str), series=_items("metric_series")),
    "debug_ready": _spec(
        "event",
        run_id=_f(str, _NONE),
        worker=_f(int),
        host=_f(str),
        port=_f(int),
        path_mappings=_items("path_mapping"),
        just_my_code=_f(bool),
        wait=_f(bool),
        attached=_opt(bool),
    ),
    "sync_progress": _spec(
        "event",
        transaction=_f(str),
        files_done=_f(int),
        files_total=_f(int),
        bytes_done=_f(int),
        bytes_total=_f(int),
    ),
    # -- daemon → runner worker (internal, same envelope and signing) -------------
    "exec": _spec(
        "to_worker",
        run_id=_f(str),
        entry=_f(str),
        args=_f(list),
        cwd=_f(str),
        env=_f(dict),
        workspace=_f(str),
        path_map=_opt(list, _NONE),
        debug=_opt(bool),
        wait=_opt(bool),
        debug_timeout=_opt(int, float),
        just_my_code=_opt(bool),
        entry_kind=_opt(str),
    ),
    "interrupt": _spec("to_worker", run_id=_f(str)),
    "feed_stdin": _spec("to_worker", run_id=_f(str), data=_f(bytes), eof=_f(bool)),
    "forget": _spec("to_worker", keys=_f(list, _NONE)),
    "shutdown": _spec("to_worker"),
    # -- runner worker → daemon ---------------------------------------------------
    "worker_ready": _spec("from_worker", pid=_f(int), python=_f(str)),
    "debug_listening": _spec(
        "from_worker", run_id=_f(str, _NONE), host=_f(str), port=_f(int), attached=_opt(bool)
    ),
    "exec_started": _spec("from_worker", run_id=_f(str), warm_keys=_f(list)),
    "exec_done": _spec(
        "from_worker",
        run_id=_f(str),
        exit_code=_f(int),
        duration=_f(int, float),
        error=_f(dict, _NONE, record="error"),
        warm_reused=_f(list),
        interrupted=_f(bool),
        restart=_opt(str, _NONE),
        memory=_opt_record("memory"),
        survivors=_opt_items("survivor"),
        collectives=_opt(int, _NONE),  # a rank's collectives on its warm process group so far
    ),
    "exec_notice": MessageSpec(
        "from_worker", {"run_id": _f(str), "kind": _f(str), "text": _f(str)}
    ),
    "warm_report": _spec(
        "from_worker", warm=_items("warm_object"), memory=_f(dict, record="memory")
    ),
    "worker_log": _spec("from_worker", level=_f(str), message=_f(str)),
    "metrics_batch": _spec(
        "from_worker", run_id=_f(str), rank=_f(int, _NONE), series=_items("metric_batch")
    ),
    # the run's script blocks reading its stdin (waiting True), or no longer does
    "stdin_wait": _spec("from_worker", run_id=_f(str), waiting=_f(bool)),
}

REQUEST_TYPES = [t for t, s in MESSAGE_TYPES.items() if s.kind == "request"]
