"""hotswap's wire protocol: message types, the version, and validation.

Imports neither zmq nor torch: the daemon, every client and the runner worker share it, and
the TypeScript mirror in the extension is checked against it. docs/protocol.md explains it.
"""

from __future__ import annotations

import os
import time
from typing import Any, NamedTuple

PROTOCOL_VERSION = "1.0"
PROTOCOL_MAJOR = int(PROTOCOL_VERSION.split(".")[0])

MAX_MESSAGE_BYTES = 64 * 1024 * 1024
"""Largest signed payload accepted; bigger messages get an ``oversized`` error."""

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
]


class ProtocolError(Exception):
    """A message that cannot be accepted. ``ename`` names the kind for the error reply."""

    ename = "protocol_error"

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint


class MalformedMessage(ProtocolError):
    ename = "malformed"


class UnknownMessageType(ProtocolError):
    ename = "unknown_type"


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


class Field(NamedTuple):
    types: tuple[type, ...]
    required: bool = True


def _f(*types: type, required: bool = True) -> Field:
    return Field(types, required)


STR, NUM = (str,), (int, float)


class MessageSpec(NamedTuple):
    kind: str  # "request" (client → daemon), "reply", "event" (daemon → client), "worker"
    fields: dict[str, Field]


def _spec(kind: str, **fields: Field) -> MessageSpec:
    return MessageSpec(kind, fields)


_NONE = type(None)

MESSAGE_TYPES: dict[str, MessageSpec] = {
    # -- requests from clients ----------------------------------------------------
    "hello": _spec("request", protocol_version=_f(str), client=_f(str)),
    "run": _spec(
        "request",
        entry=_f(str),
        args=_f(list),
        cwd=_f(str),
        env=_f(dict),
        queue=_f(bool, required=False),
        root=_f(str, required=False),
        state=_f(str, required=False),
        debug=_f(bool, required=False),
        wait=_f(bool, required=False),
        just_my_code=_f(bool, required=False),
        entry_kind=_f(str, required=False),  # "path" (default), "module" (-m), "code" (-c)
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
        total_files=_f(int, required=False),
        total_bytes=_f(int, required=False),
    ),
    "cancel": _spec("request", run_id=_f(str, _NONE, required=False)),
    "stdin": _spec("request", run_id=_f(str), data=_f(bytes), eof=_f(bool, required=False)),
    "status": _spec("request"),
    "stop": _spec("request"),
    "release": _spec("request", keys=_f(list, _NONE, required=False)),
    # -- replies (type is "<request>_reply", or "error") --------------------------
    "hello_reply": _spec(
        "reply",
        protocol_version=_f(str),
        features=_f(list),
        daemon_pid=_f(int),
        workspace=_f(str),
    ),
    "run_reply": _spec("reply", run_id=_f(str), queued=_f(bool)),
    "cancel_reply": _spec("reply", cancelled=_f(list)),
    "stdin_reply": _spec("reply", accepted=_f(bool)),
    "status_reply": _spec("reply", daemon=_f(dict), workers=_f(list), runs=_f(list)),
    "stop_reply": _spec("reply", stopping=_f(bool)),
    "manifest_reply": _spec(
        "reply", state=_f(str), mode=_f(str), files=_f(dict), daemon_root=_f(str)
    ),
    "sync_reply": _spec(
        "reply", state=_f(str), mode=_f(str), applied=_f(bool), elapsed_ms=_f(int, float)
    ),
    "release_reply": _spec("reply", released=_f(list)),
    "error": _spec("reply", ename=_f(str), evalue=_f(str), hint=_f(str, required=False)),
    # -- events -------------------------------------------------------------------
    "run_started": _spec(
        "event",
        run_id=_f(str),
        entry=_f(str),
        worker=_f(int),
        worker_pid=_f(int),
        warm_keys=_f(list),
    ),
    "stream": _spec("event", run_id=_f(str), stream=_f(str), seq=_f(int), data=_f(bytes)),
    "run_finished": _spec(
        "event",
        run_id=_f(str),
        exit_code=_f(int),
        duration=_f(int, float),
        reason=_f(str),
        error=_f(dict, _NONE),
        message=_f(str),
        warm_reused=_f(list),
        warm_lost=_f(bool),
    ),
    "worker_restarted": _spec(
        "event", worker=_f(int), pid=_f(int), reason=_f(str), warm_lost=_f(list)
    ),
    "warm_changed": _spec("event", worker=_f(int), warm=_f(list)),
    "debug_ready": _spec(
        "event",
        run_id=_f(str, _NONE),
        worker=_f(int),
        host=_f(str),
        port=_f(int),
        path_mappings=_f(list),
        just_my_code=_f(bool),
        wait=_f(bool),
        attached=_f(bool, required=False),
    ),
    "sync_progress": _spec(
        "event",
        transaction=_f(str),
        files_done=_f(int),
        files_total=_f(int),
        bytes_done=_f(int),
        bytes_total=_f(int),
    ),
    # -- daemon ↔ runner worker (internal, same envelope and signing) -------------
    "worker_ready": _spec("worker", pid=_f(int), python=_f(str)),
    "exec": _spec(
        "worker",
        run_id=_f(str),
        entry=_f(str),
        args=_f(list),
        cwd=_f(str),
        env=_f(dict),
        workspace=_f(str),
        path_map=_f(list, _NONE, required=False),
        debug=_f(bool, required=False),
        wait=_f(bool, required=False),
        debug_timeout=_f(int, float, required=False),
        just_my_code=_f(bool, required=False),
        entry_kind=_f(str, required=False),
    ),
    "debug_listening": _spec(
        "worker",
        run_id=_f(str, _NONE),
        host=_f(str),
        port=_f(int),
        attached=_f(bool, required=False),
    ),
    "interrupt": _spec("worker", run_id=_f(str)),
    "feed_stdin": _spec("worker", run_id=_f(str), data=_f(bytes), eof=_f(bool)),
    "forget": _spec("worker", keys=_f(list, _NONE)),
    "shutdown": _spec("worker"),
    "exec_started": _spec("worker", run_id=_f(str), warm_keys=_f(list)),
    "exec_done": _spec(
        "worker",
        run_id=_f(str),
        exit_code=_f(int),
        duration=_f(int, float),
        error=_f(dict, _NONE),
        warm_reused=_f(list),
        interrupted=_f(bool),
        restart=_f(str, _NONE, required=False),
    ),
    "warm_report": _spec("worker", warm=_f(list), memory=_f(dict)),
    "worker_log": _spec("worker", level=_f(str), message=_f(str)),
}

