"""Fuzzing a real daemon with hypothesis: random and mutated frames, truncated msgpack, deep
nesting, wrong field types, unknown types, out-of-order sync, every decoded limit (depth,
string, list and map lengths, path lengths) at and past its value. Every message is answered (an
error or a reply), the daemon's memory stays bounded, and the next run works.

``make test`` runs a small sample; ``make fuzz`` sets HOTSWAP_FUZZ_CASES=2500 (7 properties).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack
import pytest
import zmq
from conftest import Workspace
from hotswap.messages import REQUEST_TYPES
from hotswap.protocol import (
    MAX_DEPTH,
    MAX_ITEMS,
    MAX_PATH_BYTES,
    MAX_STR_BYTES,
    PROTOCOL_VERSION,
    make_message,
    new_id,
)
from hotswap.session import Session
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

CASES = int(os.environ.get("HOTSWAP_FUZZ_CASES", "150"))
FUZZ = settings(
    max_examples=CASES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
# `stop` would end the daemon under test: every other request is fair game.
FUZZED_TYPES = [t for t in REQUEST_TYPES if t != "stop"]


class Target:
    """A daemon started through the CLI and a raw DEALER that speaks to it."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self.connection = ws.connection()
        self.session = Session(self.connection["key"])
        self.sock: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(self.connection["address"])

    def answer(self, frames: list[bytes]) -> dict[str, Any]:
        """Send ``frames``; the daemon's answer, which must come and be signed."""
        self.sock.send_multipart(frames)
        assert self.sock.poll(20_000), f"no answer to {frames!r:.200}"
        msg = self.session.unpack(self.sock.recv_multipart())
        assert msg["type"] == "error" or msg["type"].endswith("_reply"), msg
        return msg

    @property
    def root(self) -> dict[str, str]:
        return {"root": str(self.ws.root)}

    def signed(self, payload: bytes) -> list[bytes]:
        return [self.session.sign(payload), payload]

    def rss(self) -> int:
        for line in Path(f"/proc/{self.connection['pid']}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmRSS")


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    ws = Workspace(tmp_path_factory.mktemp("fuzz") / "ws")
    try:
        ws.write("hello.py", "print('hello')\n")
        assert ws.run("hello.py").returncode == 0
        found = Target(ws)
        rss = found.rss()
        yield found
        found.sock.close()
        growth = found.rss() - rss
        assert growth < 64 * 1024 * 1024, f"the daemon grew by {growth} bytes"
        proc = ws.run("hello.py")
        assert (proc.returncode, proc.stdout) == (0, "hello\n"), proc.stderr
    finally:
        ws.stop()


scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=True)
    | st.text(max_size=40)
    | st.binary(max_size=64)
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner, max_size=5)
    ),
    max_leaves=30,
)


def envelope_of(msg_type: str, body: Any) -> dict[str, Any]:
    """An envelope as a client would build it, the body unchecked (make_message validates)."""
    return {
        "v": PROTOCOL_VERSION,
        "id": new_id(),
        "type": msg_type,
        "ts": time.time(),
        "parent": None,
        "body": body,
    }


def with_x(raw: bytes) -> bytes:
    """A status request whose body's field ``x`` is the msgpack ``raw``, written by hand."""
    packed = msgpack.packb(envelope_of("status", {"x": None}), use_bin_type=True)
    assert packed.endswith(b"\xc0")  # body is the envelope's last field, x its last value
    return packed[:-1] + raw


def deeply_nested(depth: int) -> bytes:
    """A status request whose body holds ``depth`` nested one-element arrays (past msgpack's
    own packing limit, so written by hand)."""
    return with_x(b"\x91" * depth + b"\xc0")


@FUZZ
@given(frames=st.lists(st.binary(max_size=256), min_size=1, max_size=4))
def test_unsigned_random_frames_are_refused(target: Target, frames: list[bytes]) -> None:
    assert target.answer(frames)["type"] == "error"


@FUZZ
@given(payload=st.binary(max_size=512))
def test_signed_garbage_and_truncated_msgpack_are_refused(target: Target, payload: bytes) -> None:
    msg = make_message("status", {})
    packed = msgpack.packb(msg, use_bin_type=True)
    cut = packed[: len(payload) % max(1, len(packed))]  # a valid message, truncated
    for attempt in (payload, cut):
        answer = target.answer(target.signed(attempt))
        assert answer["type"] == "error" or answer["type"] == "status_reply"


