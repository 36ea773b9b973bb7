"""SQL for the reputation guardrail: one aggregate over the window's sends, and its pause row."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from ses_sender.models import Request, SendingPause

# SES does not count this bounce toward an account's bounce rate: SES itself never tried.
NOT_COUNTED_BOUNCE = "Permanent/OnAccountSuppressionList"


@dataclass(frozen=True, slots=True)
class WindowCounts:
    sent: int
    hard_bounced: int
    complained: int


async def window_counts(session: AsyncSession, *, since: datetime, now: datetime) -> WindowCounts:
    """Emails sent after `since` (up to `now`), and how many of them hard-bounced or complained.

    One range scan of the `sent_at` index, whatever the number of bounces.
    """
    hard_bounce = and_(
        Request.bounced_at.is_not(None),
        Request.bounce_type.like("Permanent%"),
        Request.bounce_type != NOT_COUNTED_BOUNCE,
    )
    row = (
        await session.execute(
            select(
                func.count(),
                func.count().filter(hard_bounce),
                func.count().filter(Request.complained_at.is_not(None)),
            ).where(Request.sent_at > since, Request.sent_at <= now)
        )
    ).one()
    return WindowCounts(sent=row[0], hard_bounced=row[1], complained=row[2])


async def pause_row(session: AsyncSession, name: str) -> SendingPause | None:
    """The pause called `name`, active or ended."""
    found: SendingPause | None = await session.scalar(
        select(SendingPause).where(SendingPause.name == name)
    )
    return found
