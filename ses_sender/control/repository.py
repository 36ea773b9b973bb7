"""SQL for stopping, holding and moving queued email, by topic or one request at a time."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import CursorResult, case, delete, func, literal, select, true, update
from sqlalchemy.ext.asyncio import AsyncSession

from ses_sender.db.base import UtcDateTime
from ses_sender.db.dialect import insert_for
from ses_sender.models import Request, RequestStatus, StopReason, TopicPause
from ses_sender.stats.build import domain_sql

CANCELLED = "cancelled"  # the error a cancelled request keeps
# Ids bound in one statement: below every SQLite and PostgreSQL limit on parameters.
IDS_PER_STATEMENT = 5_000
_CANCEL_VALUES: dict[str, Any] = {
    "status": RequestStatus.STOPPED,
    "stop_reason": StopReason.CANCELLED,
    "error": CANCELLED,
    "lease_expires_at": None,
}


async def stop_requests(
    session: AsyncSession, topic_id: str, status: RequestStatus, *, now: datetime
) -> dict[str, int]:
    """Every request of the topic in `status` becomes Stopped; how many, by recipient domain,
    counted in the database (a topic may have ten million)."""
    stop = (
        update(Request)
        .where(Request.topic_id == topic_id, Request.status == status)
        .values({**_CANCEL_VALUES, "updated_at": now})
        .execution_options(synchronize_session=False)
    )
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        stopped = stop.returning(Request.recipient_key).cte("stopped")
        domain = domain_sql(dialect, stopped.c.recipient_key)
        rows = await session.execute(select(domain, func.count()).group_by(domain))
        return {str(found): int(count) for found, count in rows}
    # SQLite has no UPDATE in a WITH; its transaction holds the database, so the rows counted
    # first are the rows stopped.
    domain = domain_sql(dialect, Request.recipient_key)
    rows = await session.execute(
        select(domain, func.count())
        .where(Request.topic_id == topic_id, Request.status == status)
        .group_by(domain)
    )
    counts = {str(found): int(count) for found, count in rows}
    await session.execute(stop)
    return counts


async def status_for_update(session: AsyncSession, request_id: int) -> int | None:
    """The request's status, locked until the transaction ends (PostgreSQL; SQLite is serial)."""
    status: int | None = await session.scalar(
        select(Request.status).where(Request.id == request_id).with_for_update()
    )
    return status


async def stop_request(session: AsyncSession, request_id: int, *, now: datetime) -> tuple[str, str]:
    """Stop the request; its (topic, recipient key)."""
    stopped = await session.execute(
        update(Request)
        .where(Request.id == request_id)
        .values({**_CANCEL_VALUES, "updated_at": now})
        .returning(Request.topic_id, Request.recipient_key)
        .execution_options(synchronize_session=False)
    )
    topic_id, recipient = stopped.one()
    return topic_id, recipient


async def get_request(session: AsyncSession, request_id: int) -> Request | None:
    return await session.get(Request, request_id)


async def pause(session: AsyncSession, topic_id: str, *, now: datetime) -> datetime:
    """Record the pause (once); when the topic was first paused."""
    await session.execute(
        insert_for(session, TopicPause)
        .values(topic_id=topic_id, paused_at=now)
        .on_conflict_do_nothing(index_elements=[TopicPause.topic_id])
    )
    paused_at = await session.scalar(
        select(TopicPause.paused_at).where(TopicPause.topic_id == topic_id)
    )
    assert paused_at is not None
    return paused_at


async def unpause(session: AsyncSession, topic_id: str) -> None:
    await session.execute(delete(TopicPause).where(TopicPause.topic_id == topic_id))


async def paused_at(session: AsyncSession, topic_id: str) -> datetime | None:
    found: datetime | None = await session.scalar(
        select(TopicPause.paused_at).where(TopicPause.topic_id == topic_id)
    )
    return found


async def paused_among(session: AsyncSession, topic_ids: Collection[str]) -> set[str]:
    """Which of these topics are paused."""
    if not topic_ids:
        return set()
    found = await session.scalars(
        select(TopicPause.topic_id).where(TopicPause.topic_id.in_(topic_ids))
    )
    return set(found)


async def hold_queued(session: AsyncSession, topic_id: str, *, now: datetime) -> int:
    """Hold the topic's queued rows out of the claim's range; how many were queued."""
    held = await session.execute(
        update(Request)
        .where(Request.topic_id == topic_id, Request.status == RequestStatus.CREATED)
        .values(held=True, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    assert isinstance(held, CursorResult)
    return held.rowcount


async def release_held(session: AsyncSession, topic_id: str, *, now: datetime) -> int:
    """Held rows go back to the queue, due when they were (their scheduled time, or a retry's
    backoff): at once if that has passed."""
    released = await session.execute(
        update(Request)
        .where(
            Request.topic_id == topic_id,
            Request.status == RequestStatus.CREATED,
            Request.held == true(),
        )
        .values(held=False, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    assert isinstance(released, CursorResult)
    return released.rowcount


async def reschedule(session: AsyncSession, topic_id: str, at: datetime, *, now: datetime) -> int:
    """The topic's queued rows are scheduled for `at` (held rows stay held); a retry due later
    than `at` keeps its backoff."""
    rescheduled = await session.execute(
        update(Request)
        .where(Request.topic_id == topic_id, Request.status == RequestStatus.CREATED)
        .values(
            scheduled_at=at,
            due_at=case(
                ((Request.attempts > 0) & (Request.due_at > at), Request.due_at),
                else_=literal(at, type_=UtcDateTime()),
            ),
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    assert isinstance(rescheduled, CursorResult)
    return rescheduled.rowcount


async def failed_ids(
    session: AsyncSession, *, topic_id: str | None, request_id: int | None
) -> list[int]:
    """The Failed rows of the topic, or the one request if it is Failed."""
    query = select(Request.id).where(Request.status == RequestStatus.FAILED)
    if topic_id is not None:
        query = query.where(Request.topic_id == topic_id)
    if request_id is not None:
        query = query.where(Request.id == request_id)
    return list(await session.scalars(query.order_by(Request.id)))


async def requeue_failed(
    session: AsyncSession, request_ids: Sequence[int], *, now: datetime
) -> list[tuple[int, str]]:
    """Those of these rows still Failed back in the queue, due now, their attempts counted
    afresh; (id, topic) of each."""
    requeued: list[tuple[int, str]] = []
    for start in range(0, len(request_ids), IDS_PER_STATEMENT):
        rows = await session.execute(
            update(Request)
            .where(
                Request.id.in_(request_ids[start : start + IDS_PER_STATEMENT]),
                Request.status == RequestStatus.FAILED,
            )
            .values(
                status=RequestStatus.CREATED,
                due_at=now,
                attempts=0,
                error=None,
                lease_expires_at=None,
                updated_at=now,
            )
            .returning(Request.id, Request.topic_id)
            .execution_options(synchronize_session=False)
        )
        requeued += [(row_id, topic) for row_id, topic in rows]
    return requeued


async def topic_exists(session: AsyncSession, topic_id: str) -> bool:
    found = await session.scalar(select(Request.id).where(Request.topic_id == topic_id).limit(1))
    return found is not None