@FUZZ
@given(
    msg_type=st.sampled_from([*FUZZED_TYPES, "run_finished", "no_such_type", ""]),
    body=st.dictionaries(st.text(max_size=16), values, max_size=6),
    envelope=st.dictionaries(st.sampled_from(["v", "id", "ts", "parent", "type"]), values),
)
def test_signed_messages_with_wrong_fields_get_an_answer(
    target: Target, msg_type: str, body: dict[str, Any], envelope: dict[str, Any]
) -> None:
    msg = envelope_of(msg_type, body)
    for mutated in (msg, {**msg, **envelope}):
        payload = msgpack.packb(mutated, use_bin_type=True)
        target.answer(target.signed(payload))


@FUZZ
@given(
    depth=st.integers(min_value=1, max_value=100_000),
    declared=st.sampled_from(
        [b"\xdd\xff\xff\xff\xff", b"\xdf\xff\xff\xff\xff", b"\xc6\xff\xff\xff\xff"]
    ),
)
def test_deep_nesting_and_huge_declared_lengths_are_refused(
    target: Target, depth: int, declared: bytes
) -> None:
    target.answer(target.signed(deeply_nested(depth)))
    assert target.answer(target.signed(declared))["type"] == "error"


@FUZZ
@given(
    base=st.text(alphabet="0123456789abcdef", min_size=64, max_size=64),
    final=st.booleans(),
    files=st.lists(st.fixed_dictionaries({"path": st.text(max_size=30), "sha256": st.text()})),
)
def test_out_of_order_sync_messages_are_refused(
    target: Target, base: str, final: bool, files: list[dict[str, Any]]
) -> None:
    body = {
        "root": str(target.ws.root),
        "base": base,
        "target": base[::-1],
        "files": files,
        "deleted": [],
        "transaction": "t" + base[:8],
        "final": final,
    }
    answer = target.answer(target.signed(msgpack.packb(envelope_of("sync", body))))
    assert answer["type"] == "error", answer


def sized(kind: str, n: int) -> bytes:
    """msgpack of ``n`` units of ``kind``: nesting levels, string bytes, list or map entries
    (the map's keys all alike: its header declares ``n``, it decodes small)."""
    count = n.to_bytes(4, "big")
    if kind == "depth":
        return b"\x91" * n + b"\xc0"
    if kind == "str":
        return b"\xdb" + count + b"x" * n
    if kind == "list":
        return b"\xdd" + count + b"\xc0" * n
    return b"\xdf" + count + b"\xa1k\xc0" * n


LIMIT_OF = {"depth": MAX_DEPTH - 2, "str": MAX_STR_BYTES, "list": MAX_ITEMS, "map": MAX_ITEMS}
"""The most a status body's extra field may hold (depth: the envelope and body are 2 levels)."""


@FUZZ
@given(
    kind=st.sampled_from(sorted(LIMIT_OF)),
    size=st.one_of(st.integers(min_value=0, max_value=3000), st.sampled_from(["at", "past"])),
)
def test_decoded_limits_are_checked_before_any_handler(
    target: Target, kind: str, size: int | str
) -> None:
    """Up to each limit a request is served; past it, it is refused as malformed, naming the
    limit."""
    limit = LIMIT_OF[kind]
    n = {"at": limit, "past": limit + 1}.get(str(size), size)
    assert isinstance(n, int)
    answer = target.answer(target.signed(with_x(sized(kind, n))))
    if n <= limit:
        assert answer["type"] == "status_reply", answer
    else:
        assert answer["body"]["ename"] == "malformed", answer
        assert "limit" in answer["body"]["evalue"] or "deeper" in answer["body"]["evalue"]


@FUZZ
@given(length=st.one_of(st.integers(min_value=2, max_value=5000), st.just(MAX_PATH_BYTES + 1)))
def test_paths_past_path_max_are_refused_by_length(target: Target, length: int) -> None:
    cwd = "/" + "d" * (length - 1)
    run = {"entry": "x.py", "args": [], "cwd": cwd, "env": {}}
    answer = target.answer(target.signed(msgpack.packb(envelope_of("run", run))))
    evalue = answer["body"]["evalue"]
    if length > MAX_PATH_BYTES:
        assert answer["body"]["ename"] == "protocol_error" and "longer than 4096" in evalue
    else:
        assert "longer than" not in evalue and answer["type"] == "error", answer
    file = {"path": "p/" * (length // 2) + "f", "sha256": "0" * 64, "data": b""}
    manifest = target.answer(target.signed(msgpack.packb(envelope_of("manifest", target.root))))
    base = manifest["body"]["state"]  # the right base: the paths are what is refused
    body = {**target.root, "base": base, "target": "1" * 64}
    sync = {**body, "files": [file], "deleted": [], "transaction": "t", "final": True}
    answer = target.answer(target.signed(msgpack.packb(envelope_of("sync", sync))))
    assert answer["type"] == "error"
    too_long = len(file["path"].encode()) > MAX_PATH_BYTES
    assert (answer["body"]["ename"] == "unsafe_path") == too_long, answer
