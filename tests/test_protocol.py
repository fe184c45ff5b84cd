"""Level 1: the wire protocol and its signing, without sockets."""

from __future__ import annotations

import time
from typing import Any

import msgpack
import pytest
from hotswap.protocol import (
    MAX_MESSAGE_BYTES,
    MESSAGE_TYPES,
    PROTOCOL_VERSION,
    REQUEST_TYPES,
    BadSignature,
    Field,
    MalformedMessage,
    OversizedMessage,
    ReplayedMessage,
    UnknownMessageType,
    VersionMismatch,
    check_version,
    error_reply,
    make_message,
    reply_to,
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


def sample_body(msg_type: str, optional: bool = True) -> dict[str, Any]:
    """A valid body for ``msg_type`` built from its field specs (optional fields too, if asked)."""
    fields = MESSAGE_TYPES[msg_type].fields
    return {
        name: SAMPLES[field.types[0]]
        for name, field in fields.items()
        if field.required or optional
    }


def wrong_value(field: Field) -> Any:
    for value in WRONG_CANDIDATES:
        if isinstance(value, bool) and bool not in field.types:
            return value  # a bool must never pass for an int (or anything else)
        if not isinstance(value, field.types):
            return value
    raise AssertionError(f"no wrong value for {field}")


def test_every_message_type_has_a_kind_the_protocol_knows() -> None:
    assert MESSAGE_TYPES, "no message types declared"
    assert {spec.kind for spec in MESSAGE_TYPES.values()} <= {"request", "reply", "event", "worker"}
    for name in ("hello", "run", "cancel", "status", "stop", "stdin"):
        assert name in REQUEST_TYPES
    for name in ("run_started", "stream", "run_finished", "worker_restarted", "warm_changed"):
        assert MESSAGE_TYPES[name].kind == "event"


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


def test_every_field_accepts_each_of_its_declared_types() -> None:
    for msg_type, spec in MESSAGE_TYPES.items():
        for name, field in spec.fields.items():
            for declared in field.types:
                body = {**sample_body(msg_type), name: SAMPLES[declared]}
                validate(make_message(msg_type, body))


def test_replies_and_errors_are_built_as_valid_messages() -> None:
    request = make_message("status")
    reply = reply_to(request, {"daemon": {}, "workers": [], "runs": []})
    assert reply["type"] == "status_reply" and reply["parent"] == request["id"]
    assert reply["body"]["status"] == "ok"
    error = error_reply(request["id"], "malformed", "what went wrong", "what to do")
    assert error["type"] == "error" and error["parent"] == request["id"]
    assert error["body"] == {
        "status": "error",
        "ename": "malformed",
        "evalue": "what went wrong",
        "hint": "what to do",
    }


def test_extra_body_fields_are_allowed_for_forward_compatibility() -> None:
    validate(make_message("status", {"a_later_field": 1}))


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
    with pytest.raises(MalformedMessage, match=f"field {name!r} must be"):
        validate(msg)


@pytest.mark.parametrize(
    ("msg_type", "name"),
    [("stream", "seq"), ("hello_reply", "daemon_pid"), ("run_finished", "exit_code")],
)
def test_a_bool_is_not_an_int(msg_type: str, name: str) -> None:
    msg = make_message(msg_type, sample_body(msg_type))
    msg["body"][name] = True
    with pytest.raises(MalformedMessage, match=f"field {name!r} must be int"):
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
    check_version(version)


@pytest.mark.parametrize("version", ["2.0", "0.9", "10.0", "", "one.zero", ".1", None, 1, 1.0])
def test_check_version_rejects_other_majors_and_garbage(version: object) -> None:
    with pytest.raises(VersionMismatch):
        check_version(version)


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
