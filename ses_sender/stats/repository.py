"""Read-only aggregates."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, case, distinct, false, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from ses_sender.models import EventType, Request, RequestStatus, Result, ResultSource, StopReason


@dataclass(frozen=True, slots=True)
class Engagement:
    """Our own opens or clicks of a topic (or of one link), people's and machines'."""

    total: int
    machine: int
    unique: int  # requests with any
    unique_human: int  # requests with one a person made
    unique_machine: int  # requests with one a machine made


def _tracked_in_topic(topic_id: str, kind: EventType) -> Select[Any]:
    machine = func.coalesce(Result.machine, false())
    return (
        select(
            func.count(),
            func.coalesce(func.sum(case((machine, 1), else_=0)), 0),
            func.count(distinct(Result.request_id)),
            func.count(distinct(case((~machine, Result.request_id)))),
            func.count(distinct(case((machine, Result.request_id)))),
        )
        .select_from(Result)
        .join(Request, Request.id == Result.request_id)
        .where(
            Request.topic_id == topic_id,
            Result.status == kind,
            Result.source == ResultSource.TRACKING,
        )
    )


async def engagement(session: AsyncSession, topic_id: str, kind: EventType) -> Engagement:
    row = (await session.execute(_tracked_in_topic(topic_id, kind))).one()
    return Engagement(*(int(value) for value in row))


async def link_engagement(
    session: AsyncSession, topic_id: str, *, limit: int
) -> list[tuple[str, Engagement]]:
    """Clicks by link URL, the most clicked first (the honeypot, which has none, left out)."""
    rows = await session.execute(
        _tracked_in_topic(topic_id, EventType.CLICK)
        .add_columns(Result.url)
        .where(Result.url.is_not(None))
        .group_by(Result.url)
        .order_by(func.count().desc(), Result.url)
        .limit(limit)
    )
    return [(row[-1], Engagement(*(int(value) for value in row[:-1]))) for row in rows]


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
