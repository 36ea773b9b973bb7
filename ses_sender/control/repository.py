"""SQL for stopping, holding and moving queued email, by topic or one request at a time."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import ColumnElement, CursorResult, case, delete, func, literal, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ses_sender.db.base import UtcDateTime
from ses_sender.db.statements import insert_for
from ses_sender.models import Request, RequestStatus, TopicPause

# A paused topic's queued rows wait here instead of at their due time, out of the range the
# claim scans: a claim never walks past a paused backlog, however large. Resuming puts them
# back at their scheduled time (or now).
HELD_UNTIL_RESUMED = datetime(9999, 1, 1, tzinfo=UTC)
CANCELLED = "cancelled"  # the error a cancelled request keeps


async def stop_requests(
    session: AsyncSession, topic_id: str, status: RequestStatus, *, now: datetime
) -> int:
    """Every request of the topic in `status` becomes Stopped; how many."""
    stopped = await session.execute(
        update(Request)
        .where(Request.topic_id == topic_id, Request.status == status)
        .values(status=RequestStatus.STOPPED, error=CANCELLED, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    assert isinstance(stopped, CursorResult)
    return stopped.rowcount


async def counts_by_status(session: AsyncSession, topic_id: str) -> dict[int, int]:
    rows = await session.execute(
        select(Request.status, func.count())
        .where(Request.topic_id == topic_id)
        .group_by(Request.status)
    )
    return dict(rows.all())


async def status_for_update(session: AsyncSession, request_id: int) -> int | None:
    """The request's status, locked until the transaction ends (PostgreSQL; SQLite is serial)."""
    status: int | None = await session.scalar(
        select(Request.status).where(Request.id == request_id).with_for_update()
    )
    return status


async def stop_request(session: AsyncSession, request_id: int, *, now: datetime) -> None:
    await session.execute(
        update(Request)
        .where(Request.id == request_id)
        .values(status=RequestStatus.STOPPED, error=CANCELLED, updated_at=now)
        .execution_options(synchronize_session=False)
    )


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


async def paused_topics(session: AsyncSession) -> Sequence[str]:
    """Every paused topic, share-locked: a resume waits until this transaction has held rows,
    so it never finds rows held after it released them."""
    topics = await session.scalars(select(TopicPause.topic_id).with_for_update(read=True))
    return topics.all()


async def hold_queued(
    session: AsyncSession,
    topic_ids: Sequence[str],
    *,
    now: datetime,
    due_by: datetime | None = None,
) -> int:
    """Move the topics' queued rows (those due by `due_by`, if given) out of the claim's way."""
    conditions = [
        Request.topic_id.in_(topic_ids),
        Request.status == RequestStatus.CREATED,
        Request.due_at < HELD_UNTIL_RESUMED,
    ]
    if due_by is not None:
        conditions.append(Request.due_at <= due_by)
    held = await session.execute(
        update(Request)
        .where(*conditions)
        .values(due_at=HELD_UNTIL_RESUMED, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    assert isinstance(held, CursorResult)
    return held.rowcount


async def release_held(session: AsyncSession, topic_id: str, *, now: datetime) -> int:
    """Held rows become due at their scheduled time, or now if that has passed.

    A retry's backoff is not kept: a retried row is tried again at once.
    """
    released = await session.execute(
        update(Request)
        .where(
            Request.topic_id == topic_id,
            Request.status == RequestStatus.CREATED,
            Request.due_at >= HELD_UNTIL_RESUMED,
        )
        .values(
            due_at=case((Request.scheduled_at > now, Request.scheduled_at), else_=_time(now)),
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    assert isinstance(released, CursorResult)
    return released.rowcount


async def reschedule(session: AsyncSession, topic_id: str, at: datetime, *, now: datetime) -> int:
    """The topic's queued rows are scheduled for `at`; held rows stay held, and a retry due
    later than `at` keeps its backoff."""
    rescheduled = await session.execute(
        update(Request)
        .where(Request.topic_id == topic_id, Request.status == RequestStatus.CREATED)
        .values(
            scheduled_at=at,
            due_at=case(
                (Request.due_at >= HELD_UNTIL_RESUMED, Request.due_at),
                ((Request.attempts > 0) & (Request.due_at > at), Request.due_at),
                else_=_time(at),
            ),
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    assert isinstance(rescheduled, CursorResult)
    return rescheduled.rowcount


def _time(at: datetime) -> ColumnElement[datetime]:
    return literal(at, type_=UtcDateTime())
