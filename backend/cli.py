"""The ``hotswap`` command: serve, run, status, stop, logs."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from .cli_metrics import add_commands as add_metrics_commands
from .cli_output import RANK_OUTPUT, SyncReport, err, footer_lines, format_status
from .cli_serve import cmd_keys, cmd_serve
from .cli_stdin import StdinForwarder
from .client import (
    DaemonClient,
    DaemonError,
    DaemonUnavailable,
    ensure_daemon,
    live_client,
    remote_client,
)
from .entry import EntryError, python_command
from .protocol import INTERRUPTED_EXIT, ProtocolError, new_id
from .sync_client import sync_then_run
from .workspace import WorkspaceMissing, find_workspace, pid_alive

# -- run --------------------------------------------------------------------------------


class ClientSignal(Exception):
    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _raise_client_signal(signum: int, frame: object) -> None:
    raise ClientSignal(signum)


CANCEL_WAIT = 15.0  # after a first Ctrl-C: how long the run may take to report its end


class RunRefused(Exception):
    """The run waited in the queue while the workspace moved on (run_finished ``resync``)."""


def follow_run(
    client: DaemonClient, run_id: str, verbose: bool = False, stdin: StdinForwarder | None = None
) -> int:
    """Stream a run's output to ours, forward our stdin, turn Ctrl-C into a cancel; with
    ``verbose``, hotswap's notices and the memory footer on stderr too.

    A first Ctrl-C cancels the run and ends this command once the run reports its end, or
    after CANCEL_WAIT at the latest; a second one leaves at once. Raises RunRefused."""
    import zmq

    stdin = stdin or StdinForwarder()  # one per command: a run sent again reads on from it
    poller = zmq.Poller()
    poller.register(client.socket, zmq.POLLIN)
    poller.register(stdin.wake_r, zmq.POLLIN)
    give_up: float | None = None
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _raise_client_signal)
    while True:
        try:
            exit_code = _pump(client, run_id, poller, stdin, verbose)
            if exit_code is not None:
                return exit_code
            client.check_alive()
            if give_up is not None and time.monotonic() > give_up:
                err(f"the run did not report its end within {CANCEL_WAIT:g}s of the cancel")
                return INTERRUPTED_EXIT
        except ClientSignal as sig:  # closed terminal, kill: the run must not go on alone
            client.send("cancel", {"run_id": run_id})
            client.close()
            client.ctx.term()  # waits until the cancel is on the wire (LINGER)
            return 128 + sig.signum
        except KeyboardInterrupt:
            if give_up is not None:
                err("interrupted again; leaving the run to be cancelled by the daemon")
                return INTERRUPTED_EXIT
            give_up = time.monotonic() + CANCEL_WAIT
            client.send("cancel", {"run_id": run_id})


def _pump(
    client: DaemonClient, run_id: str, poller: Any, stdin: StdinForwarder, verbose: bool
) -> int | None:
    ready = dict(poller.poll(500)) if not client.backlog else {client.socket: 1}
    if stdin.wake_r in ready:
        os.read(stdin.wake_r, 4096)
        while not stdin.chunks.empty():
            data, eof = stdin.chunks.get_nowait()
            client.send("stdin", {"run_id": run_id, "data": data, "eof": eof})
    if client.socket in ready:
        while (msg := client.recv(timeout=0)) is not None:
            code = _on_run_event(msg, run_id, verbose)
            if code is not None:
                return code
    return None


def _on_run_event(msg: dict[str, Any], run_id: str, verbose: bool) -> int | None:
    body = msg["body"]
    if body.get("run_id") not in (run_id, None):
        return None
    if msg["type"] == "run_notice" and verbose:
        err(body["text"])
    elif msg["type"] == "stream":
        RANK_OUTPUT.write(body["stream"], body["data"], body.get("rank"))
    elif msg["type"] == "debug_ready":
        mapped = "".join(
            f" (your {m['localRoot']} is {m['remoteRoot']} there)" for m in body["path_mappings"]
        )
        waiting = (
            "; waiting for a DAP client to attach"
            if body["wait"] and not body.get("attached")
            else ""
        )
        err(f"debugger listening on {body['host']}:{body['port']}{mapped}{waiting}")
    elif msg["type"] == "run_finished":
        RANK_OUTPUT.flush()
        if body["reason"] == "resync":
            raise RunRefused(body["message"])
        if body["message"]:
            err(body["message"])
        for line in footer_lines(body) if verbose else ():
            err(line)
        return int(body["exit_code"])
    elif msg["type"] == "error":
        err(f"{body['evalue']} {body.get('hint', '')}".rstrip())
    return None


def connect(ns: argparse.Namespace, workspace: Path, start: bool) -> DaemonClient | None:
    """``--backend`` (a connection file, or an address with the key in HOTSWAP_KEY), else the
    workspace's own daemon, started if ``start`` and none is alive."""
    if getattr(ns, "backend", None):
        return remote_client(ns.backend)
    return ensure_daemon(workspace) if start else live_client(workspace)


