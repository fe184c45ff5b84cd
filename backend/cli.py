"""The ``hotswap`` command: serve, run, status, stop."""

from __future__ import annotations

import argparse
import contextlib
import os
import queue
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from .client import (
    DaemonClient,
    DaemonError,
    DaemonUnavailable,
    ensure_daemon,
    live_client,
    remote_client,
)
from .protocol import ProtocolError
from .sync import Skipped
from .sync_client import describe_size, sync_workspace
from .workspace import Config, find_workspace, pid_alive

CANCELLED_EXIT = 130


def _err(message: str) -> None:
    print(f"hotswap: {message}", file=sys.stderr)


# -- run --------------------------------------------------------------------------------


class StdinForwarder:
    """Reads our stdin in a thread; the main loop sends what it read as ``stdin`` requests."""

    def __init__(self) -> None:
        self.chunks: queue.Queue[tuple[bytes, bool]] = queue.Queue()
        self.wake_r, self._wake_w = os.pipe()
        threading.Thread(target=self._read, name="stdin", daemon=True).start()

    def _read(self) -> None:
        try:
            fd = sys.stdin.fileno()
        except (AttributeError, ValueError, OSError):
            fd = -1
        while True:
            try:
                data = os.read(fd, 65536) if fd >= 0 else b""
            except OSError:
                data = b""
            self.chunks.put((data, not data))
            os.write(self._wake_w, b"x")
            if not data:
                return


class ClientSignal(Exception):
    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _raise_client_signal(signum: int, frame: object) -> None:
    raise ClientSignal(signum)


def follow_run(client: DaemonClient, run_id: str) -> int:
    """Stream a run's output to ours, forward our stdin, turn Ctrl-C into a cancel."""
    import zmq

    stdin = StdinForwarder()
    poller = zmq.Poller()
    poller.register(client.socket, zmq.POLLIN)
    poller.register(stdin.wake_r, zmq.POLLIN)
    cancelled = False
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _raise_client_signal)
    while True:
        try:
            exit_code = _pump(client, run_id, poller, stdin)
            if exit_code is not None:
                return exit_code
        except ClientSignal as sig:  # closed terminal, kill: the run must not go on alone
            client.send("cancel", {"run_id": run_id})
            client.close()
            client.ctx.term()  # waits until the cancel is on the wire (LINGER)
            return 128 + sig.signum
        except KeyboardInterrupt:
            if cancelled:
                _err("interrupted again; leaving the run to be cancelled by the daemon")
                return CANCELLED_EXIT
            cancelled = True
            client.send("cancel", {"run_id": run_id})


def _pump(client: DaemonClient, run_id: str, poller: Any, stdin: StdinForwarder) -> int | None:
    ready = dict(poller.poll(1000)) if not client.backlog else {client.socket: 1}
    if stdin.wake_r in ready:
        os.read(stdin.wake_r, 4096)
        while not stdin.chunks.empty():
            data, eof = stdin.chunks.get_nowait()
            client.send("stdin", {"run_id": run_id, "data": data, "eof": eof})
    if client.socket in ready:
        while (msg := client.recv(timeout=0)) is not None:
            code = _on_run_event(msg, run_id)
            if code is not None:
                return code
    return None


def _on_run_event(msg: dict[str, Any], run_id: str) -> int | None:
    body = msg["body"]
    if body.get("run_id") not in (run_id, None):
        return None
    if msg["type"] == "stream":
        out = sys.stdout.buffer if body["stream"] == "stdout" else sys.stderr.buffer
        out.write(body["data"])
        out.flush()
    elif msg["type"] == "debug_ready":
        mapped = "".join(
            f" (your {m['localRoot']} is {m['remoteRoot']} there)" for m in body["path_mappings"]
        )
        waiting = (
            "; waiting for a DAP client to attach"
            if body["wait"] and not body.get("attached")
            else ""
        )
        _err(f"debugger listening on {body['host']}:{body['port']}{mapped}{waiting}")
    elif msg["type"] == "run_finished":
        if body["message"] and body["reason"] != "exited":
            _err(body["message"])
        return int(body["exit_code"])
    elif msg["type"] == "error":
        _err(f"{body['evalue']} {body.get('hint', '')}".rstrip())
    return None


def connect(ns: argparse.Namespace, workspace: Path, start: bool) -> DaemonClient | None:
    """``--backend`` (a connection file, or an address with the key in HOTSWAP_KEY), else the
    workspace's own daemon, started if ``start`` and none is alive."""
    if getattr(ns, "backend", None):
        return remote_client(ns.backend)
    return ensure_daemon(workspace) if start else live_client(workspace)


class SyncReport:
    """Progress and skipped files of a sync, on stderr."""

    def __init__(self) -> None:
        self.shown = False

    def progress(self, done: int, total: int, files_done: int, files_total: int) -> None:
        if total < 2 * 1024 * 1024 and files_total < 200 and not self.shown:
            return
        self.shown = True
        end = "\n" if done >= total else ("\r" if sys.stderr.isatty() else "\n")
        percent = 100 * done // total if total else 100
        print(
            f"hotswap: synced {files_done}/{files_total} files, {describe_size(done)} of "
            f"{describe_size(total)} ({percent}%)",
            end=end,
            file=sys.stderr,
            flush=True,
        )

    @staticmethod
    def skipped(item: Skipped) -> None:
        _err(
            f"not synced: {item.path} ({item.reason}); raise [tool.hotswap] max_file_mb "
            "or list it in .hotswapignore"
        )


