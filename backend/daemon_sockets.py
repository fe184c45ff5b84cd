"""The daemon's ROUTER sockets: limits before work (frame size), heartbeats, binding."""

from __future__ import annotations

from typing import Any

import zmq

from .protocol import MAX_MESSAGE_BYTES

# A frame a little over MAX_MESSAGE_BYTES still arrives, so its sender gets an `oversized`
# reply; anything bigger is dropped by libzmq as it is announced, before it is buffered.
MAX_FRAME_BYTES = MAX_MESSAGE_BYTES + 64 * 1024
HEARTBEAT_IVL_MS = 2000
HEARTBEAT_TIMEOUT_MS = 6000


def bind_router(
    ctx: zmq.Context[zmq.Socket[bytes]], bind: str, curve: dict[str, str] | None = None
) -> tuple[zmq.Socket[bytes], str]:
    """A bound ROUTER socket and its endpoint; a CURVE server if given its key pair."""
    sock: zmq.Socket[bytes] = ctx.socket(zmq.ROUTER)
    if curve is not None:
        from .curve import make_server

        make_server(sock, curve)
    sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
    sock.setsockopt(zmq.SNDHWM, 0)  # never drop output for a slow client
    sock.setsockopt(zmq.LINGER, 1000)
    sock.setsockopt(zmq.MAXMSGSIZE, MAX_FRAME_BYTES)
    # ZMTP PING/PONG on every connection: a peer silent for the timeout is dropped.
    sock.setsockopt(zmq.HEARTBEAT_IVL, HEARTBEAT_IVL_MS)
    sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, HEARTBEAT_TIMEOUT_MS)
    if bind.startswith("tcp://") and bind.count(":") == 1:
        sock.bind_to_random_port(bind)
    else:
        sock.bind(bind)
    return sock, str(sock.getsockopt_string(zmq.LAST_ENDPOINT))


def client_router(
    ctx: zmq.Context[Any], bind: str, curve: tuple[dict[str, str], list[str]] | None
) -> tuple[zmq.Socket[bytes], str, Any, dict[str, str]]:
    """The clients' socket, its endpoint, the CURVE authenticator (started before the bind;
    None without CURVE) and what the connection file adds for clients (the server's key)."""
    if curve is None:
        return (*bind_router(ctx, bind), None, {})
    from .curve import start_authenticator

    pair, allowed = curve
    authenticator = start_authenticator(ctx, allowed)
    sock, address = bind_router(ctx, bind, pair)
    return sock, address, authenticator, {"curve_server_key": pair["public"]}
