"""The reputation guardrail: pause all sending when the last day's bounce or complaint rate is
too high, before SES reviews the account (it does at 10 % bounces or 0.5 % complaints).

Rules:

* The window is the emails sent in the last 24 hours (`sent_at`), or since the guardrail was
  last resumed if that is later. A bounce counts when it is permanent ("hard"), as in SES's own
  bounce rate; soft bounces and `OnAccountSuppressionList` do not. A complaint always counts.
* Nothing trips until the window holds `min_sends` emails; a rate trips when it is strictly
  over its limit. The pause lasts until an operator resumes it.
* After a resume the guardrail counts afresh, from the resume on: the emails that tripped it do
  not trip it again, and it trips again only once `min_sends` newer emails are over a limit.

A resume deletes the pause row, so the guardrail notices a resume itself (it saw its pause at
the previous check, and the pause is gone) and keeps when, in memory and as an ended pause
(`until` = the resume) where every process and every restart finds it. It re-writes that record
if something deletes it (a "resume all", say) while it remembers. Only a resume that no running
check saw, followed by a restart, counts the whole day again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from ses_sender.guardrail import repository
from ses_sender.guardrail.repository import WindowCounts
from ses_sender.sending.service import pause_sending

log = logging.getLogger(__name__)

PAUSE_NAME = "guardrail"
WINDOW = timedelta(hours=24)


@dataclass(frozen=True, slots=True)
class Limits:
    bounce_rate: float
    complaint_rate: float
    min_sends: int


@dataclass(frozen=True, slots=True)
class Memory:
    """What one check tells the next, in the same process."""

    #: When the guardrail's pause in force began; None while it is not paused.
    paused_since: datetime | None = None
    #: When the guardrail was last resumed, as far as this process knows.
    resumed_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Check:
    memory: Memory
    #: Why it paused, when this check paused sending.
    tripped: str | None = None


async def check_reputation(
    session: AsyncSession, limits: Limits, *, now: datetime, memory: Memory
) -> Check:
    """Pause all sending if the rates are over their limits."""
    record = await repository.pause_row(session, PAUSE_NAME)
    if record is not None and (record.until is None or record.until > now):
        # Already paused: nothing to count.
        return Check(Memory(paused_since=record.paused_at, resumed_at=memory.resumed_at))
    resumed_at = memory.resumed_at
    if record is not None and record.until is not None:
        resumed_at = record.until if resumed_at is None else max(resumed_at, record.until)
    elif memory.paused_since is not None:
        log.warning("the reputation guardrail was resumed: it counts emails sent from now on")
        resumed_at = now
    counting_from = now - WINDOW
    if resumed_at is not None and resumed_at > counting_from:
        counting_from = resumed_at
        if record is None or record.until != resumed_at:
            await pause_sending(session, PAUSE_NAME, "resumed", now=resumed_at, until=resumed_at)
    counts = await repository.window_counts(session, since=counting_from, now=now)
    reason = over_limits(counts, limits, since=counting_from)
    if reason is None:
        return Check(Memory(resumed_at=resumed_at))
    await pause_sending(session, PAUSE_NAME, reason, now=now)
    return Check(Memory(paused_since=now, resumed_at=resumed_at), tripped=reason)


@dataclass(frozen=True, slots=True)
class Reputation:
    """The rates the guardrail judges, over the window it judges them on."""

    since: datetime
    counts: WindowCounts

    @property
    def bounce_rate(self) -> float:
        return self.counts.hard_bounced / self.counts.sent if self.counts.sent else 0.0

    @property
    def complaint_rate(self) -> float:
        return self.counts.complained / self.counts.sent if self.counts.sent else 0.0


async def reputation(session: AsyncSession, *, now: datetime) -> Reputation:
    """The last day's rates, counted from the guardrail's last resume if that is later (as far
    as the checks have recorded it)."""
    since = now - WINDOW
    record = await repository.pause_row(session, PAUSE_NAME)
    if record is not None and record.until is not None and since < record.until <= now:
        since = record.until
    return Reputation(since, await repository.window_counts(session, since=since, now=now))


def over_limits(counts: WindowCounts, limits: Limits, *, since: datetime) -> str | None:
    """Why the rates are too high, or None when they are not (or too few emails to judge)."""
    if counts.sent < limits.min_sends or counts.sent == 0:
        return None
    window = f"of {counts.sent} emails sent since {since:%Y-%m-%d %H:%M:%S} UTC"
    reasons = []
    bounce_rate = counts.hard_bounced / counts.sent
    if bounce_rate > limits.bounce_rate:
        reasons.append(
            f"bounce rate {bounce_rate:.2%} ({counts.hard_bounced} hard bounces {window}) "
            f"is over GUARDRAIL_BOUNCE_RATE {limits.bounce_rate:.2%}"
        )
    complaint_rate = counts.complained / counts.sent
    if complaint_rate > limits.complaint_rate:
        reasons.append(
            f"complaint rate {complaint_rate:.2%} ({counts.complained} complaints {window}) "
            f"is over GUARDRAIL_COMPLAINT_RATE {limits.complaint_rate:.2%}"
        )
    return "; ".join(reasons) or None