def cmd_run(ns: argparse.Namespace) -> int:
    workspace = find_workspace(ns.workspace)
    client = connect(ns, workspace, start=True)
    assert client is not None
    body = {
        "entry": ns.entry,
        "args": ns.args,
        "cwd": os.getcwd(),
        "env": {**os.environ, **({"HOTSWAP_AUTO_WARM": "0"} if ns.no_auto_warm else {})},
        "queue": ns.queue,
        "root": str(workspace),
        "debug": ns.debug,
        "wait": not ns.no_wait,
        "just_my_code": not ns.all_code,
    }
    limit = Config.load(workspace).max_file_bytes
    report = SyncReport()
    for attempt in (1, 2):
        body["state"] = sync_workspace(
            client, workspace, limit, report.progress, report.skipped, resync=attempt == 2
        )
        try:
            reply = client.request("run", body)
            break
        except DaemonError as exc:  # another client synced in between: sync again, once
            if exc.ename != "resync" or attempt == 2:
                raise
    return follow_run(client, reply["body"]["run_id"])


# -- status / stop / serve --------------------------------------------------------------


def _size(n: int | None) -> str:
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return str(n)


def format_status(status: dict[str, Any]) -> str:
    d = status["daemon"]
    lines = [f"daemon  pid {d['pid']}  {d['address']}  workspace {d['workspace']}"]
    for w in status["workers"]:
        mem = w["memory"]
        cuda = (
            f"  cuda {_size(mem['cuda_allocated'])} allocated / {_size(mem['cuda_reserved'])} "
            "reserved"
            if "cuda_allocated" in mem
            else ""
        )
        last = (
            f"  last run: peak {_size(mem['run_peak_rss'])}, "
            f"{_size(mem['rss_beyond_warm'])} held beyond warm objects"
            if "run_peak_rss" in mem and "rss_beyond_warm" in mem
            else ""
        )
        lines.append(
            f"worker {w['index']}  pid {w['pid']}  {w['state']}  rss {_size(mem['rss'])}"
            f"{cuda}{last}"
        )
        for e in w["warm"]:
            params = f"{e['parameters']:,} params" if e["parameters"] is not None else "-"
            snapshot = f"  snapshot {_size(e['snapshot_bytes'])}" if e.get("snapshot_bytes") else ""
            lines.append(
                f"  warm {e['key']!r}  {e['type']}  {params}  {_size(e['bytes'])}  "
                f"{e['device'] or '-'}{snapshot}"
            )
        if not w["warm"]:
            lines.append("  no warm objects")
    lines.append("recent runs:" if status["runs"] else "no runs yet")
    for r in status["runs"][-10:]:
        when = time.strftime("%H:%M:%S", time.localtime(r["requested"]))
        result = (
            f"exit {r['exit_code']} ({r['reason']}, {r['duration']:.2f}s)"
            if "exit_code" in r
            else r["state"]
        )
        lines.append(f"  {when}  {r['entry']}  {result}")
    return "\n".join(lines)


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
        _err(f"the daemon (pid {pid}) did not stop within {ns.timeout:g}s; killing it")
        os.kill(pid, signal.SIGKILL)
    print(f"stopped the hotswap daemon of {client.connection.get('workspace', workspace)}")
    return 0


def cmd_serve(ns: argparse.Namespace) -> int:
    import logging

    from .server import Daemon

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr
    )
    mirror = Path(ns.mirror).expanduser().resolve() if ns.mirror else None
    workspace = find_workspace(ns.workspace or (str(mirror) if mirror else None))
    if mirror is not None:
        mirror.mkdir(parents=True, exist_ok=True)
    try:
        config = Config.load(workspace)
    except ValueError as exc:
        _err(str(exc))
        return 2
    daemon = Daemon(workspace, config, bind=ns.bind, mirror=mirror)
    daemon.start()
    daemon.serve_forever()
    return 0


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
        "--debug", action="store_true", help="run under debugpy; wait for a DAP client to attach"
    )
    run.add_argument(
        "--no-wait", action="store_true", help="with --debug: start at once, attach any time"
    )
    run.add_argument(
        "--all-code", action="store_true", help="with --debug: step into library code too"
    )
    run.add_argument(
        "--no-auto-warm",
        action="store_true",
        help="load from_pretrained calls afresh (default: served warm; [tool.hotswap] auto_warm)",
    )
    run.add_argument("entry", help="the script to run")
    run.add_argument("args", nargs=argparse.REMAINDER, help="arguments for the script")
    run.set_defaults(func=cmd_run)

    serve = add("serve", "run the backend daemon for a workspace in the foreground", remote=False)
    serve.add_argument(
        "--mirror",
        metavar="DIR",
        help="keep a copy of the clients' workspace in DIR and run from it (for a remote editor)",
    )
    serve.add_argument(
        "--bind", default="tcp://127.0.0.1", help="ZeroMQ address (default: loopback, any port)"
    )
    serve.set_defaults(func=cmd_serve)

    status = add("status", "show the daemon, its workers, warm objects and recent runs")
    status.add_argument("--json", action="store_true", help="print JSON")
    status.set_defaults(func=cmd_status)

    stop = add("stop", "stop the workspace's daemon (warm objects are released)")
    stop.add_argument("--timeout", type=float, default=15.0, help="seconds before killing it")
    stop.set_defaults(func=cmd_stop)
    return parser


def main(argv: list[str] | None = None) -> None:
    ns = build_parser().parse_args(argv)
    try:
        code = ns.func(ns)
        sys.stdout.flush()
    except (DaemonError, DaemonUnavailable, ProtocolError) as exc:
        _err(str(exc))
        code = 1
    except KeyboardInterrupt:
        code = CANCELLED_EXIT
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
