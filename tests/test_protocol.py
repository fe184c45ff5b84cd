"""Level 1: the wire protocol and its signing, without sockets."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
import time
from typing import Any

import msgpack
import pytest
from hotswap.messages import MESSAGE_KINDS, MESSAGE_TYPES, RECORDS, REQUEST_TYPES, Field
from hotswap.protocol import (
    ERRORS,
    MAX_MESSAGE_BYTES,
    PROTOCOL_MAJOR,
    PROTOCOL_VERSION,
    BadRunId,
    BadSignature,
    MalformedMessage,
    OversizedMessage,
    ProtocolError,
    ReplayedMessage,
    UnknownMessageType,
    VersionMismatch,
    check_run_id,
    check_version,
    error_reply,
    make_message,
    new_id,
    reply_to,
    spec_json,
    validate,
)
from hotswap.session import REPLAY_WINDOW_SECONDS, Session, new_key

# One sample per Python type a field may declare. A field type missing here makes
# sample_body raise KeyError, so a new kind of field cannot slip past these tests untested.
SAMPLES: dict[type, Any] = {
    str: "text",
    int: 7,
    float: 1.5,
    bool: True,
    bytes: b"\x00\xffbytes",
    list: ["item"],
    dict: {"key": "value"},
    type(None): None,
}

# A value of the wrong type for a field: the first sample whose type the field does not accept.
WRONG_CANDIDATES: list[Any] = [b"bytes", "text", 7, ["item"], {"k": "v"}, True, None]


def sample_value(field: Field, declared: type) -> Any:
    """A valid value of type ``declared`` for ``field``: a sample record where it names one."""
    if declared is dict and field.record is not None:
        return sample_record(field.record)
    if declared is list and field.items is not None:
        return [sample_record(field.items)]
    return SAMPLES[declared]


def sample_record(record: str, optional: bool = True) -> dict[str, Any]:
    return sample_fields(RECORDS[record], optional)


def sample_fields(fields: dict[str, Field], optional: bool = True) -> dict[str, Any]:
    return {
        name: sample_value(field, field.types[0])
        for name, field in fields.items()
        if field.required or optional
    }


def sample_body(msg_type: str, optional: bool = True) -> dict[str, Any]:
    """A valid body for ``msg_type`` built from its field specs (optional fields too, if asked)."""
    return sample_fields(MESSAGE_TYPES[msg_type].fields, optional)


def wrong_value(field: Field) -> Any:
    for value in WRONG_CANDIDATES:
        if isinstance(value, bool) and bool not in field.types:
            return value  # a bool must never pass for an int (or anything else)
        if not isinstance(value, field.types):
            return value
    raise AssertionError(f"no wrong value for {field}")


def test_every_message_type_has_a_kind_the_protocol_knows() -> None:
    assert MESSAGE_TYPES, "no message types declared"
    assert set(MESSAGE_KINDS) == {"request", "reply", "event", "to_worker", "from_worker"}
    assert {spec.kind for spec in MESSAGE_TYPES.values()} == set(MESSAGE_KINDS)
    for name in ("hello", "run", "cancel", "status", "stop", "stdin"):
        assert name in REQUEST_TYPES
    for name in ("run_started", "stream", "run_finished", "worker_restarted", "warm_changed"):
        assert MESSAGE_TYPES[name].kind == "event"
    for name in ("exec", "interrupt", "feed_stdin", "forget", "shutdown"):
        assert MESSAGE_TYPES[name].kind == "to_worker", name
    for name in ("worker_ready", "exec_started", "exec_done", "warm_report", "debug_listening"):
        assert MESSAGE_TYPES[name].kind == "from_worker", name


@pytest.mark.parametrize("msg_type", sorted(MESSAGE_TYPES))
@pytest.mark.parametrize("optional", [True, False], ids=["all-fields", "required-only"])
def test_well_formed_message_of_every_type_validates(msg_type: str, optional: bool) -> None:
    body = sample_body(msg_type, optional)
    msg = make_message(msg_type, body, parent="a-parent-id")
    assert validate(msg) is msg
    assert msg["v"] == PROTOCOL_VERSION and msg["type"] == msg_type and msg["body"] == body
    assert msg["parent"] == "a-parent-id"
    assert isinstance(msg["id"], str) and len(msg["id"]) == 32
    assert abs(msg["ts"] - time.time()) < 60


def test_every_field_takes_each_declared_type_across_the_wire_and_refuses_every_other() -> None:
    sender, receiver = two_sessions()
    for msg_type, spec in MESSAGE_TYPES.items():
        for name, field in spec.fields.items():
            for kind, sample in SAMPLES.items():
                if kind not in field.types:
                    with pytest.raises(MalformedMessage, match=name):
                        make_message(msg_type, {**sample_body(msg_type), name: sample})
                    continue
                value = sample_value(field, kind)
                got = receiver.unpack(
                    sender.pack(make_message(msg_type, {**sample_body(msg_type), name: value}))
                )
                # msgpack keeps the type: bytes stay bytes, a list is not read back as a tuple
                assert got["body"][name] == value, (msg_type, name, kind)
                assert type(got["body"][name]) is kind, (msg_type, name, kind)


def test_replies_and_errors_are_built_as_valid_messages() -> None:
    request = make_message("status")
    reply = reply_to(request, sample_body("status_reply"))
    assert reply["type"] == "status_reply" and reply["parent"] == request["id"]
    assert reply["body"]["status"] == "ok"
    error = error_reply(request["id"], MalformedMessage("what went wrong", "what to do"))
    assert error["type"] == "error" and error["parent"] == request["id"]
    assert error["body"] == {
        "status": "error",
        "ename": "malformed",
        "evalue": "what went wrong",
        "hint": "what to do",
    }


def test_extra_body_fields_are_allowed_for_forward_compatibility() -> None:
    # A newer peer's field reaches this side intact, through signing, and is not a reason to refuse.
    sender, receiver = two_sessions()
    msg = make_message("run_finished", {**sample_body("run_finished"), "a_later_field": [1, "x"]})
    assert receiver.unpack(sender.pack(msg))["body"]["a_later_field"] == [1, "x"]
    with pytest.raises(MalformedMessage, match="exit_code"):
        make_message(
            "run_finished", {**sample_body("run_finished"), "a_later_field": 1, "exit_code": "0"}
        )


@pytest.mark.parametrize("name", ["v", "id", "type", "ts", "parent", "body"])
def test_missing_envelope_field_is_malformed(name: str) -> None:
    msg = make_message("status")
    del msg[name]
    with pytest.raises(MalformedMessage, match=repr(name)):
        validate(msg)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("v", 1),
        ("id", 12),
        ("id", None),
        ("type", b"status"),
        ("ts", "now"),
        ("ts", True),
        ("parent", 3),
        ("body", []),
        ("body", None),
    ],
)
def test_envelope_field_of_wrong_type_is_malformed(name: str, value: Any) -> None:
    msg = {**make_message("status"), name: value}
    with pytest.raises(MalformedMessage, match=repr(name)):
        validate(msg)


@pytest.mark.parametrize("msg", [None, [], "hello", b"\x80", 42, ("v", "1.0")])
def test_a_message_that_is_not_a_map_is_malformed(msg: object) -> None:
    with pytest.raises(MalformedMessage, match="must be a map"):
        validate(msg)


def test_unknown_type_is_rejected_with_a_hint_listing_requests() -> None:
    msg = {**make_message("status"), "type": "frobnicate"}
    with pytest.raises(UnknownMessageType, match="frobnicate") as info:
        validate(msg)
    assert info.value.ename == "unknown_type"
    for request in REQUEST_TYPES:
        assert request in info.value.hint


def test_make_message_refuses_what_validate_refuses() -> None:
    with pytest.raises(UnknownMessageType):
        make_message("frobnicate")
    with pytest.raises(MalformedMessage):
        make_message("hello", {"client": "no version"})


def _required_fields() -> list[tuple[str, str]]:
    return [
        (msg_type, name)
        for msg_type, spec in sorted(MESSAGE_TYPES.items())
        for name, field in spec.fields.items()
        if field.required
    ]


def _all_fields() -> list[tuple[str, str]]:
    return [
        (msg_type, name) for msg_type, spec in sorted(MESSAGE_TYPES.items()) for name in spec.fields
    ]


@pytest.mark.parametrize(("msg_type", "name"), _required_fields())
def test_missing_required_body_field_is_malformed(msg_type: str, name: str) -> None:
    msg = make_message(msg_type, sample_body(msg_type))
    del msg["body"][name]
    with pytest.raises(MalformedMessage, match=f"{msg_type}: missing field {name!r}"):
        validate(msg)


@pytest.mark.parametrize(("msg_type", "name"), _all_fields())
def test_body_field_of_wrong_type_is_malformed(msg_type: str, name: str) -> None:
    field = MESSAGE_TYPES[msg_type].fields[name]
    msg = make_message(msg_type, sample_body(msg_type))
    msg["body"][name] = wrong_value(field)
    with pytest.raises(MalformedMessage, match=f"{msg_type}\\.{name} must be"):
        validate(msg)


@pytest.mark.parametrize(
    ("msg_type", "name"),
    [("stream", "seq"), ("hello_reply", "daemon_pid"), ("run_finished", "exit_code")],
)
def test_a_bool_is_not_an_int(msg_type: str, name: str) -> None:
    msg = make_message(msg_type, sample_body(msg_type))
    msg["body"][name] = True
    with pytest.raises(MalformedMessage, match=f"{msg_type}\\.{name} must be int"):
        validate(msg)


def test_a_bool_is_not_a_number_in_the_envelope_either() -> None:
    with pytest.raises(MalformedMessage, match="'ts'"):
        validate({**make_message("status"), "ts": False})


def test_other_major_version_names_both_versions() -> None:
    msg = {**make_message("status"), "v": "2.0"}
    with pytest.raises(VersionMismatch) as info:
        validate(msg)
    assert "2.0" in str(info.value) and PROTOCOL_VERSION in str(info.value)
    assert info.value.ename == "version_mismatch"
    assert info.value.hint, "a version mismatch should tell the user what to do"


@pytest.mark.parametrize("version", [PROTOCOL_VERSION, "1.0", "1.7", "1.x", "1"])
def test_check_version_accepts_our_major_version(version: str) -> None:
    # Accepted where it matters: in the envelope of a signed message, as the daemon reads it.
    sender, receiver = two_sessions()
    msg = {**make_message("status"), "v": version}
    assert receiver.unpack(sender.pack(msg))["v"] == version
    other = {**make_message("status"), "v": f"{PROTOCOL_MAJOR + 1}.0"}
    with pytest.raises(VersionMismatch):
        receiver.unpack(sender.pack(other))


@pytest.mark.parametrize("version", ["2.0", "0.9", "10.0", "", "one.zero", ".1", None, 1, 1.0])
def test_check_version_rejects_other_majors_and_garbage(version: object) -> None:
    with pytest.raises(VersionMismatch):
        check_version(version)


# -- nested records ------------------------------------------------------------------------


def _nested_fields() -> list[tuple[str, str, str, str]]:
    """(message type, body field, the path of its record, record field) for every nested field."""
    cases = []
    for msg_type, spec in sorted(MESSAGE_TYPES.items()):
        for name, field in spec.fields.items():
            record = field.record or field.items
            if record is None:
                continue
            where = f"{msg_type}.{name}" + ("[0]" if field.items else "")
            cases += [(msg_type, name, where, sub) for sub in RECORDS[record]]
    return cases


def _record_of(body: dict[str, Any], name: str) -> dict[str, Any]:
    value = body[name]
    return value[0] if isinstance(value, list) else value


def _record_field(msg_type: str, name: str, sub: str) -> Field:
    field = MESSAGE_TYPES[msg_type].fields[name]
    return RECORDS[field.record or field.items or ""][sub]


@pytest.mark.parametrize(("msg_type", "name", "where", "sub"), _nested_fields())
def test_nested_field_of_wrong_type_is_malformed_and_named_by_its_path(
    msg_type: str, name: str, where: str, sub: str
) -> None:
    msg = make_message(msg_type, sample_body(msg_type))
    _record_of(msg["body"], name)[sub] = wrong_value(_record_field(msg_type, name, sub))
    with pytest.raises(MalformedMessage, match=f"^{re.escape(where)}\\.{sub} must be"):
        validate(msg)


@pytest.mark.parametrize(("msg_type", "name", "where", "sub"), _nested_fields())
def test_missing_required_nested_field_is_malformed(
    msg_type: str, name: str, where: str, sub: str
) -> None:
    msg = make_message(msg_type, sample_body(msg_type))
    del _record_of(msg["body"], name)[sub]
    if _record_field(msg_type, name, sub).required:
        with pytest.raises(MalformedMessage, match=f"^{re.escape(where)}: missing field '{sub}'"):
            validate(msg)
    else:
        validate(msg)


def test_a_deep_error_names_the_whole_path() -> None:
    frame = {"file": "a.py", "line": 1, "function": "f"}
    error = {"type": "ValueError", "message": "m", "frames": [frame, frame, {**frame, "line": "3"}]}
    body = {**sample_body("run_finished"), "error": error}
    with pytest.raises(
        MalformedMessage, match=r"^run_finished\.error\.frames\[2\]\.line must be int"
    ):
        make_message("run_finished", body)


@pytest.mark.parametrize("element", ["text", 3, None, ["a"]])
def test_a_list_of_records_refuses_an_element_that_is_not_a_map(element: object) -> None:
    body = {**sample_body("warm_changed"), "warm": [sample_record("warm_object"), element]}
    with pytest.raises(MalformedMessage, match=r"^warm_changed\.warm\[1\] must be a map"):
        make_message("warm_changed", body)


def test_every_record_is_used_and_every_reference_names_a_record() -> None:
    used = set()
    for fields in [*(s.fields for s in MESSAGE_TYPES.values()), *RECORDS.values()]:
        for field in fields.values():
            for record, container in ((field.record, dict), (field.items, list)):
                if record is not None:
                    assert record in RECORDS, record
                    assert container in field.types, (record, field)
                    used.add(record)
    assert used == set(RECORDS)


# -- spec_json: what the TypeScript mirror is checked against -------------------------------

WIRE_TYPES = {"str", "int", "float", "bool", "list", "dict", "bytes", "none"}


def _check_field_json(field: dict[str, Any]) -> None:
    assert set(field) == {"types", "required", "record", "items"}
    assert field["types"] and set(field["types"]) <= WIRE_TYPES
    assert isinstance(field["required"], bool)
    for ref in (field["record"], field["items"]):
        assert ref is None or ref in RECORDS


def test_spec_json_has_the_agreed_shape() -> None:
    spec = spec_json()
    assert set(spec) == {"version", "messages", "records", "errors"}
    assert spec["version"] == PROTOCOL_VERSION == "1.1"
    assert set(spec["messages"]) == set(MESSAGE_TYPES)
    for message in spec["messages"].values():
        assert set(message) == {"kind", "fields"} and message["kind"] in MESSAGE_KINDS
        for field in message["fields"].values():
            _check_field_json(field)
    assert set(spec["records"]) == set(RECORDS)
    for record in spec["records"].values():
        for field in record.values():
            _check_field_json(field)
    assert spec["errors"] == ERRORS
    assert spec["messages"]["run_finished"]["fields"]["error"] == {
        "types": ["dict", "none"],
        "required": True,
        "record": "error",
        "items": None,
    }
    assert spec["records"]["error"]["frames"]["items"] == "frame"
    assert spec["messages"]["run"]["fields"]["run_id"]["required"] is False


def test_python_m_hotswap_protocol_prints_spec_json() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "hotswap.protocol"], capture_output=True, text=True, check=True
    ).stdout
    assert json.loads(out) == spec_json()


# -- error names ------------------------------------------------------------------------------


def _subclasses(cls: type[ProtocolError]) -> list[type[ProtocolError]]:
    return [cls, *(s for sub in cls.__subclasses__() for s in _subclasses(sub))]


def test_every_error_the_daemon_can_send_is_declared_once() -> None:
    import hotswap.server  # noqa: F401  (every module the daemon runs is imported)

    ours = [c for c in _subclasses(ProtocolError) if c.__module__.startswith("hotswap.")]
    enames = [cls.ename for cls in ours]
    assert len(enames) == len(set(enames)), "two error classes share an ename"
    assert set(enames) == set(ERRORS), "ERRORS and the ProtocolError classes disagree"
    for name in ("internal", "not_a_request", "bad_run_id", "resync", "unsafe_path"):
        assert ERRORS.get(name), name


def test_an_undeclared_ename_cannot_be_sent() -> None:
    class Invented(ProtocolError):
        ename = "invented"

    with pytest.raises(AssertionError, match="invented"):
        error_reply(None, Invented("x"))


@pytest.mark.parametrize("run_id", ["a", "A-z_09", "x" * 64, new_id()])
def test_good_run_ids_are_accepted(run_id: str) -> None:
    assert check_run_id(run_id) == run_id


@pytest.mark.parametrize("run_id", ["", "x" * 65, "a b", "a/b", "é", "a.b", 7, None])
def test_bad_run_ids_are_refused_with_a_hint(run_id: object) -> None:
    with pytest.raises(BadRunId, match="bad run_id") as info:
        check_run_id(run_id)
    assert info.value.ename == "bad_run_id" and "64" in info.value.hint


# -- the session: signing, replay guard, size limit ---------------------------------------


def two_sessions() -> tuple[Session, Session]:
    """A sender and a receiver sharing a key, as a client and the daemon do."""
    key = new_key()
    return Session(key), Session(key)


def test_pack_unpack_roundtrip_keeps_every_value() -> None:
    sender, receiver = two_sessions()
    msg = make_message("stdin", {"run_id": "r1", "data": b"\x00\x01 binary \xff", "eof": True})
    frames = sender.pack(msg)
    assert len(frames) == 2 and all(isinstance(f, bytes) for f in frames)
    assert receiver.unpack(frames) == msg
    assert isinstance(receiver.unpack(sender.pack(make_message("status")))["body"], dict)


def test_signature_is_hex_hmac_sha256_of_the_payload() -> None:
    import hashlib
    import hmac

    key = new_key()
    signature, payload = Session(key).pack(make_message("status"))
    assert signature == hmac.new(key.encode(), payload, hashlib.sha256).hexdigest().encode()
    assert msgpack.unpackb(payload)["type"] == "status"


def test_tampered_payload_is_a_bad_signature() -> None:
    sender, receiver = two_sessions()
    msg = make_message("run", {"entry": "a.py", "args": [], "cwd": "/", "env": {}})
    signature, payload = sender.pack(msg)
    tampered = payload.replace(b"a.py", b"b.py")
    assert tampered != payload
    with pytest.raises(BadSignature) as info:
        receiver.unpack([signature, tampered])
    assert info.value.ename == "bad_signature" and "connection.json" in info.value.hint


def test_wrong_key_is_a_bad_signature() -> None:
    frames = Session(new_key()).pack(make_message("status"))
    with pytest.raises(BadSignature):
        Session(new_key()).unpack(frames)


def test_empty_signature_is_a_bad_signature() -> None:
    _, payload = Session(new_key()).pack(make_message("status"))
    with pytest.raises(BadSignature):
        Session(new_key()).unpack([b"", payload])


def test_replayed_frames_are_refused() -> None:
    sender, receiver = two_sessions()
    frames = sender.pack(make_message("status"))
    receiver.unpack(frames)
    with pytest.raises(ReplayedMessage, match="already received") as info:
        receiver.unpack(frames)
    assert info.value.ename == "replayed"
    receiver.unpack(sender.pack(make_message("status")))  # a fresh message still passes


def test_the_replay_guard_remembers_every_message_of_its_window_in_fixed_memory() -> None:
    """Three windows of traffic at 150 messages a second: each signature is refused while a
    message of its time would pass, colliding slots included, and the memory never grows."""
    from hotswap.session import ReplayGuard

    guard = ReplayGuard(window=300.0)
    size = guard.keys.buffer_info()[1] + guard.times.buffer_info()[1]
    recent: list[tuple[bytes, float]] = []
    for i in range(3 * 300 * 150):
        now = 1_000_000.0 + i / 150
        signature = hashlib.sha256(str(i).encode()).hexdigest().encode()
        assert not guard.seen(signature, now, now), i
        recent.append((signature, now))
        if i % 997 == 0:  # a sample of the window, the oldest included
            for old, ts in (recent[max(0, i - 44_999)], recent[-1], recent[i // 2]):
                assert now - ts > 300.0 or guard.seen(old, ts, now)
    assert guard.keys.buffer_info()[1] + guard.times.buffer_info()[1] == size
    late = recent[0]
    assert not guard.seen(late[0], late[1] + 301, late[1] + 301 + 0.5), "expired: free again"


@pytest.mark.parametrize("offset", [-(REPLAY_WINDOW_SECONDS + 60), REPLAY_WINDOW_SECONDS + 60])
def test_message_outside_the_time_window_is_refused(offset: float) -> None:
    sender, receiver = two_sessions()
    msg = {**make_message("status"), "ts": time.time() + offset}
    with pytest.raises(ReplayedMessage, match="timestamp") as info:
        receiver.unpack(sender.pack(msg))
    assert "clock" in info.value.hint


def test_oversized_payload_is_refused_before_it_is_decoded() -> None:
    sender, receiver = two_sessions()
    big = make_message("stdin", {"run_id": "r1", "data": b"x" * MAX_MESSAGE_BYTES})
    frames = sender.pack(big)
    assert len(frames[1]) > MAX_MESSAGE_BYTES
    with pytest.raises(OversizedMessage, match=str(MAX_MESSAGE_BYTES)) as info:
        receiver.unpack(frames)
    assert info.value.ename == "oversized"


def test_payload_at_the_limit_is_accepted() -> None:
    sender, receiver = two_sessions()
    overhead = len(sender.pack(make_message("stdin", {"run_id": "r1", "data": b""}))[1])
    # msgpack's bin32 header is 3 bytes longer than the bin8 one of the empty message
    data = b"x" * (MAX_MESSAGE_BYTES - overhead - 3)
    frames = sender.pack(make_message("stdin", {"run_id": "r1", "data": data}))
    assert len(frames[1]) == MAX_MESSAGE_BYTES
    assert receiver.unpack(frames)["body"]["data"] == data


@pytest.mark.parametrize(
    "payload",
    [
        b"\xc1 not msgpack",  # 0xc1 is never used by msgpack
        b"",
        msgpack.packb(["a", "list"]),
        msgpack.packb({"v": "1.0"}),
        msgpack.packb({1: "int keys"}),
    ],
    ids=["garbage", "empty", "list", "partial-envelope", "int-keys"],
)
def test_undecodable_or_invalid_payload_with_a_valid_signature_is_malformed(
    payload: bytes,
) -> None:
    sender, receiver = two_sessions()
    with pytest.raises(MalformedMessage):
        receiver.unpack([sender.sign(payload), payload])


@pytest.mark.parametrize("count", [0, 1, 3])
def test_wrong_number_of_frames_is_malformed(count: int) -> None:
    sender, receiver = two_sessions()
    frames = sender.pack(make_message("status"))
    frames = [*frames, b"extra"][:count]
    with pytest.raises(MalformedMessage, match=f"got {count}"):
        receiver.unpack(frames)


@pytest.mark.parametrize("key", ["", "short", b"0123456789abcde"])
def test_keys_shorter_than_16_bytes_are_rejected(key: str | bytes) -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        Session(key)


def test_str_and_bytes_keys_sign_alike() -> None:
    key = new_key()
    assert len(key) >= 32
    frames = Session(key).pack(make_message("status"))
    Session(key.encode()).unpack(frames)