REQUEST_TYPES = [t for t, s in MESSAGE_TYPES.items() if s.kind == "request"]
EVENT_TYPES = [t for t, s in MESSAGE_TYPES.items() if s.kind == "event"]
RUN_FINISHED_REASONS = ["exited", "cancelled", "crashed", "killed", "superseded", "failed"]
STREAMS = ["stdout", "stderr"]


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


def error_reply(parent: str | None, ename: str, evalue: str, hint: str = "") -> dict[str, Any]:
    body = {"status": "error", "ename": ename, "evalue": evalue, "hint": hint}
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


_ENVELOPE = {"v": STR, "id": STR, "type": STR, "ts": NUM, "parent": (str, _NONE), "body": (dict,)}


def validate(msg: object) -> dict[str, Any]:
    """Check an envelope and its body against MESSAGE_TYPES; return it or raise."""
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
    body = msg["body"]
    for name, field in spec.fields.items():
        if name not in body:
            if field.required:
                raise MalformedMessage(f"{msg['type']}: missing field {name!r}")
            continue
        if not _is(body[name], field.types):
            wanted = " or ".join(t.__name__ for t in field.types)
            raise MalformedMessage(f"{msg['type']}: field {name!r} must be {wanted}")
    return msg


def _is(value: object, types: tuple[type, ...]) -> bool:
    if isinstance(value, bool) and bool not in types:
        return False  # bool is an int subclass; a flag is not a count
    return isinstance(value, types)
