"""SQL for SES events: store each once, find its request, keep the request's summary."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import SmallInteger, case, literal, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ses_sender.db.base import UtcDateTime
from ses_sender.db.statements import insert_for
from ses_sender.models import Request, Result, ResultSource


async def insert_results_once(
    session: AsyncSession,
    *,
    sns_message_id: str,
    recipients: Mapping[str, int | None],
    status: str,
    ses_message_id: str,
    occurred_at: datetime,
    raw: str,
    now: datetime,
) -> list[str]:
    """Store an SNS message's event, one row per recipient key (with its request, if known).

    Returns the recipients stored now: none when that SNS message was stored before.
    """
    statement = insert_for(session, Result)
    inserted = await session.execute(
        statement.values(
            [
                {
                    "request_id": request_id,
                    "status": status,
                    "source": ResultSource.SES,
                    "sns_message_id": sns_message_id,
                    "ses_message_id": ses_message_id,
                    "recipient": recipient,
                    "occurred_at": occurred_at,
                    "raw": raw,
                    "created_at": now,
                }
                for recipient, request_id in recipients.items()
            ]
        )
        .on_conflict_do_nothing(index_elements=[Result.sns_message_id, Result.recipient])
        .returning(Result.recipient)
    )
    return [recipient for recipient in inserted.scalars() if recipient is not None]


async def request_by_id(session: AsyncSession, request_id: int) -> tuple[int, str] | None:
    """(id, recipient key) of the request, if it exists."""
    found = await session.execute(
        select(Request.id, Request.recipient_key).where(Request.id == request_id)
    )
    row = found.one_or_none()
    return None if row is None else (row[0], row[1])


async def requests_by_message_id(
    session: AsyncSession, ses_message_id: str
) -> Sequence[tuple[int, str]]:
    """(id, recipient key) of the requests SES sent as this message (one each, for us)."""
    found = await session.execute(
        select(Request.id, Request.recipient_key).where(Request.message_id == ses_message_id)
    )
    return [(request_id, key) for request_id, key in found]


async def message_ids_with_waiting_results(
    session: AsyncSession, ses_message_ids: list[str]
) -> list[str]:
    found = await session.scalars(
        select(Result.ses_message_id)
        .where(Result.ses_message_id.in_(ses_message_ids), Result.request_id.is_(None))
        .distinct()
    )
    return [message_id for message_id in found if message_id is not None]


async def adopt_waiting_results(
    session: AsyncSession, request_id: int, ses_message_id: str
) -> Sequence[tuple[str, str]]:
    """Attach events for this request's recipient that arrived before its send was recorded;
    their (status, raw)."""
    recipient = select(Request.recipient_key).where(Request.id == request_id).scalar_subquery()
    adopted = await session.execute(
        update(Result)
        .where(
            Result.ses_message_id == ses_message_id,
            Result.request_id.is_(None),
            Result.recipient == recipient,
        )
        .values(request_id=request_id)
        .returning(Result.status, Result.raw)
    )
    return [(status, raw) for status, raw in adopted]


async def update_summary(session: AsyncSession, request_id: int, changes: dict[str, Any]) -> None:
    await session.execute(update(Request).where(Request.id == request_id).values(**changes))


def earliest(column: Any, at: datetime) -> Any:
    """The earlier of the stored time and `at`: events arrive in any order."""
    return if_earlier(column, at, literal(at, type_=UtcDateTime()), column)


def if_earlier(time_column: Any, at: datetime, new: Any, old: Any) -> Any:
    """`new` when `at` is earlier than the stored time (or there is none), else `old`.

    Keeps a detail (the bounce type, say) together with the time it came with.
    """
    when = literal(at, type_=UtcDateTime())
    return case((or_(time_column.is_(None), time_column > when), new), else_=old)


def at_least(column: Any, value: int) -> Any:
    """The larger of the stored value and `value`: an outcome only ever rises."""
    bound = literal(value, type_=SmallInteger())
    return case((or_(column.is_(None), column < bound), bound), else_=column)


async def stranded_matches(
    session: AsyncSession, *, since: datetime, limit: int
) -> Sequence[tuple[int, str]]:
    """(request id, SES message id) of recent waiting events whose send is recorded by now."""
    rows = await session.execute(
        select(Request.id, Request.message_id)
        .join(
            Result,
            (Result.ses_message_id == Request.message_id)
            & (Result.recipient == Request.recipient_key),
        )
        .where(Result.request_id.is_(None), Result.created_at >= since)
        .distinct()
        .limit(limit)
    )
    return [(request_id, message_id) for request_id, message_id in rows if message_id]
