"""The commands that run or equip a daemon: ``hotswap serve`` and ``hotswap keys``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .cli_output import err
from .curve import (
    CurveError,
    check_bind,
    keys_dir,
    list_key_pairs,
    load_key_pair,
    make_key_pair,
    public_key,
)
from .workspace import Config, find_workspace


def cmd_serve(ns: argparse.Namespace) -> int:
    import logging

    from .server import Daemon

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr
    )
    mirror = Path(ns.mirror).expanduser().resolve() if ns.mirror else None
    if mirror is not None:  # the mirror is ours to make; a workspace is the user's
        mirror.mkdir(parents=True, exist_ok=True)
    workspace = find_workspace(ns.workspace or (str(mirror) if mirror else None))
    try:
        config = Config.load(workspace)
    except ValueError as exc:
        err(str(exc))
        return 2
    try:
        curve = _curve_of(ns)
    except CurveError as exc:
        err(str(exc))
        return 2
    daemon = Daemon(workspace, config, bind=ns.bind, mirror=mirror, curve=curve)
    daemon.start()
    daemon.serve_forever()
    return 0


def _curve_of(ns: argparse.Namespace) -> tuple[dict[str, str], list[str]] | None:
    """The server key pair and allowed client keys of ``serve``; refuses a bind that other
    hosts can reach without them."""
    if ns.bind is not None:  # the default, a private unix socket, needs no check
        check_bind(ns.bind, ns.curve, ns.allow)
    if not ns.curve:
        return None
    if not ns.allow:
        raise CurveError("--curve needs at least one --allow CLIENT_PUBLIC_KEY (or pair name)")
    return load_key_pair(ns.curve), [public_key(key) for key in ns.allow]


def cmd_keys(ns: argparse.Namespace) -> int:
    try:
        if ns.action == "new":
            pair = make_key_pair(ns.name)
            print(f"{ns.name}: public key {pair['public']} (stored in {keys_dir()}, mode 0600)")
            return 0
    except CurveError as exc:
        err(str(exc))
        return 2
    pairs = list_key_pairs()
    for name, public in pairs:
        print(f"{name}\t{public}")
    if not pairs:
        print(f"no key pairs in {keys_dir()}; make one with `hotswap keys new NAME`")
    return 0
