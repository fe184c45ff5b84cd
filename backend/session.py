"""Packing, signing and verifying messages (HMAC-SHA256 over msgpack, as jupyter_client).

Imports neither zmq nor torch. Wire frames: ``[signature, payload]`` where ``payload`` is the
msgpack of an envelope and ``signature`` the hex HMAC-SHA256 of the payload under the key from
the connection file. Nothing from the wire is ever unpickled.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import time
from collections import OrderedDict
from typing import Any

import msgpack

from .protocol import (
    MAX_ITEMS,
    MAX_MESSAGE_BYTES,
    MAX_STR_BYTES,
    BadSignature,
    MalformedMessage,
    OversizedMessage,
    ReplayedMessage,
    check_depth,
    validate,
)

REPLAY_WINDOW_SECONDS = 300.0
"""Messages older (or newer) than this are refused; within it each signature counts once."""


def new_key() -> str:
    return os.urandom(32).hex()


class Session:
    """Signs outgoing messages and verifies incoming ones for one shared key."""

    def __init__(self, key: str | bytes, replay_window: float = REPLAY_WINDOW_SECONDS) -> None:
        self.key = key.encode() if isinstance(key, str) else key
        if len(self.key) < 16:
            raise ValueError("a signing key must be at least 16 bytes")
        self.replay_window = replay_window
        self._seen: OrderedDict[bytes, float] = OrderedDict()

    def sign(self, payload: bytes) -> bytes:
        return hmac.new(self.key, payload, hashlib.sha256).hexdigest().encode()

    def pack(self, msg: dict[str, Any]) -> list[bytes]:
        payload = msgpack.packb(msg, use_bin_type=True)
        return [self.sign(payload), payload]

    def unpack(self, frames: list[bytes]) -> dict[str, Any]:
        """Verify and decode ``[signature, payload]``; raise a ProtocolError if not acceptable."""
        if len(frames) != 2:
            raise MalformedMessage(f"expected 2 frames (signature, payload), got {len(frames)}")
        signature, payload = frames
        if len(payload) > MAX_MESSAGE_BYTES:
            raise OversizedMessage(
                f"message of {len(payload)} bytes exceeds the limit of {MAX_MESSAGE_BYTES}"
            )
        if not hmac.compare_digest(signature, self.sign(payload)):
            raise BadSignature(
                "message signature does not match",
                hint="the client's key differs from the daemon's: reread "
                ".hotswap/connection.json (the daemon may have restarted)",
            )
        msg = validate(_decode(payload))
        self._check_replay(signature, float(msg["ts"]))
        return msg

    def _check_replay(self, signature: bytes, ts: float) -> None:
        now = time.time()
        if abs(now - ts) > self.replay_window:
            raise ReplayedMessage(
                f"message timestamp is {now - ts:.0f}s away from the daemon's clock",
                hint="check that both machines' clocks are synchronised (NTP)",
            )
        if signature in self._seen:
            raise ReplayedMessage("message was already received once (replay)")
        self._seen[signature] = ts
        while self._seen:
            oldest_sig, oldest_ts = next(iter(self._seen.items()))
            if now - oldest_ts <= self.replay_window and len(self._seen) <= 1_000_000:
                break
            del self._seen[oldest_sig]


def _decode(payload: bytes) -> Any:
    """The payload's value, within the limits of protocol.py (lengths as msgpack reads their
    headers, so nothing over them is allocated; the nesting depth after)."""
    try:
        value = msgpack.unpackb(
            payload,
            raw=False,
            strict_map_key=True,
            max_str_len=MAX_STR_BYTES,
            max_bin_len=MAX_MESSAGE_BYTES,
            max_array_len=MAX_ITEMS,
            max_map_len=MAX_ITEMS,
            max_ext_len=0,  # no extension types in this protocol
        )
    except Exception as exc:  # msgpack raises several unrelated types
        raise MalformedMessage(f"payload is not valid msgpack within the limits: {exc}") from None
    check_depth(value)
    return value
