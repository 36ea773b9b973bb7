"""Waiting for a condition: the one way the tests wait for something to happen.

A test never sleeps a fixed time hoping that something has happened by then: it awaits the
condition, up to a deadline, and the failure says what it was waiting for.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest

T = TypeVar("T")

# What takes a second on a quiet machine can take ten with the suite's workers, their worker
# processes and someone else's tests sharing two CPUs.
DEADLINE_S = 30.0
FIRST_PAUSE_S = 0.01  # between the first checks: most conditions hold within milliseconds
LONGEST_PAUSE_S = 0.2  # between later ones: a check may cost a query, and a long wait many


async def wait_until(
    condition: Callable[[], Awaitable[T]], what: str, *, within_s: float = DEADLINE_S
) -> T:
    """Await `condition` until it returns something truthy, and return that.

    Fails the test, naming `what`, when `within_s` seconds pass first. The deadline is how
    long before a test is taken for stuck, not how fast anything should be: a test that
    claims a speed asserts it itself. The pauses between checks grow from `FIRST_PAUSE_S` to
    `LONGEST_PAUSE_S`; the last check is made at the deadline. An exception from `condition`
    ends the wait at once.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    pause = FIRST_PAUSE_S
    while True:
        result = await condition()
        if result:
            return result
        left = deadline - loop.time()
        if left <= 0:
            pytest.fail(f"timed out after {within_s:g} s waiting for {what}")
        await asyncio.sleep(min(pause, left))
        pause = min(pause * 2, LONGEST_PAUSE_S)


def while_running(
    task: asyncio.Task[Any], condition: Callable[[], Awaitable[T]]
) -> Callable[[], Awaitable[T]]:
    """`condition`, but failing at once if `task` has ended, with the task's own error if it
    raised one: a worker that stopped will never meet the condition."""

    async def check() -> T:
        if task.done():
            task.result()
            pytest.fail("the task ended before the condition was met")
        return await condition()

    return check


async def until_elapsed(since: float, seconds: float, what: str) -> None:
    """Wait until `seconds` have passed since `since` (`time.monotonic()`): an outage made to
    last, never a measure of how fast anything is."""

    async def long_enough() -> bool:
        return time.monotonic() - since >= seconds

    await wait_until(long_enough, what, within_s=seconds + 30)
