"""Periodic jobs and waiting, in virtual time: no test here waits for real."""

from __future__ import annotations

import asyncio
import logging

import pytest
from sqlalchemy.exc import OperationalError

from ses_sender.tasks import Periodic, wait_any


class VirtualTime:
    """A sleep that returns at once and counts what it was asked to wait."""

    def __init__(self) -> None:
        self.now = 0.0

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        await asyncio.sleep(0)


async def test_a_periodic_job_runs_at_once_then_every_interval_until_stopped() -> None:
    time = VirtualTime()
    runs: list[float] = []
    periodic: Periodic

    async def job() -> None:
        runs.append(time.now)
        if len(runs) == 4:
            periodic.stop()

    periodic = Periodic("job", job, 30.0, sleep=time.sleep)
    await asyncio.wait_for(periodic.run(), 5)

    assert runs == [0.0, 30.0, 60.0, 90.0]


async def test_a_transient_failure_is_retried_at_the_next_tick() -> None:
    time = VirtualTime()
    outcomes: list[str] = []
    periodic: Periodic

    async def job() -> None:
        outcomes.append("tried")
        if len(outcomes) == 1:
            raise OperationalError("SELECT 1", {}, OSError("connection refused"))
        if len(outcomes) == 1 + 2:
            periodic.stop()

    periodic = Periodic("job", job, 5.0, sleep=time.sleep)
    await asyncio.wait_for(periodic.run(), 5)

    assert (outcomes, time.now) == (["tried"] * 3, 10.0)


async def test_any_other_failure_ends_the_task_loudly() -> None:
    async def job() -> None:
        raise ValueError("a bug")

    with pytest.raises(ValueError, match="a bug"):
        await asyncio.wait_for(Periodic("job", job, 5.0).run(), 5)


async def test_stop_ends_the_wait_at_once() -> None:
    stopping = asyncio.Event()
    never = asyncio.Event()

    async def forever(_seconds: float) -> None:
        await asyncio.Event().wait()

    waiting = asyncio.create_task(wait_any(never, stopping, timeout_s=3600, sleep=forever))
    await asyncio.sleep(0)
    stopping.set()

    await asyncio.wait_for(waiting, 5)


async def test_a_job_failing_at_every_tick_is_logged_once_with_its_cause(
    caplog: pytest.LogCaptureFixture,
) -> None:
    time = VirtualTime()
    tries = 0
    periodic: Periodic

    async def job() -> None:
        nonlocal tries
        tries += 1
        if tries == 5:
            periodic.stop()
        raise OperationalError("SELECT 1", {}, OSError("connection refused"))

    periodic = Periodic("job", job, 5.0, sleep=time.sleep)
    with caplog.at_level(logging.WARNING, logger="ses_sender.tasks"):
        await asyncio.wait_for(periodic.run(), 5)

    assert tries == 5
    assert [(r.getMessage(), r.exc_info) for r in caplog.records] == [
        ("job failed: OSError: connection refused; trying again in 5 s", None)
    ]
