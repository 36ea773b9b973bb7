"""SQL for SES events: store each once, find its request, keep the request's summary.

Ingestion takes the notifications of a group commit together (`service.ingest_notifications`),
so the statements here take many rows at once (executemany, or an IN list), and the ones run for
every batch are built once with bound parameters: building a statement through the ORM cost
more than running it (docs/decisions/0013-sns-group-commit.md).
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Collection, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    Integer,
    SmallInteger,
    String,
    Table,
    and_,
    bindparam,
    case,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import Update

from ses_sender.db.base import UtcDateTime
from ses_sender.db.dialect import insert_for, insert_for_dialect
from ses_sender.db.pruning import delete_some
from ses_sender.models import (
    EventPayload,
    EventType,
    Request,
    Result,
    ResultSource,
    TrustedTopic,
)

_requests = cast(Table, Request.__table__)
_results = cast(Table, Result.__table__)
_payloads = cast(Table, EventPayload.__table__)

_REQUEST_COLUMNS = (_requests.c.id, _requests.c.recipient_key, _requests.c.topic_id)
_REQUESTS_BY_ID = select(*_REQUEST_COLUMNS).where(
    _requests.c.id.in_(bindparam("b_ids", expanding=True))
)
_REQUESTS_BY_MESSAGE_ID = (
    select(_requests.c.message_id, *_REQUEST_COLUMNS)
    .where(_requests.c.message_id.in_(bindparam("b_message_ids", expanding=True)))
    .order_by(_requests.c.id)
)
# Typed, so that PostgreSQL is told what each parameter is (asyncpg renders the casts).
_AT = bindparam("b_at", type_=UtcDateTime())
_OUTCOME = bindparam("b_outcome", type_=SmallInteger())
_DETAIL = bindparam("b_detail", type_=String())


@dataclass(frozen=True, slots=True)
class RequestRef:
    """What ingestion needs of a request: which it is, its recipient, and its topic (webhooks)."""

    id: int
    recipient_key: str
    topic_id: str


@dataclass(frozen=True, slots=True)
class EventRow:
    """One SES event for one recipient key, with its request if known."""

    sns_message_id: str
    recipient: str
    request_id: int | None
    status: str
    ses_message_id: str
    occurred_at: datetime
    created_at: datetime


@dataclass(frozen=True, slots=True)
class PayloadRow:
    """The SES event one SNS message carried, as it came."""

    sns_message_id: str
    raw: str
    received_at: datetime


@dataclass(frozen=True, slots=True)
class SummaryChange:
    """What one event says of its request: the time of its kind (`time_field`), kept only if
    it is the earliest, and the outcome, kept only if it is the strongest.

    `detail_field` (the bounce type, say), if any, takes `detail` exactly when the time is
    taken, so a detail stays with the time it came with.
    """

    request_id: int
    time_field: str
    at: datetime
    outcome: int
    detail_field: str | None = None
    detail: str | None = None
    event_bit: int = 0  # the event's type, for `Request.event_types` (stats/counters.py)


@dataclass(frozen=True, slots=True)
class EventMark:
    """An event that changes nothing of its request's summary but what the counters keep: its
    type, and (an SES open or click) its time, kept if earliest (`time_field`)."""

    request_id: int
    event_bit: int
    time_field: str | None = None
    at: datetime | None = None


# What ingestion reads of the requests it changes, for the counters (stats/counters.py): the
# columns its statements change, and those its guards read.
COUNTED_COLUMNS = (
    "status",
    "stop_reason",
    "outcome",
    "attempts",
    "message_id",
    "sent_at",
    "updated_at",
    "delivered_at",
    "bounced_at",
    "complained_at",
    "event_types",
    "opened_at",
    "clicked_at",
)
_FIND_FOR_EVENTS = (
    select(*_REQUEST_COLUMNS, *(_requests.c[name] for name in COUNTED_COLUMNS))
    .where(
        or_(
            _requests.c.id.in_(bindparam("b_ids", expanding=True)),
            _requests.c.message_id.in_(bindparam("b_message_ids", expanding=True)),
        )
    )
    .order_by(_requests.c.id)
    .with_for_update()
)


@dataclass(frozen=True, slots=True)
class FoundRequests:
    by_id: dict[int, RequestRef]
    by_message_id: dict[str, list[RequestRef]]
    counted: dict[int, dict[str, Any]]  # id -> `COUNTED_COLUMNS`, as they were


async def requests_for_events(
    session: AsyncSession, ids: Collection[int], ses_message_ids: Collection[str]
) -> FoundRequests:
    """The requests these ids or SES message ids name, in one statement, locked until the
    transaction ends (PostgreSQL), in id order: the counters take what the ingestion changes
    from them, so no other transaction changes them meanwhile."""
    found = FoundRequests({}, defaultdict(list), {})
    if not ids and not ses_message_ids:
        return found
    rows = await session.execute(
        _FIND_FOR_EVENTS, {"b_ids": list(ids), "b_message_ids": list(ses_message_ids)}
    )
    for row in rows:
        request = RequestRef(*row[: len(_REQUEST_COLUMNS)])
        counted = dict(zip(COUNTED_COLUMNS, row[len(_REQUEST_COLUMNS) :], strict=True))
        found.by_id[request.id] = request
        if counted["message_id"] is not None:
            found.by_message_id[counted["message_id"]].append(request)
        found.counted[request.id] = counted
    return found


async def requests_by_ids(session: AsyncSession, ids: Collection[int]) -> dict[int, RequestRef]:
    """Those of the requests that exist, by id."""
    if not ids:
        return {}
    rows = await session.execute(_REQUESTS_BY_ID, {"b_ids": list(ids)})
    return {row[0]: RequestRef(*row) for row in rows}


async def requests_by_message_ids(
    session: AsyncSession, ses_message_ids: Collection[str]
) -> dict[str, list[RequestRef]]:
    """The requests SES sent as each of these messages (one each, for us), by message id."""
    if not ses_message_ids:
        return {}
    rows = await session.execute(_REQUESTS_BY_MESSAGE_ID, {"b_message_ids": list(ses_message_ids)})
    found: defaultdict[str, list[RequestRef]] = defaultdict(list)
    for message_id, *request in rows:
        found[message_id].append(RequestRef(*request))
    return found


async def insert_results_once(
    session: AsyncSession, rows: Sequence[EventRow]
) -> set[tuple[str, str]]:
    """Store each row unless its (SNS message id, recipient) is stored already.

    Returns the (SNS message id, recipient) of the rows stored now.
    """
    if not rows:
        return set()
    inserted = await session.execute(
        _insert_results_once(session.get_bind().dialect.name),
        [
            {
                "request_id": row.request_id,
                "status": row.status,
                "source": ResultSource.SES.value,
                "sns_message_id": row.sns_message_id,
                "ses_message_id": row.ses_message_id,
                "recipient": row.recipient,
                "occurred_at": row.occurred_at,
                "created_at": row.created_at,
            }
            for row in rows
        ],
    )
    return {(sns_message_id, recipient) for sns_message_id, recipient in inserted}


@functools.cache
def _insert_results_once(dialect: str) -> Any:
    return (
        insert_for_dialect(dialect, _results)
        .on_conflict_do_nothing(index_elements=[_results.c.sns_message_id, _results.c.recipient])
        .returning(_results.c.sns_message_id, _results.c.recipient)
    )


async def insert_payloads_once(session: AsyncSession, rows: Sequence[PayloadRow]) -> None:
    """Store each message's payload unless it is stored already."""
    if rows:
        await session.execute(
            _insert_payloads_once(session.get_bind().dialect.name),
            [asdict(row) for row in rows],
        )


