"""What a process runs beside its request handlers and its delivery loop: side tasks, and the
periodic job most of them are.

A side task runs until it is asked to stop; `stop` only asks and returns at once, and `run`
returns once the task has finished what it had under way. The process stops when any side task
ends with an error, loudly, rather than running on without it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

from sqlalchemy.exc import DBAPIError

from ses_sender.db import errors as database

log = logging.getLogger(__name__)

T = TypeVar("T")

Sleep = Callable[[float], Awaitable[None]]
# Failures that pass: the database or the network is away for a while.
TRANSIENT_ERRORS = (DBAPIError, OSError)


class SideTask(Protocol):
    async def run(self) -> None: ...

    def stop(self) -> None: ...


async def wait_any(*events: asyncio.Event, timeout_s: float, sleep: Sleep) -> None:
    """Return once any of `events` is set, or after `timeout_s` (waited with `sleep`, so that
    tests can run it in virtual time)."""
    if any(event.is_set() for event in events):
        return
    waits: set[asyncio.Future[object]] = {asyncio.ensure_future(event.wait()) for event in events}
    waits.add(asyncio.ensure_future(sleep(timeout_s)))
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()
        await asyncio.gather(*waits, return_exceptions=True)


async def unless_set(event: asyncio.Event, awaitable: Awaitable[T]) -> asyncio.Future[T] | None:
    """Await `awaitable` unless `event` is set first (then it is cancelled): the finished
    future, whose `result()` gives its value or raises its error, or None."""
    task = asyncio.ensure_future(awaitable)
    setting = asyncio.ensure_future(event.wait())
    done, _ = await asyncio.wait({task, setting}, return_when=asyncio.FIRST_COMPLETED)
    setting.cancel()
    if task in done:
        return task
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    return None


class Periodic:
    """Runs `job` at once, then every `interval_s`, until stopped.

    A transient failure (database or network) is logged and the job runs again at the next
    tick; any other error ends `run`, and so the process.
    """

    def __init__(
        self,
        name: str,
        job: Callable[[], Awaitable[object]],
        interval_s: float,
        *,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.name = name
        self._job = job
        self._interval_s = interval_s
        self._sleep = sleep
        self._stopping = asyncio.Event()
        self._outage_log = database.OutageLog(log)

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        while not self._stopping.is_set():
            try:
                await self._job()
            except TRANSIENT_ERRORS as error:
                self._outage_log.log(
                    logging.WARNING,
                    self.name,
                    "%s failed: %s; trying again in %g s",
                    self.name,
                    database.describe(error),
                    self._interval_s,
                )
            await wait_any(self._stopping, timeout_s=self._interval_s, sleep=self._sleep)
