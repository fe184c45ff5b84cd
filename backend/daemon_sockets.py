"""The daemon's ROUTER sockets: where they bind by default (ipc:// in a folder of the owner
alone), limits before work (frame size), heartbeats, binding."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import zmq

from .protocol import MAX_MESSAGE_BYTES

# A frame a little over MAX_MESSAGE_BYTES still arrives, so its sender gets an `oversized`
# reply; anything bigger is dropped by libzmq as it is announced, before it is buffered.
MAX_FRAME_BYTES = MAX_MESSAGE_BYTES + 64 * 1024
HEARTBEAT_IVL_MS = 2000
HEARTBEAT_TIMEOUT_MS = 6000
LOOPBACK = "tcp://127.0.0.1"
UNIX_PATH_MAX = 107  # sun_path holds 108 bytes with its NUL; longer ipc:// paths fail to bind


def private_folder(folder: Path) -> Path:
    """``folder``, made 0700 if new; ValueError if it is a symlink, another user's, or open to
    others (whoever can enter it can connect to the sockets in it and try the key)."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = folder.lstat()
    if not folder.is_dir() or folder.is_symlink():
        raise ValueError(f"{folder} is not a plain folder")
    if info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise ValueError(
            f"{folder} is not yours alone (owner uid {info.st_uid}, mode {info.st_mode & 0o777:o})"
        )
    return folder


def runtime_folder() -> Path:
    """Where a user's daemons put their sockets: $XDG_RUNTIME_DIR/hotswap, else
    /tmp/hotswap-UID (short enough for any socket name under it)."""
    runtime = os.environ.get("XDG_RUNTIME_DIR", "")
    if runtime and os.path.isabs(runtime) and len(runtime) < UNIX_PATH_MAX - 40:
        return Path(runtime) / "hotswap"
    return Path(f"/tmp/hotswap-{os.getuid()}")


def default_binds(workspace: Path, log: Any) -> tuple[str, str]:
    """The clients' and the workers' addresses when ``serve`` gets no ``--bind``: unix sockets
    in the owner's private runtime folder, named by a hash of the workspace, so there is no
    TCP port to scan or for VS Code Remote to forward. Loopback TCP if no such folder can be
    had (a /tmp/hotswap-UID made by someone else: refused, and said in the log)."""
    name = hashlib.sha256(str(workspace).encode()).hexdigest()[:16]
    try:
        folder = private_folder(runtime_folder())
    except (OSError, ValueError) as exc:
        log.warning("no private folder for the daemon's sockets (%s); binding %s", exc, LOOPBACK)
        return LOOPBACK, LOOPBACK
    return f"ipc://{folder}/{name}.sock", f"ipc://{folder}/{name}-workers.sock"


# Messages a worker may have on their way into the daemon before it stops reading that worker's
# connection: the rest wait in the worker (its sends never drop). A run that logs millions of
# points in a tight loop bursts its batches out when the loop ends; without this bound the
# daemon took in up to ZeroMQ's default 1,000 of them (~100 MB) at once.
WORKER_RCVHWM = 32


def bind_router(
    ctx: zmq.Context[zmq.Socket[bytes]],
    bind: str,
    curve: dict[str, str] | None = None,
    rcvhwm: int | None = None,
) -> tuple[zmq.Socket[bytes], str]:
    """A bound ROUTER socket and its endpoint; a CURVE server if given its key pair."""
    sock: zmq.Socket[bytes] = ctx.socket(zmq.ROUTER)
    if rcvhwm is not None:
        sock.setsockopt(zmq.RCVHWM, rcvhwm)
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


def worker_router(ctx: zmq.Context[zmq.Socket[bytes]], bind: str) -> tuple[zmq.Socket[bytes], str]:
    """The socket the daemon's workers connect to (their sends wait past WORKER_RCVHWM)."""
    return bind_router(ctx, bind, rcvhwm=WORKER_RCVHWM)


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