@functools.cache
def _insert_payloads_once(dialect: str) -> Any:
    return insert_for_dialect(dialect, _payloads).on_conflict_do_nothing(
        index_elements=[_payloads.c.sns_message_id]
    )


async def payloads(session: AsyncSession, sns_message_ids: Collection[str]) -> dict[str, str]:
    """The payloads still kept of these messages, by SNS message id."""
    if not sns_message_ids:
        return {}
    rows = await session.execute(
        select(EventPayload.sns_message_id, EventPayload.raw).where(
            EventPayload.sns_message_id.in_(sns_message_ids)
        )
    )
    return dict(rows.all())


async def delete_payloads(session: AsyncSession, *, received_before: datetime, limit: int) -> int:
    """Up to `limit` payloads received before `received_before`, oldest first; how many went."""
    return await delete_some(
        session,
        EventPayload.sns_message_id,
        EventPayload.received_at < received_before,
        limit=limit,
        first=EventPayload.received_at,
    )


# Built once: it runs for every batch of sends a worker records.
_WAITING_MESSAGE_IDS = (
    select(_results.c.ses_message_id)
    .where(
        _results.c.ses_message_id.in_(bindparam("b_message_ids", expanding=True)),
        _results.c.request_id.is_(None),
    )
    .distinct()
)


