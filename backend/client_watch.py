"""Which clients vanished: the client socket's monitor reports dropped connections (ZeroMQ's
heartbeats drop a silent peer too), and a probe finds whose they were.

ROUTER names no identity on a disconnect (ZMQ_ROUTER_NOTIFY is a draft API, not built into
pyzmq's libzmq), but a send to a vanished identity fails; the daemon then forgets the client
(its memory would grow by one identity per `hotswap run` otherwise) and its runs go on
unattended, their output kept (run_logs.py).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any

import zmq

PROBE_AFTER = (0.1, 1.0)  # seconds after a disconnect: when to look which client left
IDLE_CLIENTS_KEPT = 64  # past these, the longest quiet clients are probed too (and forgotten)

Probe = Callable[[bytes], None]


class ClientWatch:
    """Probes the clients of active runs shortly after any connection drops, and then also the
    clients quiet the longest past IDLE_CLIENTS_KEPT: the daemon forgets those that are gone,
    while a live client is sent no unasked event unless hundreds of clients came and went."""

    def __init__(self, sock: zmq.Socket[bytes], probe: Probe) -> None:
        self.sock = sock
        self.monitor: zmq.Socket[bytes] = sock.get_monitor_socket(zmq.EVENT_DISCONNECTED)
        self.probe = probe
        self.due: list[float] = []
        self.quiet: OrderedDict[bytes, None] = OrderedDict()  # every client, quietest first

    def heard(self, identity: bytes) -> None:
        self.quiet[identity] = None
        self.quiet.move_to_end(identity)

    def tick(self, now: float, clients: Iterable[bytes]) -> None:
        """Read the monitor's events, then probe ``clients`` if a probe is due."""
        while self.monitor.poll(0):
            self.monitor.recv_multipart()
            self.due.extend(now + delay for delay in PROBE_AFTER)
        if not any(t <= now for t in self.due):
            return
        self.due = [t for t in self.due if t > now]
        probed = set(clients)
        while len(self.quiet) > IDLE_CLIENTS_KEPT:
            probed.add(self.quiet.popitem(last=False)[0])
        for identity in probed:
            self.probe(identity)

    def close(self) -> None:
        self.sock.disable_monitor()
        self.monitor.close(linger=0)


def warm_probe(send: Callable[[bytes, dict[str, Any]], None], workers: Iterable[Any]) -> Probe:
    """A probe that sends ``warm_changed``: an event every client takes at any time."""
    from .protocol import make_message

    def probe(identity: bytes) -> None:
        for worker in list(workers)[:1]:
            body = {"worker": worker.index, "warm": worker.warm}
            send(identity, make_message("warm_changed", body))

    return probe
