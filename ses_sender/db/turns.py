"""Bulk writers take turns on SQLite, and leave the database free between turns.

SQLite has one writer at a time, and a transaction that finds the lock taken waits in SQLite's
busy handler, which sleeps and tries again (1 ms, 2 ms, 5 ms, ... up to 100 ms). A writer that
begins the moment the lock is released wins over one asleep in that handler. Clients posting
recipients one request after another held the lock almost without a gap, and the worker's
claims and records, asleep in the handler, seldom got it: it sent 1 % of its rate
(docs/decisions/0023-sqlite-ingest-yields-to-sending.md).

So bulk writes take turns, one at a time, and a turn that held the database for t seconds
leaves it free for 2t before the next one begins: bulk writes hold the database at most a third
of the time, and the worker's transactions find it free in between.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

# The most of the time bulk writes may hold the database: a turn of t seconds is followed by
# t * (1 / share - 1) seconds free.
BULK_SHARE = 1 / 3


class WriterTurns:
    def __init__(
        self,
        *,
        enabled: bool,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._enabled = enabled
        self._monotonic = monotonic
        self._sleep = sleep
        self._lock = asyncio.Lock()
        self._free_until = 0.0

    @asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        """One bulk write transaction, begun and committed inside the block."""
        if not self._enabled:
            yield
            return
        async with self._lock:
            free_for = self._free_until - self._monotonic()
            if free_for > 0:
                await self._sleep(free_for)
            started = self._monotonic()
            try:
                yield
            finally:
                ended = self._monotonic()
                self._free_until = ended + (ended - started) * (1 / BULK_SHARE - 1)