def run_request(ns: argparse.Namespace) -> dict[str, Any]:
    """The ``run`` request for ``hotswap run``'s arguments, with a run id of our choosing.

    Raises EntryError for a command line python would refuse."""
    kind, entry, args = python_command(ns.module, ns.code, ns.script)
    return {
        "run_id": new_id(),
        "entry": entry,
        "args": args,
        "entry_kind": kind,
        "cwd": os.getcwd(),
        "env": {**os.environ, **({"HOTSWAP_AUTO_WARM": "0"} if ns.no_auto_warm else {})},
        "queue": ns.queue,
        "debug": ns.debug,
        "wait": not ns.no_wait,
        "just_my_code": not ns.all_code,
        **({"nproc_per_node": ns.nproc_per_node} if ns.nproc_per_node is not None else {}),
        "debug_rank": ns.debug_rank,
    }


def cmd_run(ns: argparse.Namespace) -> int:
    try:
        request = run_request(ns)
    except EntryError as exc:
        err(str(exc))
        return 2
    workspace = find_workspace(ns.workspace)
    client = connect(ns, workspace, start=True)
    assert client is not None
    report = SyncReport()
    verbose, stdin = ns.verbose or sys.stderr.isatty(), StdinForwarder()
    for attempt in (1, 2):
        reply = sync_then_run(client, workspace, request, report.progress, report.skipped)
        try:
            return follow_run(client, reply["run_id"], verbose, stdin)
        except RunRefused as refused:
            if attempt == 2:
                err(f"{refused} (twice); run again")
                return 1
            request = {**request, "run_id": new_id()}  # the state it named is gone: resync
    raise AssertionError("unreachable")


# -- status / stop / serve --------------------------------------------------------------


def cmd_status(ns: argparse.Namespace) -> int:
    import json  # here, not at the top: every `hotswap run` would pay for it

    workspace = find_workspace(ns.workspace)
    client = connect(ns, workspace, start=False)
    if client is None:
        if ns.json:
            print(json.dumps({"running": False, "workspace": str(workspace)}))
        else:
            print(f"no hotswap daemon serves {workspace}")
        return 1
    status = client.request("status")["body"]
    status.pop("status", None)
    print(json.dumps({"running": True, **status}, indent=2) if ns.json else format_status(status))
    return 0


def cmd_stop(ns: argparse.Namespace) -> int:
    workspace = find_workspace(ns.workspace)
    client = connect(ns, workspace, start=False)
    if client is None:
        print(f"no hotswap daemon serves {workspace}")
        return 0
    # A --backend daemon's pid is a process of its own host (0 for an address): waiting for
    # it here, or killing it (os.kill(0) is our own process group), would hit the wrong one.
    pid = 0 if ns.backend else int(client.connection["pid"])
    client.request("stop")
    deadline = time.monotonic() + ns.timeout
    while pid > 0 and pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    if pid > 0 and pid_alive(pid):
        err(f"the daemon (pid {pid}) did not stop within {ns.timeout:g}s; killing it")
        os.kill(pid, signal.SIGKILL)
    print(f"stopped the hotswap daemon of {client.connection.get('workspace', workspace)}")
    return 0


def cmd_logs(ns: argparse.Namespace) -> int:
    from .cli_logs import show_logs

    workspace = find_workspace(ns.workspace)
    client = connect(ns, workspace, start=False)
    if client is None:
        print(f"no hotswap daemon serves {workspace}")
        return 1
    return show_logs(client, ns)


def cmd_lsp(ns: argparse.Namespace) -> int:
    from .lsp import main as serve_lsp  # pygls loads only for this command

    return serve_lsp(ns.workspace)


