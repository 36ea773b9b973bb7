"""The guardrail's check: a periodic job of every worker process (`GUARDRAIL_CHECK_SECONDS`).

Checked here rather than on each Bounce or Complaint the SNS endpoint takes in: ingestion pays
nothing for it, and the rates still move as the 24-hour window slides without any new event.
Every worker checks; pausing twice is harmless.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ses_sender.clock import Clock
from ses_sender.guardrail.service import Limits, Memory, check_reputation


class GuardrailMonitor:
    def __init__(
        self,
        *,
        sessionmaker: async_sessionmaker[AsyncSession],
        limits: Limits,
        clock: Clock,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._limits = limits
        self._clock = clock
        self._memory = Memory()

    async def check(self) -> str | None:
        """One check; why it paused sending, if it did."""
        async with self._sessionmaker() as session, session.begin():
            check = await check_reputation(
                session, self._limits, now=self._clock.now(), memory=self._memory
            )
        # A trip is logged (at error level, so Sentry hears of it) by pause_sending.
        self._memory = check.memory
        return check.tripped
