"""The guardrail's loop: a side task of every worker process, checking on a fixed interval.

Checked here rather than on each Bounce or Complaint the SNS endpoint takes in: ingestion pays
nothing for it, and the rates still move as the 24-hour window slides without any new event.
Every worker checks; pausing twice is harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ses_sender.clock import Clock
from ses_sender.guardrail.service import Limits, Memory, check_reputation

log = logging.getLogger(__name__)


class GuardrailMonitor:
    def __init__(
        self,
        *,
        sessionmaker: async_sessionmaker[AsyncSession],
        limits: Limits,
        clock: Clock,
        interval_s: float,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._limits = limits
        self._clock = clock
        self._interval_s = interval_s
        self._stopping = asyncio.Event()
        self._memory = Memory()

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        while not self._stopping.is_set():
            try:
                await self.check()
            except (DBAPIError, OSError):
                # A database outage delays the check; it does not end the process.
                log.exception("guardrail check failed; trying again in %s s", self._interval_s)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._interval_s):
                    await self._stopping.wait()

    async def check(self) -> str | None:
        """One check; why it paused sending, if it did."""
        async with self._sessionmaker() as session, session.begin():
            check = await check_reputation(
                session, self._limits, now=self._clock.now(), memory=self._memory
            )
        # A trip is logged (at error level, so Sentry hears of it) by pause_sending.
        self._memory = check.memory
        return check.tripped
