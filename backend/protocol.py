"""hotswap's wire protocol: message types, nested records, error names, the version, validation.

Imports neither zmq nor torch: the daemon, every client and the runner worker share it, and
the TypeScript mirror in the extension is checked against ``spec_json()``. docs/protocol.md
explains it; ``python -m hotswap.protocol`` prints it as JSON.
"""

from __future__ import annotations

import os
import re
import time
from typing import Any, NamedTuple

PROTOCOL_VERSION = "1.1"
PROTOCOL_MAJOR = int(PROTOCOL_VERSION.split(".")[0])

MAX_MESSAGE_BYTES = 64 * 1024 * 1024
"""Largest signed payload accepted; bigger messages get an ``oversized`` error."""

INTERRUPTED_EXIT = 130
"""Exit code of a run ended by an interrupt (cancel, Ctrl-C): 128 + SIGINT, as a shell shows."""

FEATURES = ["run", "cancel", "stdin", "status", "stop", "release", "queue", "warm", "sync", "debug"]
RUN_FINISHED_REASONS = ["exited", "cancelled", "crashed", "killed", "superseded"]
STREAMS = ["stdout", "stderr"]
RUN_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")
"""A client-chosen run id: 1-64 letters, digits, ``_`` or ``-``."""

ERRORS: dict[str, str] = {
    "protocol_error": "a request the daemon cannot accept as sent (evalue says why)",
    "malformed": "not 2 frames, not msgpack, or a field missing or of the wrong type",
    "unknown_type": "a message type this protocol does not declare",
    "not_a_request": "a reply, event or worker message type sent to the daemon as a request",
    "version_mismatch": "the peer speaks another major protocol version",
    "bad_signature": "the HMAC signature does not match (wrong key: reread the connection file)",
    "replayed": "a signature seen before, or a timestamp too far from the daemon's clock",
    "oversized": "a payload over MAX_MESSAGE_BYTES",
    "resync": "the daemon's workspace is not in the state the client assumed: resync",
    "unsafe_path": "a sync path that is absolute, escapes the workspace or is not a plain file",
    "bad_run_id": "a client-chosen run_id that is malformed or already used by a recent run",
    "internal": "a bug in the daemon while handling the request (see .hotswap/daemon.log)",
}
"""Every ``ename`` the daemon can send in an ``error`` reply, with its meaning."""


class ProtocolError(Exception):
    """A message that cannot be accepted. ``ename`` (a key of ERRORS) names it for the reply."""

    ename = "protocol_error"

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint


class MalformedMessage(ProtocolError):
    ename = "malformed"


class UnknownMessageType(ProtocolError):
    ename = "unknown_type"


class NotARequest(ProtocolError):
    ename = "not_a_request"


class VersionMismatch(ProtocolError):
    ename = "version_mismatch"


class BadSignature(ProtocolError):
    ename = "bad_signature"


class ReplayedMessage(ProtocolError):
    ename = "replayed"


class OversizedMessage(ProtocolError):
    ename = "oversized"


class ResyncNeeded(ProtocolError):
    """The daemon's workspace state is not what the client assumed: send the full manifest."""

    ename = "resync"


class UnsafePathError(ProtocolError):
    ename = "unsafe_path"


class BadRunId(ProtocolError):
    ename = "bad_run_id"


class InternalError(ProtocolError):
    """A bug in a daemon handler, reported to the client instead of stopping the daemon."""

    ename = "internal"


class Field(NamedTuple):
    """One body field: the Python types it may have, and for a map or a list of maps, the
    RECORDS entry its value (``record``) or each of its items (``items``) must match."""

    types: tuple[type, ...]
    required: bool = True
    record: str | None = None
    items: str | None = None


_NONE = type(None)
STR, NUM = (str,), (int, float)


def _f(*types: type, required: bool = True, record: str | None = None) -> Field:
    return Field(types, required, record)


def _items(record: str, *more: type, required: bool = True) -> Field:
    return Field((list, *more), required, None, record)


def _opt(*types: type) -> Field:
    return Field(types, False)


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
        "build_seconds": _f(int, float),
        "hits": _f(int),
    },
    "memory": {"rss": _opt(int, _NONE), "cuda_allocated": _opt(int), "cuda_reserved": _opt(int)},
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
    "hello": _spec("request", protocol_version=_f(str), client=_f(str)),
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
    ),
    "stream": _spec("event", run_id=_f(str), stream=_f(str), seq=_f(int), data=_f(bytes)),
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
    ),
    "worker_restarted": _spec(
        "event", worker=_f(int), pid=_f(int), reason=_f(str), warm_lost=_f(list)
    ),
    "warm_changed": _spec("event", worker=_f(int), warm=_items("warm_object")),
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
    ),
    "warm_report": _spec(
        "from_worker", warm=_items("warm_object"), memory=_f(dict, record="memory")
    ),
    "worker_log": _spec("from_worker", level=_f(str), message=_f(str)),
}

REQUEST_TYPES = [t for t, s in MESSAGE_TYPES.items() if s.kind == "request"]


def new_id() -> str:
    return os.urandom(16).hex()


