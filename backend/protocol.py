"""hotswap's wire protocol: message types, nested records, error names, the version, validation.

Imports neither zmq nor torch: the daemon, every client and the runner worker share it, and
the TypeScript mirror in the extension is checked against ``spec_json()``. docs/protocol.md
explains it; ``python -m hotswap.protocol`` prints it as JSON.
"""

from __future__ import annotations

import os
import re
import time
from typing import Any

from .messages import MESSAGE_TYPES, RECORDS, REQUEST_TYPES, Field

PROTOCOL_VERSION = "1.1"
PROTOCOL_MAJOR = int(PROTOCOL_VERSION.split(".")[0])

MAX_MESSAGE_BYTES = 64 * 1024 * 1024
"""Largest signed payload accepted; bigger messages get an ``oversized`` error."""

# Limits of a decoded message, checked as it is decoded (after its signature: a peer without
# the key never gets us to decode anything), before any handler sees it.
MAX_DEPTH = 16
"""Nesting of maps and lists; the deepest declared message (a sync file record) uses 4."""
MAX_STR_BYTES = 1 << 20
"""One string: a path, an argument, an environment value, the code of ``python -c``."""
MAX_ITEMS = 1 << 20
"""Entries of one list or map: a manifest of a million files fits."""
MAX_PATH_BYTES = 4096
"""A path the daemon is asked to use (a run's cwd and entry, a sync path): Linux's PATH_MAX."""

INTERRUPTED_EXIT = 130
"""Exit code of a run ended by an interrupt (cancel, Ctrl-C): 128 + SIGINT, as a shell shows."""

FEATURES = [
    "run",
    "cancel",
    "stdin",
    "status",
    "stop",
    "release",
    "queue",
    "warm",
    "sync",
    "debug",
    "subscribe",
    "metrics",
    "logs",
]
RUN_FINISHED_REASONS = ["exited", "cancelled", "crashed", "killed", "superseded", "resync"]
"""Why a run ended; ``resync``: it waited in the queue while the workspace moved on to another
state the daemon could not put back, so it never ran (the client syncs and submits it again)."""
NOTICE_KINDS = ["updated", "rebuilt", "served_warm", "reloaded", "evicted", "note"]
"""What a ``run_notice`` says: a warm object followed an edit in place, was rebuilt (and why),
was served warm (from_pretrained), a checkpoint loaded again, an object dropped after the run
(and why), or something else hotswap did."""
STREAMS = ["stdout", "stderr"]
ENTRY_KINDS = ["path", "module", "code"]
"""What a run's ``entry`` names: a script path (or a folder/zip with ``__main__.py``), a module
(``-m``) or code (``-c``)."""
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
    "unknown_run": "a run_id the daemon keeps no record of (hotswap runs lists them)",
    "write_failed": "the daemon could not write synced files (a full disk): see evalue",
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


class WriteFailed(ProtocolError):
    """The daemon's disk refused a sync's files (full, read-only); says what was kept."""

    ename = "write_failed"

    def __init__(self, message: str) -> None:
        super().__init__(message, "free space on the daemon's disk (df -h), then run again")


class BadRunId(ProtocolError):
    ename = "bad_run_id"


class UnknownRun(ProtocolError):
    ename = "unknown_run"


class InternalError(ProtocolError):
    """A bug in a daemon handler, reported to the client instead of stopping the daemon."""

    ename = "internal"


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


_NONE = type(None)
_ENVELOPE = {
    "v": (str,),
    "id": (str,),
    "type": (str,),
    "ts": (int, float),
    "parent": (str, _NONE),
    "body": (dict,),
}


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


def check_depth(value: object) -> None:
    """Raise MalformedMessage if maps and lists nest deeper than MAX_DEPTH in ``value``."""
    level = [value] if isinstance(value, (dict, list)) else []
    depth = 0
    while level:
        depth += 1
        if depth > MAX_DEPTH:
            raise MalformedMessage(f"maps and lists nest deeper than {MAX_DEPTH} levels")
        below: list[Any] = []
        for item in level:
            children = item.values() if isinstance(item, dict) else item
            below.extend(c for c in children if isinstance(c, (dict, list)))
        level = below


def check_path_length(what: str, path: str) -> None:
    if len(path.encode(errors="replace")) > MAX_PATH_BYTES:
        raise ProtocolError(
            f"{what} is longer than {MAX_PATH_BYTES} bytes ({path[:40]!r}…)",
            hint="no file system takes a path that long: check what the client sent",
        )


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
