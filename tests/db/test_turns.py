from __future__ import annotations

import asyncio

import pytest

from ses_sender.db.turns import BULK_SHARE, WriterTurns
from tests.support.clock import ManualClock


class RecordedSleep:
    """Moves the clock on by what was asked, and remembers it."""

    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock
        self.asked: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.asked.append(seconds)
        self.clock.advance(seconds)


async def test_a_turn_leaves_the_database_free_for_the_rest_of_its_share() -> None:
    clock = ManualClock()
    sleep = RecordedSleep(clock)
    turns = WriterTurns(enabled=True, monotonic=clock, sleep=sleep)

    async with turns.turn():
        clock.advance(0.3)
    async with turns.turn():
        clock.advance(0.1)
    clock.advance(10.0)  # long after: nothing to wait for
    async with turns.turn():
        pass

    assert sleep.asked == [pytest.approx(0.3 * (1 / BULK_SHARE - 1))]


async def test_bulk_writers_take_turns_one_at_a_time() -> None:
    turns = WriterTurns(enabled=True)
    inside: list[str] = []
    first_inside = asyncio.Event()
    release_first = asyncio.Event()

    async def first() -> None:
        async with turns.turn():
            inside.append("first in")
            first_inside.set()
            await release_first.wait()
            inside.append("first out")

    async def second() -> None:
        async with turns.turn():
            inside.append("second in")

    first_task = asyncio.create_task(first())
    await first_inside.wait()
    second_task = asyncio.create_task(second())
    release_first.set()
    await asyncio.gather(first_task, second_task)

    assert inside == ["first in", "first out", "second in"]


async def test_without_sqlite_turns_neither_wait_nor_exclude() -> None:
    clock = ManualClock()
    sleep = RecordedSleep(clock)
    turns = WriterTurns(enabled=False, monotonic=clock, sleep=sleep)

    async with turns.turn(), turns.turn():
        clock.advance(1.0)
    async with turns.turn():
        pass

    assert sleep.asked == []
