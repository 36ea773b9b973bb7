"""Whether this worker may send now.

All sending pauses while any pause is in force (an operator's, the reputation guardrail's, the
provider account's): they live in the database, shared by every worker, and are looked up at
most once a `CHECK_INTERVAL_S`, so every worker honours one within that. When the provider
refuses the account (sending paused, suspended, daily quota), this worker stops at once and
records an account pause for the others, which ends by itself after `ACCOUNT_PAUSE_S` or as
soon as the account watch sees the account can send again.
"""

from __future__ import annotations

import math
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ses_sender.clock import Clock
from ses_sender.delivery.ports import PauseSource

CHECK_INTERVAL_S = 1.0
ACCOUNT_PAUSE_S = 60.0
# The recorded pause then holds this worker with the others; this only covers the moment until
# it is recorded and read back, and must not outlast it.
LOCAL_PAUSE_S = 2 * CHECK_INTERVAL_S


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
        self._account_refusal: str | None = None
        self._checked_until = -math.inf
        self._in_force = False

    @property
    def stopped_here(self) -> bool:
        """Whether this worker stopped itself after the provider refused the account."""
        return self._clock.monotonic() < self._stopped_until

    def seconds_stopped_here(self) -> float:
        return max(0.0, self._stopped_until - self._clock.monotonic())

    def account_refused(self, reason: str) -> None:
        """The provider refused to send for the account: stop now, and every worker soon."""
        self._stopped_until = self._clock.monotonic() + LOCAL_PAUSE_S
        self._account_refusal = reason

    async def holding(self) -> bool:
        """Whether sending must wait; records a refusal first, so the others hear of it."""
        if self._account_refusal is not None:
            await self._record_refusal(self._account_refusal)
        if self.stopped_here:
            return True
        if self._clock.monotonic() < self._checked_until:
            return self._in_force
        async with self._sessionmaker() as session, session.begin():
            self._in_force = await self._pauses.sending_paused(session, now=self._clock.now())
        self._checked_until = self._clock.monotonic() + CHECK_INTERVAL_S
        return self._in_force

    async def _record_refusal(self, reason: str) -> None:
        now = self._clock.now()
        async with self._sessionmaker() as session, session.begin():
            await self._pauses.pause_for_account(
                session, reason, now=now, until=now + timedelta(seconds=ACCOUNT_PAUSE_S)
            )
        if self._account_refusal == reason:  # no newer refusal came in meanwhile
            self._account_refusal = None
        self._checked_until = -math.inf  # read the pause back at the next look
