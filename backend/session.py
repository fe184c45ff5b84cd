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
from array import array
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
        self._seen = ReplayGuard(replay_window)

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
        if self._seen.seen(signature, ts, now):
            raise ReplayedMessage("message was already received once (replay)")


class ReplayGuard:
    """The signatures of the last ``window`` seconds, in memory fixed at start: an
    open-addressing table of their first 64 bits and their timestamps (two arrays). A slot
    whose timestamp left the window is free again, so the guard does not grow with traffic
    (a dict of every signature grew by ~250 bytes a message, which `make load` saw as drift).
    Past SLOTS live messages in one window, the oldest of a probe run is forgotten."""

    SLOTS = 1 << 16
    PROBES = 32

    def __init__(self, window: float) -> None:
        self.window = window
        self.keys = array("Q", bytes(8 * self.SLOTS))
        self.times = array("d", bytes(8 * self.SLOTS))  # 0.0: never used

    def seen(self, signature: bytes, ts: float, now: float) -> bool:
        """Whether ``signature`` was seen within the window; if not, remember it until a
        message of its ``ts`` would be refused as too old anyway."""
        key = int(signature[:16], 16)
        start, free, oldest = key % self.SLOTS, -1, -1
        for step in range(self.PROBES):
            slot = (start + step) % self.SLOTS
            seen_at = self.times[slot]
            if seen_at == 0.0 or now - seen_at > self.window:
                free = slot if free < 0 else free
                if seen_at == 0.0:
                    break  # slots are never emptied: nothing of this key lies beyond
                continue
            if self.keys[slot] == key:
                return True
            if oldest < 0 or seen_at < self.times[oldest]:
                oldest = slot
        slot = free if free >= 0 else oldest
        self.keys[slot], self.times[slot] = key, ts
        return False


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
