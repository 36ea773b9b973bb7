"""Loopback ports for servers a test starts by number, safe with tests running in parallel.

A port from `bind(0)` is free when asked for, but a server in a subprocess binds it a second or
two later, and meanwhile it is fair game: the kernel hands the ephemeral range (32768-60999
on Linux) out as the source port of every outgoing connection, and the tests make thousands;
another xdist worker asking at the same moment gets ports from the same pool. So ports come
from below the ephemeral range, where no connection's source port is ever taken from, and
each xdist worker has a slice of its own, started at a random place so two test runs at
once rarely meet. A port is handed out only if nothing is bound to it.
"""

from __future__ import annotations

import itertools
import os
import random
import socket

HOST = "127.0.0.1"
FIRST_PORT = 20_000
PORTS_PER_WORKER = 500
WORKER_SLICES = (32_768 - FIRST_PORT) // PORTS_PER_WORKER  # 25 below the ephemeral range

_turn = itertools.count(random.randrange(PORTS_PER_WORKER))


def worker_index() -> int:
    """This process's xdist worker number (gw3: 3), 0 when the tests are not distributed."""
    name = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    return int(name.removeprefix("gw")) if name.removeprefix("gw").isdigit() else 0


def free_port() -> int:
    """A loopback port nothing is bound to, for a server to bind later, or to connect to and
    be refused: from this worker's slice, never one it handed out recently."""
    first = FIRST_PORT + (worker_index() % WORKER_SLICES) * PORTS_PER_WORKER
    for _ in range(PORTS_PER_WORKER):
        port = first + next(_turn) % PORTS_PER_WORKER
        with socket.socket() as probe:
            try:
                probe.bind((HOST, port))
            except OSError:
                continue  # bound by something else, or closing connections still hold it
            return port
    raise RuntimeError(f"no free port in {first}-{first + PORTS_PER_WORKER - 1}")
