"""The shared schedule's row on both databases: workers never take the same slots."""

from __future__ import annotations

import asyncio
import itertools
import time

import pytest

from ses_sender.composition import Runtime
from ses_sender.delivery.pacer import Backoff
from ses_sender.delivery.schedule import DatabaseSchedule

INTERVAL = 0.01


async def test_concurrent_reservations_never_overlap(runtime: Runtime) -> None:
    workers = [DatabaseSchedule(runtime.sessionmaker) for _ in range(4)]
    now = workers[0].now()

    reservations = await asyncio.gather(
        *(
            schedule.reserve(now=now, count=5, interval=INTERVAL, shift_to=0.0)
            for schedule in workers
            for _ in range(5)
        )
    )

    blocks = sorted(reservation.first_slot for reservation in reservations)
    assert blocks[0] == pytest.approx(now)
    # Each block of 5 slots starts where the one before ended: no slot is taken twice.
    assert [b - a for a, b in itertools.pairwise(blocks)] == pytest.approx(
        [5 * INTERVAL] * (len(blocks) - 1)
    )


async def test_the_schedule_starts_from_now_after_an_idle_spell(runtime: Runtime) -> None:
    schedule = DatabaseSchedule(runtime.sessionmaker)
    await schedule.reserve(now=1_000.0, count=3, interval=INTERVAL, shift_to=0.0)

    later = await schedule.reserve(now=2_000.0, count=3, interval=INTERVAL, shift_to=0.0)

    assert later.first_slot == 2_000.0


async def test_debt_moves_every_later_slot_on(runtime: Runtime) -> None:
    schedule = DatabaseSchedule(runtime.sessionmaker)
    await schedule.reserve(now=1_000.0, count=10, interval=INTERVAL, shift_to=0.0)

    await schedule.reserve(now=1_000.0, count=0, interval=INTERVAL, shift_to=0.004)
    after = await schedule.reserve(now=1_000.0, count=1, interval=INTERVAL, shift_to=0.0)

    assert after.first_slot == pytest.approx(1_000.0 + 10 * INTERVAL + 0.004)


async def test_a_back_off_is_shared_and_a_stale_one_does_not_undo_it(runtime: Runtime) -> None:
    first, second = DatabaseSchedule(runtime.sessionmaker), DatabaseSchedule(runtime.sessionmaker)
    await first.reserve(now=1_000.0, count=1, interval=INTERVAL, shift_to=0.0)
    halved = Backoff(level=0.5, since=1_001.0)

    assert await first.back_off(seen=Backoff(), to=halved) == halved
    # The second worker decided from what it saw before the first one's back-off.
    assert await second.back_off(seen=Backoff(), to=Backoff(0.5, 1_001.2)) == halved
    seen_by_second = await second.reserve(now=1_001.5, count=1, interval=INTERVAL, shift_to=0.0)
    assert seen_by_second.backoff == halved


async def test_the_clock_is_the_database_servers(runtime: Runtime) -> None:
    schedule = DatabaseSchedule(runtime.sessionmaker)
    await schedule.reserve(now=schedule.now(), count=1, interval=INTERVAL, shift_to=0.0)

    # The test's database runs on this machine: its clock and ours agree within a round trip.
    assert schedule.now() == pytest.approx(time.time(), abs=0.05)
