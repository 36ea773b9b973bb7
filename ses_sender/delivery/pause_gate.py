"""Whether this worker may send now.

All sending pauses while any pause is in force (an operator's, the reputation guardrail's, the
provider account's, the provider's outage): they live in the database, shared by every worker,
and are looked up at most once a `CHECK_INTERVAL_S`, so every worker honours one within that.
When the provider refuses the account (sending paused, suspended, daily quota), this worker
stops at once and records an account pause for the others, which ends by itself after
`ACCOUNT_PAUSE_S` or as soon as the account watch sees the account can send again. When the
provider fails every send (`outage.py`), it stops the same way and records the outage pause,
which only the outage probe lifts.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ses_sender.clock import Clock
from ses_sender.delivery.ports import PauseSource

CHECK_INTERVAL_S = 1.0
ACCOUNT_PAUSE_S = 60.0
# The recorded pause then holds this worker with the others; this only covers the moment until
# it is recorded and read back, and must not outlast it.
LOCAL_PAUSE_S = 2 * CHECK_INTERVAL_S

_PauseRecord = Callable[[AsyncSession, datetime], Awaitable[None]]


class PauseGate:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        pauses: PauseSource,
        clock: Clock,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._pauses = pauses
        self._clock = clock
        self._stopped_until = -math.inf
        self._unrecorded: _PauseRecord | None = None
        self._checked_until = -math.inf
        self._in_force = False

    @property
    def stopped_here(self) -> bool:
        """Whether this worker stopped itself: the provider refused the account, or failed every
        send."""
        return self._clock.monotonic() < self._stopped_until

    def seconds_stopped_here(self) -> float:
        return max(0.0, self._stopped_until - self._clock.monotonic())

    def account_refused(self, reason: str) -> None:
        """The provider refused to send for the account: stop now, and every worker soon."""

        async def record(session: AsyncSession, now: datetime) -> None:
            until = now + timedelta(seconds=ACCOUNT_PAUSE_S)
            await self._pauses.pause_for_account(session, reason, now=now, until=until)

        self._stop_here(record)

    def provider_unreachable(self, reason: str) -> None:
        """The provider failed every send of late: stop now, and every worker soon, until the
        outage probe finds it answering again."""

        async def record(session: AsyncSession, now: datetime) -> None:
            await self._pauses.pause_for_outage(session, reason, now=now)

        self._stop_here(record)

    def _stop_here(self, record: _PauseRecord) -> None:
        self._stopped_until = self._clock.monotonic() + LOCAL_PAUSE_S
        self._unrecorded = record

    async def holding(self) -> bool:
        """Whether sending must wait; records a pause this worker set first, so the others hear
        of it."""
        if self._unrecorded is not None:
            await self._record_pause(self._unrecorded)
        if self.stopped_here:
            return True
        if self._clock.monotonic() < self._checked_until:
            return self._in_force
        async with self._sessionmaker() as session, session.begin():
            self._in_force = await self._pauses.sending_paused(session, now=self._clock.now())
        self._checked_until = self._clock.monotonic() + CHECK_INTERVAL_S
        return self._in_force

    async def _record_pause(self, record: _PauseRecord) -> None:
        async with self._sessionmaker() as session, session.begin():
            await record(session, self._clock.now())
        if self._unrecorded is record:  # no newer pause came in meanwhile
            self._unrecorded = None
        self._checked_until = -math.inf  # read the pause back at the next look