async def message_ids_with_waiting_results(
    session: AsyncSession, ses_message_ids: list[str]
) -> list[str]:
    found = await session.scalars(_WAITING_MESSAGE_IDS, {"b_message_ids": ses_message_ids})
    return [message_id for message_id in found if message_id is not None]


async def adopt_waiting_results(
    session: AsyncSession, request_id: int, ses_message_id: str
) -> list[str]:
    """Attach events for this request's recipient that arrived before its send was recorded;
    the SNS messages they came in."""
    recipient = select(Request.recipient_key).where(Request.id == request_id).scalar_subquery()
    adopted = await session.execute(
        update(Result)
        .where(
            Result.ses_message_id == ses_message_id,
            Result.request_id.is_(None),
            Result.recipient == recipient,
        )
        .values(request_id=request_id)
        .returning(Result.sns_message_id)
    )
    return [sns_message_id for sns_message_id in adopted.scalars() if sns_message_id]


async def update_summaries(session: AsyncSession, changes: Sequence[SummaryChange]) -> None:
    """Apply each change to its request's summary: one executemany per kind of change."""
    by_fields: defaultdict[tuple[str, str | None], list[dict[str, Any]]] = defaultdict(list)
    for change in changes:
        by_fields[change.time_field, change.detail_field].append(
            {
                "b_id": change.request_id,
                "b_at": change.at,
                "b_outcome": change.outcome,
                "b_detail": change.detail,
                "b_bits": change.event_bit,
            }
        )
    for (time_field, detail_field), parameters in by_fields.items():
        await session.execute(_summary_update(time_field, detail_field), parameters)


async def mark_events(session: AsyncSession, marks: Sequence[EventMark]) -> None:
    """Note each event on its request for the counters: one executemany per kind."""
    by_field: defaultdict[str | None, list[dict[str, Any]]] = defaultdict(list)
    for mark in marks:
        by_field[mark.time_field].append(
            {"b_id": mark.request_id, "b_bits": mark.event_bit, "b_at": mark.at}
        )
    for time_field, parameters in by_field.items():
        await session.execute(_mark_update(time_field), parameters)


_BITS = bindparam("b_bits", type_=Integer())


@functools.cache
def _mark_update(time_field: str | None) -> Update:
    values: dict[str, Any] = {"event_types": _requests.c.event_types.op("|")(_BITS)}
    if time_field is not None:
        time_column = _requests.c[time_field]
        values[time_field] = if_earlier(time_column, _AT, _AT, time_column)
    return update(_requests).where(_requests.c.id == bindparam("b_id")).values(values)