# -- entry ------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hotswap", description="Run Python scripts on a warm worker that keeps models loaded."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, help_: str, remote: bool = True) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=help_)
        p.add_argument("--workspace", help="the workspace folder (default: nearest project root)")
        if remote:
            p.add_argument(
                "--backend",
                metavar="FILE|ADDRESS",
                help="use the daemon of this connection file (or this ZeroMQ address, with the "
                "key in HOTSWAP_KEY) instead of starting one here",
            )
        return p

    run = add("run", "run a script on the warm worker, as `python ENTRY ARGS` would")
    run.add_argument("--queue", action="store_true", help="wait for a running run, don't cancel it")
    run.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="print hotswap's notices (warm objects updated, rebuilt, served warm) and the "
        "memory footer on stderr even when it is not a terminal",
    )
    run.add_argument(
        "--debug", action="store_true", help="run under debugpy; wait for a DAP client to attach"
    )
    run.add_argument(
        "--no-wait", action="store_true", help="with --debug: start at once, attach any time"
    )
    run.add_argument(
        "--all-code", action="store_true", help="with --debug: step into library code too"
    )
    run.add_argument(
        "--nproc-per-node",
        type=int,
        metavar="N",
        help="run on N rank workers, as torchrun --nproc-per-node N (their process group stays "
        "warm); 0: plain python (default: [tool.hotswap] nproc_per_node, else plain)",
    )
    run.add_argument(
        "--debug-rank", type=int, default=0, metavar="K", help="with --debug: the rank to debug"
    )
    run.add_argument(
        "--no-auto-warm",
        action="store_true",
        help="load from_pretrained calls afresh (default: served warm; [tool.hotswap] auto_warm)",
    )
    # As python's: -m and -c take the rest of the line; so does ENTRY ("--" included).
    run.add_argument("-m", dest="module", nargs=argparse.REMAINDER, help="as python -m MODULE")
    run.add_argument("-c", dest="code", nargs=argparse.REMAINDER, help="as python -c CODE")
    run.add_argument(
        "script", nargs=argparse.REMAINDER, metavar="ENTRY [ARGS]", help="script, dir or zip"
    )
    run.set_defaults(func=cmd_run)

    serve = add("serve", "run the backend daemon for a workspace in the foreground", remote=False)
    serve.add_argument(
        "--mirror",
        metavar="DIR",
        help="keep a copy of the clients' workspace in DIR and run from it (for a remote editor)",
    )
    serve.add_argument(
        "--bind",
        help="ZeroMQ address, e.g. tcp://127.0.0.1:6000 for an SSH tunnel (default: a unix "
        "socket in a folder of yours alone, $XDG_RUNTIME_DIR/hotswap or /tmp/hotswap-UID)",
    )
    serve.add_argument(
        "--curve", metavar="NAME", help="CURVE key pair of the daemon (hotswap keys)"
    )
    serve.add_argument(
        "--allow",
        metavar="KEY",
        action="append",
        default=[],
        help="a client public key (or stored pair name) allowed to connect with --curve",
    )
    serve.set_defaults(func=cmd_serve)

    keys = sub.add_parser("keys", help="make or list CURVE key pairs for remote daemons")
    keys.add_argument("action", choices=["new", "list"])
    keys.add_argument("name", nargs="?", default="client", help="the pair's name (for new)")
    keys.set_defaults(func=cmd_keys)

    status = add("status", "show the daemon, its workers, warm objects and recent runs")
    status.add_argument("--json", action="store_true", help="print JSON")
    status.set_defaults(func=cmd_status)

    stop = add("stop", "stop the workspace's daemon (warm objects are released)")
    stop.add_argument("--timeout", type=float, default=15.0, help="seconds before killing it")
    stop.set_defaults(func=cmd_stop)

    add_metrics_commands(add)
    logs = add("logs", "print a run's output, kept by the daemon even if its client went away")
    logs.add_argument("run_id", nargs="?", metavar="RUN_ID", help="default: the latest run")
    logs.add_argument("-f", "--follow", action="store_true", help="then follow it until it ends")
    logs.set_defaults(func=cmd_logs)

    lsp = add("lsp", "the language server for any editor (LSP on stdin/stdout)", remote=False)
    lsp.set_defaults(func=cmd_lsp)
    return parser


def main(argv: list[str] | None = None) -> None:
    ns = build_parser().parse_args(argv)
    try:
        code = ns.func(ns)
        sys.stdout.flush()
    except (DaemonError, DaemonUnavailable, ProtocolError) as exc:
        err(str(exc))
        code = 1
    except WorkspaceMissing as exc:
        err(str(exc))
        code = 2
    except KeyboardInterrupt:
        code = INTERRUPTED_EXIT
    except BrokenPipeError:  # `hotswap status | head`: the reader left, as with any tool
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = 1
    if ns.command == "run":
        # Nothing is left to send once the run has finished; skipping interpreter teardown
        # (ZeroMQ context, threads, modules) takes ~10 ms off every run.
        with contextlib.suppress(OSError, ValueError):
            sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    main()
