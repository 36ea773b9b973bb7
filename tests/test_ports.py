"""tests.support.ports: ports for servers started by number, apart for each xdist worker."""

from __future__ import annotations

import socket

import pytest

from tests.support.ports import (
    FIRST_PORT,
    HOST,
    PORTS_PER_WORKER,
    WORKER_SLICES,
    free_port,
    worker_index,
)


def test_each_worker_has_its_slice_below_the_ephemeral_range(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw3")
    first = FIRST_PORT + 3 * PORTS_PER_WORKER

    ports = {free_port() for _ in range(20)}

    assert worker_index() == 3
    assert len(ports) == 20  # none handed out twice in a row
    assert all(first <= port < first + PORTS_PER_WORKER < 32_768 for port in ports)


def test_without_xdist_the_first_slice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)

    assert worker_index() == 0
    assert FIRST_PORT <= free_port() < FIRST_PORT + PORTS_PER_WORKER


def test_a_port_something_is_bound_to_is_passed_over(monkeypatch: pytest.MonkeyPatch) -> None:
    # The last slice: no run of this suite has 25 workers to be held up meanwhile.
    monkeypatch.setenv("PYTEST_XDIST_WORKER", f"gw{WORKER_SLICES - 1}")
    first = FIRST_PORT + (WORKER_SLICES - 1) * PORTS_PER_WORKER
    taken = []
    try:
        for port in range(first, first + PORTS_PER_WORKER):
            sock = socket.socket()
            try:
                sock.bind((HOST, port))
            except OSError:
                sock.close()
                continue
            taken.append(sock)
        with pytest.raises(RuntimeError, match="no free port"):
            free_port()
    finally:
        for sock in taken:
            sock.close()
