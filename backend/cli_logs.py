"""``hotswap logs [RUN_ID] [-f]``: a run's kept output (its last MB), also of a run whose client
vanished, and with ``-f`` what it prints from then on; exits with the run's exit code."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from .cli_output import err
from .run_logs import LOG_BYTES

if TYPE_CHECKING:
    from .client import DaemonClient


def show_logs(client: DaemonClient, ns: argparse.Namespace) -> int:
    body: dict[str, Any] = {"run_id": ns.run_id, "follow": ns.follow}
    kept = client.request("logs", body)["body"]
    if kept["truncated"]:
        err(f"output truncated: only the last {LOG_BYTES // (1 << 20)} MB of it is kept")
    for chunk in kept["output"]:
        _write(chunk["stream"], chunk["data"])
    if kept["state"] == "finished":
        return _ended(kept)
    if not ns.follow:
        err(f"run {kept['run_id']} is still {kept['state']}; `hotswap logs -f` follows it")
        return 0
    return _follow(client, kept["run_id"])


def _follow(client: DaemonClient, run_id: str) -> int:
    """Print the run's events until it ends. Ctrl-C leaves; the run goes on."""
    try:
        while True:
            msg = client.recv(timeout=0.5)
            if msg is None:
                client.check_alive()
                continue
            body = msg["body"]
            if body.get("run_id") != run_id:
                continue
            if msg["type"] == "stream":
                _write(body["stream"], body["data"])
            elif msg["type"] == "run_finished":
                return _ended(body)
    except KeyboardInterrupt:
        err(f"stopped following; run {run_id} goes on")
        return 130


def _ended(body: dict[str, Any]) -> int:
    if body["message"]:
        err(body["message"])
    return int(body["exit_code"])


def _write(stream: str, data: bytes) -> None:
    out = sys.stdout.buffer if stream == "stdout" else sys.stderr.buffer
    out.write(data)
    out.flush()
