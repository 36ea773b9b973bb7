from __future__ import annotations

import asyncio
import itertools
import math

import pytest

from ses_sender.delivery.pacer import Pacer


class VirtualTime:
    """A monotonic clock and a sleep that only move virtual time (with optional lateness)."""

    def __init__(self, oversleep: float = 0.0) -> None:
        self.now = 0.0
        self.oversleep = oversleep

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds + self.oversleep


def max_in_any_window(times: list[float], window: float = 1.0) -> int:
    """Largest number of grants in any half-open window [t, t + window).

    A nanosecond of slack absorbs float rounding in the virtual clock's sums.
    """
    best = 0
    start = 0
    for end, at in enumerate(times):
        while at - times[start] >= window - 1e-9:
            start += 1
        best = max(best, end - start + 1)
    return best


async def grants(pacer: Pacer, time: VirtualTime, count: int) -> list[float]:
    times = []
    for _ in range(count):
        await pacer.acquire()
        times.append(time.now)
    return times


@pytest.mark.parametrize("rate", [0.5, 1.0, 14.0, 100.0, 2_000.0])
async def test_grants_are_evenly_spaced_at_the_rate(rate: float) -> None:
    time = VirtualTime()
    pacer = Pacer(rate, monotonic=time.monotonic, sleep=time.sleep)

    times = await grants(pacer, time, int(rate * 5) + 1)

    gaps = [b - a for a, b in itertools.pairwise(times)]
    # Every gap is 1/rate, give or take the pacer's 2 ms allowance for clock jitter.
    assert min(gaps) == pytest.approx(1 / rate, abs=0.0021)
    assert max(gaps) == pytest.approx(1 / rate, abs=0.0021)
    assert max_in_any_window(times) <= max(1, math.floor(rate))


@pytest.mark.parametrize("rate", [2.5, 14.0, 500.0])
@pytest.mark.parametrize("oversleep", [0.0003, 0.004, 0.03])
async def test_late_wakeups_never_put_more_than_the_rate_in_a_second(
    rate: float, oversleep: float
) -> None:
    time = VirtualTime(oversleep=oversleep)
    pacer = Pacer(rate, monotonic=time.monotonic, sleep=time.sleep)

    times = await grants(pacer, time, int(rate * 6))

    assert max_in_any_window(times) <= math.floor(rate)
    # Lateness is caught up: the rate over the run stays close to the most any window allows
    # (for 2.5/s that is 2 in every second).
    achieved = (len(times) - 1) / (times[-1] - times[0])
    assert achieved >= math.floor(rate) * 0.9


async def test_idle_time_buys_no_burst() -> None:
    time = VirtualTime()
    pacer = Pacer(10, monotonic=time.monotonic, sleep=time.sleep)
    await grants(pacer, time, 3)

    time.now += 60  # idle for a minute
    after_idle = await grants(pacer, time, 3)

    assert after_idle[1] - after_idle[0] == pytest.approx(0.1, abs=0.0021)
    assert after_idle[2] - after_idle[1] == pytest.approx(0.1, abs=0.0021)


async def test_first_grant_is_immediate_and_delay_reports_the_wait() -> None:
    time = VirtualTime()
    pacer = Pacer(4, monotonic=time.monotonic, sleep=time.sleep)

    assert pacer.delay(time.now) == 0
    await pacer.acquire()
    assert time.now == 0
    assert pacer.delay(time.now) == pytest.approx(0.25)


async def test_concurrent_callers_share_the_rate() -> None:
    time = VirtualTime()
    pacer = Pacer(20, monotonic=time.monotonic, sleep=time.sleep)
    times: list[float] = []

    async def caller() -> None:
        for _ in range(10):
            await pacer.acquire()
            times.append(time.now)

    await asyncio.gather(*(caller() for _ in range(5)))

    assert len(times) == 50
    assert max_in_any_window(sorted(times)) <= 20


def test_rate_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        Pacer(0, monotonic=lambda: 0.0)
