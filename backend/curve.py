"""Who may connect from elsewhere: ZeroMQ CURVE key pairs (``hotswap keys``), the check that a
non-loopback bind has them, and the daemon's and a client's CURVE socket options.

Key pairs live in ``$XDG_CONFIG_HOME/hotswap/keys/NAME.json`` (folder 0700, files 0600): the
secret key is a credential, as the connection file's HMAC key is.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import zmq

NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
LOOPBACK_HOSTS = {"localhost", "[::1]", "::1"}


class CurveError(Exception):
    """A key or a bind the user must fix; the message says how."""


def keys_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "hotswap" / "keys"


def make_key_pair(name: str) -> dict[str, str]:
    """Create key pair ``name`` (refusing to overwrite one); its public and secret keys."""
    if not NAME.match(name):
        raise CurveError(f"key name {name!r}: use 1-64 letters, digits, '_', '-' or '.'")
    folder = keys_dir()
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    public, secret = zmq.curve_keypair()
    pair = {"public": public.decode(), "secret": secret.decode()}
    try:
        fd = os.open(folder / f"{name}.json", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise CurveError(
            f"key pair {name!r} exists already ({folder}); pick another name"
        ) from None
    with os.fdopen(fd, "w") as f:
        json.dump(pair, f)
    return pair


def load_key_pair(name: str) -> dict[str, str]:
    path = keys_dir() / f"{name}.json"
    try:
        pair = json.loads(path.read_text())
        return {"public": str(pair["public"]), "secret": str(pair["secret"])}
    except (OSError, ValueError, KeyError, TypeError):
        raise CurveError(
            f"no CURVE key pair {name!r} in {keys_dir()}; make one with `hotswap keys new {name}`"
        ) from None


def client_key_pair() -> dict[str, str]:
    """This client's pair for a CURVE daemon: HOTSWAP_CURVE_KEY names it ("client" if unset)."""
    return load_key_pair(os.environ.get("HOTSWAP_CURVE_KEY") or "client")


def list_key_pairs() -> list[tuple[str, str]]:
    """(name, public key) of every stored pair."""
    pairs = []
    for path in sorted(keys_dir().glob("*.json")):
        try:
            pairs.append((path.stem, str(json.loads(path.read_text())["public"])))
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return pairs


def public_key(name_or_key: str) -> str:
    """A client's public key: a 40-character Z85 key as given, or a stored pair's by name."""
    if len(name_or_key) == 40 and not (keys_dir() / f"{name_or_key}.json").exists():
        return name_or_key
    return load_key_pair(name_or_key)["public"]


def is_loopback(bind: str) -> bool:
    """Whether a ZeroMQ address can only be reached from this host."""
    if not bind.startswith("tcp://"):
        return bind.startswith(("ipc://", "inproc://"))
    host = bind[len("tcp://") :].rsplit(":", 1)[0] if bind.count(":") > 1 else bind[6:]
    return host in LOOPBACK_HOSTS or host.startswith("127.")


def check_bind(bind: str, server_key: str | None, allowed: list[str]) -> None:
    """Refuse a non-loopback bind without CURVE: run requests carry the whole environment and
    files travel in the clear, and anyone who gets the HMAC key runs code as you."""
    check_ipc_folder(bind)
    if is_loopback(bind) or (server_key and allowed):
        return
    raise CurveError(
        f"refusing to listen on {bind}: it is reachable from other hosts, and the daemon runs "
        "code for whoever holds its key. Either\n"
        "  - keep the default loopback bind and reach it through SSH: "
        "ssh -L PORT:127.0.0.1:PORT host, then --backend tcp://127.0.0.1:PORT; or\n"
        "  - encrypt and authenticate with CURVE: `hotswap keys new server` and "
        "`hotswap keys new laptop` (on the client), then\n"
        f"    hotswap serve --bind {bind} --curve server --allow <laptop's public key>"
    )


def check_ipc_folder(bind: str) -> None:
    """An ipc:// socket is as private as its folder: make it 0700 if it is new, refuse a folder
    that another user owns or may enter (anyone who can connect gets to try the key)."""
    if not bind.startswith("ipc://"):
        return
    from .daemon_sockets import UNIX_PATH_MAX, private_folder

    path = bind[len("ipc://") :]
    if len(path.encode()) > UNIX_PATH_MAX:
        raise CurveError(
            f"refusing to listen on {bind}: a unix socket path is at most {UNIX_PATH_MAX} bytes; "
            "choose a shorter one"
        )
    try:
        private_folder(Path(path).parent)
    except (OSError, ValueError) as exc:
        raise CurveError(
            f"refusing to listen on {bind}: {exc}; use a folder of your own with mode 0700"
        ) from None


def make_server(sock: zmq.Socket[bytes], pair: dict[str, str]) -> None:
    sock.setsockopt(zmq.CURVE_SERVER, 1)
    sock.setsockopt(zmq.CURVE_SECRETKEY, pair["secret"].encode())
    sock.setsockopt(zmq.ZAP_DOMAIN, b"hotswap")


def start_authenticator(ctx: zmq.Context[Any], allowed: list[str]) -> Any:
    """A ZAP handler thread that admits only the ``allowed`` client public keys."""
    from zmq.auth.thread import ThreadAuthenticator

    auth = ThreadAuthenticator(ctx)
    auth.start()
    keys = {key.encode() for key in allowed}

    class Allowed:
        def callback(self, domain: str, key: bytes) -> bool:
            return key in keys

    auth.configure_curve_callback(domain="hotswap", credentials_provider=Allowed())
    return auth


def make_client(sock: zmq.Socket[bytes], server_public: str, pair: dict[str, str]) -> None:
    sock.setsockopt(zmq.CURVE_SERVERKEY, server_public.encode())
    sock.setsockopt(zmq.CURVE_PUBLICKEY, pair["public"].encode())
    sock.setsockopt(zmq.CURVE_SECRETKEY, pair["secret"].encode())
