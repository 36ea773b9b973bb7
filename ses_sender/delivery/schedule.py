"""The `Schedule` every worker shares: a row in `rate_limits`, kept on the database's clock.

Workers on other machines agree on time only through the database: each one measures how far
its own clock is from the database server's (the quickest of a few readings, so the error is
under half a round trip) and converts every slot with that offset.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ses_sender.db.dialect import database_time
from ses_sender.delivery import repository
from ses_sender.delivery.pacer import Backoff, Reservation

SES_RATE = "ses"  # the row for the SES account's rate (one account and region per database)
CLOCK_READINGS = 5
CLOCK_RESYNC_S = 600.0  # clocks drift apart slowly; a fresh offset every ten minutes


class DatabaseSchedule:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        name: str = SES_RATE,
        monotonic: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._name = name
        self._monotonic = monotonic
        # Until measured, our own wall clock: exact when the database runs on this machine.
        self._offset = wall_clock() - monotonic()
        self._synced_at = -math.inf

    def now(self) -> float:
        return self._monotonic() + self._offset

    async def reserve(
        self, *, now: float, count: int, interval: float, shift_to: float
    ) -> Reservation:
        await self._sync_clock_if_due()
        span = count * interval
        async with self._sessionmaker() as session, session.begin():
            row = await repository.reserve_slots(
                session, self._name, now=now, span=span, shift_to=shift_to
            )
        return Reservation(
            first_slot=row.next_free_at - span,
            shifted=row.shifted,
            backoff=Backoff(row.backoff_level, row.backoff_since),
        )

    async def back_off(self, *, seen: Backoff, to: Backoff) -> Backoff:
        async with self._sessionmaker() as session, session.begin():
            state = await repository.set_backoff(
                session, self._name, seen_since=seen.since, level=to.level, since=to.since
            )
        return to if state is None else Backoff(*state)

    async def _sync_clock_if_due(self) -> None:
        if self._monotonic() - self._synced_at < CLOCK_RESYNC_S:
            return
        readings: list[tuple[float, float]] = []  # (round trip, offset)
        async with self._sessionmaker() as session:
            for _ in range(CLOCK_READINGS):
                before = self._monotonic()
                server = await database_time(session)
                after = self._monotonic()
                if server is None:
                    break  # SQLite: the database's clock is this machine's
                readings.append((after - before, server - (before + after) / 2))
        if readings:
            self._offset = min(readings)[1]
        self._synced_at = self._monotonic()
