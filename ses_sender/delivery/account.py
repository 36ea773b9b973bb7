"""The SES account's own limits, applied: a periodic job of every worker process using SES.

Every `ACCOUNT_CHECK_SECONDS` it reads `GetAccount` and
- caps the rate at `MaxSendRate` * (1 - `RATE_HEADROOM`) (never above `EMAIL_RATE`);
- pauses all sending while SES would refuse it (sending disabled, daily quota used), and lifts
  the account pause as soon as SES would send again, whoever set it: a worker that met an
  account-level error pauses sending for a while, and this is what ends that pause early.
Every worker checks; pausing or resuming twice is harmless.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ses_sender.clock import Clock
from ses_sender.db import errors as database
from ses_sender.delivery.pacer import Pacer
from ses_sender.delivery.ports import PauseSource
from ses_sender.tasks import TRANSIENT_ERRORS
from ses_sender.transports.base import LimitsSource, SendError, SendingLimits

log = logging.getLogger(__name__)


class AccountWatch:
    def __init__(
        self,
        *,
        source: LimitsSource,
        pacer: Pacer,
        pauses: PauseSource,
        sessionmaker: async_sessionmaker[AsyncSession],
        clock: Clock,
        email_rate: float,
        headroom: float,
        interval_s: float,
    ) -> None:
        self._source = source
        self._pacer = pacer
        self._pauses = pauses
        self._sessionmaker = sessionmaker
        self._clock = clock
        self._email_rate = email_rate
        self._headroom = headroom
        self._interval_s = interval_s
        self._outage_log = database.OutageLog(log)

    async def check(self) -> None:
        """Read the account's limits once and apply them; failures are logged, not raised."""
        try:
            limits = await self._source.sending_limits()
        except SendError as error:
            log.warning("could not read the SES account's limits: %s", error.reason)
            return
        if limits is None:
            return
        self._cap_rate(limits)
        try:
            async with self._sessionmaker() as session, session.begin():
                await self._pause_or_resume(session, limits)
        except TRANSIENT_ERRORS as error:
            self._outage_log.failed(
                "apply", error, "applying the SES account's state failed, trying again later: %s"
            )

    def _cap_rate(self, limits: SendingLimits) -> None:
        rate = self._email_rate
        if limits.max_send_rate is not None:
            rate = min(rate, limits.max_send_rate * (1 - self._headroom))
        if rate != self._pacer.target:
            log.info(
                "sending at %g emails/s (EMAIL_RATE %g, the account's MaxSendRate %s, "
                "RATE_HEADROOM %g)",
                rate,
                self._email_rate,
                "unknown" if limits.max_send_rate is None else f"{limits.max_send_rate:g}",
                self._headroom,
            )
            self._pacer.set_target(rate)

    async def _pause_or_resume(self, session: AsyncSession, limits: SendingLimits) -> None:
        now = self._clock.now()
        if not limits.sending_enabled:
            reason = "SES reports sending disabled for this account (GetAccount SendingEnabled)"
            await self._pauses.pause_for_account(session, reason, now=now, until=None)
        elif limits.daily_quota_used:
            reason = (
                f"the daily sending quota is used: {limits.sent_last_24_hours:g} of "
                f"{limits.max_24_hour_send:g} in the last 24 hours"
            )
            until = now + timedelta(seconds=self._interval_s)
            await self._pauses.pause_for_account(session, reason, now=now, until=until)
        else:
            await self._pauses.resume_for_account(session)