@functools.cache
def _summary_update(time_field: str, detail_field: str | None) -> Update:
    time_column = _requests.c[time_field]
    values = {
        "outcome": at_least(_requests.c.outcome, _OUTCOME),
        time_field: if_earlier(time_column, _AT, _AT, time_column),
        "event_types": _requests.c.event_types.op("|")(_BITS),
    }
    if detail_field is not None:
        detail_column = _requests.c[detail_field]
        values[detail_field] = if_earlier(time_column, _AT, _DETAIL, detail_column)
    return update(_requests).where(_requests.c.id == bindparam("b_id")).values(values)


def if_earlier(time_column: Any, at: Any, new: Any, old: Any) -> Any:
    """`new` when `at` is earlier than the stored time (or there is none), else `old`.

    Events arrive in any order: with `new` = `at` this keeps the earliest time, and it keeps a
    detail (the bounce type, say) together with the time it came with.
    """
    return case((or_(time_column.is_(None), time_column > at), new), else_=old)


def at_least(column: Any, value: Any) -> Any:
    """The larger of the stored value and `value`: an outcome only ever rises."""
    return case((or_(column.is_(None), column < value), value), else_=column)


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


async def trusted_topic_arns(session: AsyncSession) -> frozenset[str]:
    return frozenset(await session.scalars(select(TrustedTopic.arn)))


async def record_trusted_topic(
    session: AsyncSession, arn: str, *, recorded_by: str, now: datetime
) -> bool:
    """Record the topic unless it is recorded already; whether it was new."""
    inserted = await session.execute(
        insert_for(session, TrustedTopic)
        .values(arn=arn, recorded_by=recorded_by, created_at=now)
        .on_conflict_do_nothing(index_elements=[TrustedTopic.arn])
        .returning(TrustedTopic.arn)
    )
    return inserted.first() is not None


@dataclass(frozen=True, slots=True)
class UnmatchedRow:
    id: int
    status: str
    recipient: str | None
    ses_message_id: str | None
    occurred_at: datetime
    created_at: datetime


async def unmatched_results(
    session: AsyncSession, *, before: tuple[datetime, int] | None, limit: int
) -> list[UnmatchedRow]:
    """SES events attached to no request, newest first, from before `before` (keyset paging on
    ix_email_results_waiting)."""
    query = (
        select(
            Result.id,
            Result.status,
            Result.recipient,
            Result.ses_message_id,
            Result.occurred_at,
            Result.created_at,
        )
        .where(Result.request_id.is_(None))
        .order_by(Result.created_at.desc(), Result.id.desc())
        .limit(limit)
    )
    if before is not None:
        created_at, row_id = before
        query = query.where(
            or_(
                Result.created_at < created_at,
                and_(Result.created_at == created_at, Result.id < row_id),
            )
        )
    return [UnmatchedRow(*row) for row in await session.execute(query)]


async def bounced_messages(session: AsyncSession, email: str, *, since: datetime) -> int:
    """Our messages to `email` that bounced since `since`, by ix_email_results_recipient.

    Counted by SES message, so a bounce reported twice (identity notification and event
    publishing both on) counts once; bounces of mail that is not ours (no request) not at all.
    """
    count = await session.scalar(
        select(func.count(func.distinct(Result.ses_message_id))).where(
            Result.recipient == email,
            Result.status == EventType.BOUNCE,
            Result.occurred_at >= since,
            Result.request_id.is_not(None),
        )
    )
    return count or 0


async def first_ses_reports(
    session: AsyncSession, request_ids: Collection[int]
) -> dict[int, tuple[str, datetime]]:
    """For each of these requests SES reported anything of (SES reports only mail it accepted),
    the message id and time of its earliest event."""
    rows = await session.execute(
        select(Result.request_id, Result.ses_message_id, Result.occurred_at)
        .where(
            Result.request_id.in_(request_ids),
            Result.source == ResultSource.SES,
            Result.ses_message_id.is_not(None),
        )
        .order_by(Result.request_id, Result.occurred_at, Result.id)
    )
    first: dict[int, tuple[str, datetime]] = {}
    for request_id, message_id, occurred_at in rows:
        if request_id is not None and message_id is not None:
            first.setdefault(request_id, (message_id, occurred_at))
    return first
