"""Read-only aggregates."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import distinct, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from ses_sender.models import Request, RequestStatus, Result, StopReason


async def request_counts_by_status(session: AsyncSession, topic_id: str) -> dict[int, int]:
    rows = await session.execute(
        select(Request.status, func.count())
        .where(Request.topic_id == topic_id)
        .group_by(Request.status)
    )
    return dict(rows.all())


async def stopped_count(session: AsyncSession, topic_id: str, reason: StopReason) -> int:
    """The topic's requests stopped for `reason` (a part of the stopped ones)."""
    count = await session.scalar(
        select(func.count()).where(
            Request.topic_id == topic_id,
            Request.status == RequestStatus.STOPPED,
            Request.stop_reason == reason,
        )
    )
    return count or 0


async def outcome_counts(session: AsyncSession, topic_id: str) -> dict[int | None, int]:
    """Sent requests by outcome (None: nothing heard beyond the send)."""
    rows = await session.execute(
        select(Request.outcome, func.count())
        .where(Request.topic_id == topic_id, Request.status == RequestStatus.SENT)
        .group_by(Request.outcome)
    )
    return dict(rows.all())


async def result_counts(session: AsyncSession, topic_id: str) -> tuple[int, dict[str, int]]:
    """(requests with any event, requests per event type) for a topic."""
    in_topic = (
        select(Result.request_id, Result.status)
        .join(Request, Request.id == Result.request_id)
        .where(Request.topic_id == topic_id)
        .subquery()
    )
    by_status = await session.execute(
        select(in_topic.c.status, func.count(distinct(in_topic.c.request_id))).group_by(
            in_topic.c.status
        )
    )
    total = await session.scalar(select(func.count(distinct(in_topic.c.request_id))))
    return total or 0, dict(by_status.all())


async def sent_since(session: AsyncSession, since: datetime) -> int:
    count = await session.scalar(select(func.count()).where(Request.sent_at >= since))
    return count or 0
