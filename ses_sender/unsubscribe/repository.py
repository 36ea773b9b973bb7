"""SQL for unsubscribing: mark the request once, log the event."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ses_sender.models import EventType, Request, Result, ResultSource
from ses_sender.stats.counters import EVENT_BITS


@dataclass(frozen=True, slots=True)
class Unsubscribed:
    recipient_key: str
    topic_id: str
    first_time: bool  # False: the request was marked unsubscribed before


async def recipient_key(session: AsyncSession, request_id: int) -> str | None:
    found: str | None = await session.scalar(
        select(Request.recipient_key).where(Request.id == request_id)
    )
    return found


async def mark_unsubscribed(
    session: AsyncSession, request_id: int, *, now: datetime
) -> Unsubscribed | None:
    """Set the request's `unsubscribed_at` unless set already; None when there is no request."""
    marked = await session.execute(
        update(Request)
        .where(Request.id == request_id, Request.unsubscribed_at.is_(None))
        # The event logged with it, kept for the counters (stats/counters.py).
        .values(
            unsubscribed_at=now,
            event_types=Request.event_types.op("|")(EVENT_BITS[EventType.UNSUBSCRIBE]),
        )
        .returning(Request.recipient_key, Request.topic_id)
    )
    row = marked.one_or_none()
    if row is not None:
        return Unsubscribed(row.recipient_key, row.topic_id, first_time=True)
    earlier = await session.execute(
        select(Request.recipient_key, Request.topic_id).where(Request.id == request_id)
    )
    row = earlier.one_or_none()
    return None if row is None else Unsubscribed(row.recipient_key, row.topic_id, False)


def log_unsubscribe(
    session: AsyncSession, request_id: int, recipient_key: str, *, now: datetime
) -> None:
    session.add(
        Result(
            request_id=request_id,
            status=EventType.UNSUBSCRIBE,
            source=ResultSource.TRACKING,
            recipient=recipient_key,
            occurred_at=now,
            created_at=now,
        )
    )
