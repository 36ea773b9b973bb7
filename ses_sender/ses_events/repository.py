"""SQL for SES events: store each once, find its request, keep the request's summary.

The statements run for every notification are built once and kept: building and caching a
statement costs more than running it (bench/sns_ingest.py), and the values go in as parameters.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import String, Table, bindparam, case, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import Select, Update

from ses_sender.db.base import UtcDateTime
from ses_sender.db.statements import insert_for_dialect
from ses_sender.models import Request, Result, ResultSource

_requests = cast(Table, Request.__table__)
_results = cast(Table, Result.__table__)

_REQUEST_BY_ID: Select[tuple[int]] = select(_requests.c.id).where(
    _requests.c.id == bindparam("request_id")
)
_REQUEST_BY_MESSAGE_ID: Select[tuple[int]] = (
    select(_requests.c.id).where(_requests.c.message_id == bindparam("message_id")).limit(1)
)
_AT = bindparam("at", type_=UtcDateTime())
_DETAIL = bindparam("detail", type_=String())


@functools.cache
def _insert_result_once(dialect: str) -> Any:
    return (
        insert_for_dialect(dialect, _results)
        .on_conflict_do_nothing(index_elements=[_results.c.sns_message_id])
        .returning(_results.c.id)
    )


async def insert_result_once(
    session: AsyncSession,
    *,
    sns_message_id: str,
    request_id: int | None,
    status: str,
    ses_message_id: str,
    recipient: str | None,
    occurred_at: datetime,
    raw: str,
    now: datetime,
) -> bool:
    """Store an SNS message's event; False when that SNS message was stored before."""
    inserted = await session.execute(
        _insert_result_once(session.get_bind().dialect.name),
        {
            "request_id": request_id,
            "status": status,
            "source": ResultSource.SES.value,
            "sns_message_id": sns_message_id,
            "ses_message_id": ses_message_id,
            "recipient": recipient,
            "occurred_at": occurred_at,
            "raw": raw,
            "created_at": now,
        },
    )
    return inserted.scalar_one_or_none() is not None


async def existing_request_id(session: AsyncSession, request_id: int) -> int | None:
    found: int | None = await session.scalar(_REQUEST_BY_ID, {"request_id": request_id})
    return found


async def request_id_by_message_id(session: AsyncSession, ses_message_id: str) -> int | None:
    found: int | None = await session.scalar(_REQUEST_BY_MESSAGE_ID, {"message_id": ses_message_id})
    return found


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
    """Attach events that arrived before their send was recorded; their (status, raw)."""
    adopted = await session.execute(
        update(Result)
        .where(Result.ses_message_id == ses_message_id, Result.request_id.is_(None))
        .values(request_id=request_id)
        .returning(Result.status, Result.raw)
    )
    return [(status, raw) for status, raw in adopted]


@dataclass(frozen=True, slots=True)
class SummaryChange:
    """Set a request's summary time `time_field` to `at` unless it holds an earlier time.

    Events arrive in any order, so the earliest wins; `detail_field` (the bounce type, say), if
    any, takes `detail` exactly when the time does, so a detail stays with the time it came with.
    """

    time_field: str
    at: datetime
    detail_field: str | None = None
    detail: str | None = None


async def update_summary(session: AsyncSession, request_id: int, change: SummaryChange) -> None:
    await session.execute(
        _summary_update(change.time_field, change.detail_field),
        {"request_id": request_id, "at": change.at, "detail": change.detail},
    )


@functools.cache
def _summary_update(time_field: str, detail_field: str | None) -> Update:
    time_column = _requests.c[time_field]
    is_earlier = or_(time_column.is_(None), time_column > _AT)
    values: dict[str, Any] = {time_field: case((is_earlier, _AT), else_=time_column)}
    if detail_field is not None:
        detail_column = _requests.c[detail_field]
        values[detail_field] = case((is_earlier, _DETAIL), else_=detail_column)
    return update(_requests).where(_requests.c.id == bindparam("request_id")).values(values)


async def stranded_matches(
    session: AsyncSession, *, since: datetime, limit: int
) -> Sequence[tuple[int, str]]:
    """(request id, SES message id) of recent waiting events whose send is recorded by now."""
    rows = await session.execute(
        select(Request.id, Request.message_id)
        .join(Result, Result.ses_message_id == Request.message_id)
        .where(Result.request_id.is_(None), Result.created_at >= since)
        .distinct()
        .limit(limit)
    )
    return [(request_id, message_id) for request_id, message_id in rows if message_id]