def make_message(
    msg_type: str, body: dict[str, Any] | None = None, parent: str | None = None
) -> dict[str, Any]:
    """An envelope: version, id, type, time, parent (the request a reply answers), body."""
    msg = {
        "v": PROTOCOL_VERSION,
        "id": new_id(),
        "type": msg_type,
        "ts": time.time(),
        "parent": parent,
        "body": body or {},
    }
    validate(msg)
    return msg


def reply_to(request: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    return make_message(f"{request['type']}_reply", {"status": "ok", **body}, request["id"])


def error_reply(parent: str | None, error: ProtocolError) -> dict[str, Any]:
    """The ``error`` reply for ``error``, whose ename must be declared in ERRORS."""
    assert error.ename in ERRORS, f"undeclared ename {error.ename!r}: add it to ERRORS"
    body = {"status": "error", "ename": error.ename, "evalue": str(error), "hint": error.hint}
    return make_message("error", body, parent)


def check_version(version: object) -> None:
    """Raise VersionMismatch unless ``version`` has our major version."""
    if not isinstance(version, str) or not version.split(".")[0].isdigit():
        raise VersionMismatch(f"bad protocol version {version!r}")
    if int(version.split(".")[0]) != PROTOCOL_MAJOR:
        raise VersionMismatch(
            f"protocol version mismatch: peer speaks {version}, this side speaks "
            f"{PROTOCOL_VERSION}",
            hint="upgrade hotswap on both sides to the same release "
            "(pip install -U hotswap), then restart the daemon with `hotswap stop`",
        )


def check_run_id(run_id: object) -> str:
    """A client-chosen run id, or BadRunId saying what a good one looks like."""
    if not isinstance(run_id, str) or not RUN_ID_PATTERN.fullmatch(run_id):
        raise BadRunId(
            f"run: bad run_id {run_id!r}",
            hint="choose 1-64 characters among letters, digits, '_' and '-' (or send none)",
        )
    return run_id


_ENVELOPE = {"v": STR, "id": STR, "type": STR, "ts": NUM, "parent": (str, _NONE), "body": (dict,)}


def validate(msg: object) -> dict[str, Any]:
    """Check an envelope and its body (nested records too) against the spec; return it or raise."""
    if not isinstance(msg, dict):
        raise MalformedMessage(f"a message must be a map, got {type(msg).__name__}")
    for name, types in _ENVELOPE.items():
        if name not in msg:
            raise MalformedMessage(f"message lacks the envelope field {name!r}")
        if not _is(msg[name], types):
            raise MalformedMessage(f"envelope field {name!r} has the wrong type")
    check_version(msg["v"])
    spec = MESSAGE_TYPES.get(msg["type"])
    if spec is None:
        raise UnknownMessageType(
            f"unknown message type {msg['type']!r}",
            hint=f"known requests: {', '.join(REQUEST_TYPES)}",
        )
    _check_fields(msg["type"], spec.fields, msg["body"])
    return msg


def _check_fields(path: str, fields: dict[str, Field], value: dict[str, Any]) -> None:
    """Raise MalformedMessage naming the first field of ``value`` (at ``path``) that is wrong."""
    for name, field in fields.items():
        if name not in value:
            if field.required:
                raise MalformedMessage(f"{path}: missing field {name!r}")
            continue
        item = value[name]
        if not _is(item, field.types):
            wanted = " or ".join(_TYPE_NAMES[t] for t in field.types)
            raise MalformedMessage(f"{path}.{name} must be {wanted}")
        if field.record is not None and isinstance(item, dict):
            _check_fields(f"{path}.{name}", RECORDS[field.record], item)
        if field.items is not None and isinstance(item, list):
            for index, element in enumerate(item):
                where = f"{path}.{name}[{index}]"
                if not isinstance(element, dict):
                    raise MalformedMessage(f"{where} must be a map ({field.items})")
                _check_fields(where, RECORDS[field.items], element)


def _is(value: object, types: tuple[type, ...]) -> bool:
    if isinstance(value, bool) and bool not in types:
        return False  # bool is an int subclass; a flag is not a count
    return isinstance(value, types)


_TYPE_NAMES = {
    str: "str",
    int: "int",
    float: "float",
    bool: "bool",
    list: "list",
    dict: "dict",
    bytes: "bytes",
    _NONE: "none",
}


def _field_json(field: Field) -> dict[str, Any]:
    return {
        "types": [_TYPE_NAMES[t] for t in field.types],
        "required": field.required,
        "record": field.record,
        "items": field.items,
    }


def spec_json() -> dict[str, Any]:
    """The whole protocol as plain JSON data: what the TypeScript mirror is checked against."""
    return {
        "version": PROTOCOL_VERSION,
        "messages": {
            name: {
                "kind": spec.kind,
                "fields": {n: _field_json(f) for n, f in spec.fields.items()},
            }
            for name, spec in MESSAGE_TYPES.items()
        },
        "records": {
            name: {n: _field_json(f) for n, f in fields.items()} for name, fields in RECORDS.items()
        },
        "errors": dict(ERRORS),
    }


if __name__ == "__main__":
    import json
    import sys

    json.dump(spec_json(), sys.stdout, indent=2)
    sys.stdout.write("\n")
