from __future__ import annotations

import asyncio

import pytest

from ses_sender.delivery.concurrency import (
    MIN_IN_FLIGHT,
    InFlightLimit,
    Latency,
    in_flight_for,
)


@pytest.mark.parametrize(
    ("rate", "latency_s", "expected"),
    [
        (100, 0.1, 45),  # 100/s x (2 x 100 ms + 250 ms held besides the send)
        (100, 0.01, 27),
        (1_000, 0.05, 350),
        (14, 0.05, 5),
        (1, 0.05, MIN_IN_FLIGHT),
        (2_000, 1.0, 500),  # never above the maximum
    ],
)
def test_in_flight_follows_rate_and_latency(rate: float, latency_s: float, expected: int) -> None:
    assert in_flight_for(rate, latency_s, maximum=500) == expected


def test_in_flight_never_above_a_small_maximum() -> None:
    assert in_flight_for(1, 0.05, maximum=2) == 2


def test_latency_average_moves_towards_what_is_observed() -> None:
    latency = Latency(0.05)
    for _ in range(200):
        latency.observe(0.2)
    assert latency.mean_s == pytest.approx(0.2, rel=0.01)


async def test_a_shrunk_limit_waits_for_releases_and_a_grown_one_frees_at_once() -> None:
    limit = InFlightLimit(2)
    await limit.acquire()
    await limit.acquire()
    limit.resize(1)
    waiting = asyncio.create_task(limit.acquire())
    await asyncio.sleep(0.01)

    limit.release()  # one held, limit 1: still full
    await asyncio.sleep(0.01)
    assert not waiting.done()

    limit.resize(3)
    await asyncio.wait_for(waiting, 1)
    assert limit.held == 2
