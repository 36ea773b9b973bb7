"""The email queue's SQL: claim due rows under a lease, renew it, stop, hold or release what was
claimed, record outcomes, recover expired leases; and the shared rate schedule's row.

A claim gives its rows a random lease token; every write of the claiming worker about a row
matches it, so once the row is claimed again (its lease ran out) nothing of the earlier claim
changes it.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import orjson
from sqlalchemy import (
    BigInteger,
    Double,
    Integer,
    String,
    Table,
    Text,
    bindparam,
    case,
    false,
    literal_column,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from ses_sender.db.base import UtcDateTime
from ses_sender.db.dialect import insert_for_dialect, rows_parameters, rows_source
from ses_sender.db.queue import claim_statement
from ses_sender.delivery.emails import (
    ContentParts,
    Failed,
    ProviderSend,
    QueuedEmail,
    Requeued,
    SendResult,
    Sent,
    Stop,
    Unconfirmed,
)
from ses_sender.models import Attachment as AttachmentRow
from ses_sender.models import Content, RateLimit, Request, RequestChange, RequestStatus
from ses_sender.transports.base import Attachment

# Core table for executemany updates keyed by id: the ORM form cannot add the status guards.
_requests = cast(Table, Request.__table__)
_this_row = _requests.c.id == bindparam("b_id")
_our_claim = _this_row & (_requests.c.lease_token == bindparam("b_token"))
_still_claimed = _our_claim & (_requests.c.status == RequestStatus.PROCESSING)

UNCONFIRMED_ERROR = "unconfirmed: the worker stopped before the provider answered"


async def claim_due(
    session: AsyncSession, *, now: datetime, lease_until: datetime, lease_token: int, limit: int
) -> list[QueuedEmail]:
    """Take up to `limit` due rows, the earliest first; other workers skip what we lock."""
    claimed = await session.execute(
        claim_statement(
            Request,
            due=(
                Request.status == RequestStatus.CREATED,
                Request.held == false(),
                Request.due_at <= now,
            ),
            order_by=(Request.due_at, Request.id),
            limit=limit,
            values={
                "status": RequestStatus.PROCESSING,
                "lease_expires_at": lease_until,
                "lease_token": lease_token,
                "attempts": Request.attempts + 1,
                "updated_at": now,
            },
            returning=(
                Request.id,
                Request.topic_id,
                Request.to,
                Request.recipient_key,
                Request.content_id,
                Request.attempts,
                Request.lease_token,
                Request.data,
            ),
        )
    )
    return sorted((QueuedEmail(*row) for row in claimed), key=lambda queued: queued.request_id)


async def contents(session: AsyncSession, content_ids: Iterable[int]) -> dict[int, ContentParts]:
    wanted = set(content_ids)
    rows = (
        await session.execute(
            select(
                Content.id,
                Content.subject,
                Content.content,
                Content.text,
                Content.templated,
                Content.data,
                Content.sender,
                Content.reply_to,
                Content.headers,
                Content.tags,
                Content.track_clicks,
            ).where(Content.id.in_(wanted))
        )
    ).all()
    attachments: dict[int, list[Attachment]] = {}
    if rows:
        for content_id, filename, content_type, inline_id, data in await session.execute(
            select(
                AttachmentRow.content_id,
                AttachmentRow.filename,
                AttachmentRow.content_type,
                AttachmentRow.inline_id,
                AttachmentRow.data,
            )
            .where(AttachmentRow.content_id.in_(wanted))
            .order_by(AttachmentRow.content_id, AttachmentRow.position)
        ):
            attachments.setdefault(content_id, []).append(
                Attachment(filename, content_type, bytes(data), inline_id)
            )
    return {
        row.id: ContentParts(
            subject=row.subject,
            html=row.content,
            text=row.text,
            templated=row.templated,
            data=row.data,
            sender=row.sender,
            reply_to=tuple(orjson.loads(row.reply_to)) if row.reply_to else (),
            headers=_pairs(row.headers),
            tags=_pairs(row.tags),
            attachments=tuple(attachments.get(row.id, ())),
            track_clicks=row.track_clicks,
        )
        for row in rows
    }


def _pairs(stored: str | None) -> tuple[tuple[str, str], ...]:
    return tuple((name, value) for name, value in orjson.loads(stored)) if stored else ()


async def stop(
    session: AsyncSession, stops: Mapping[int, Stop], *, lease_token: int, now: datetime
) -> None:
    """Claimed rows that must never be sent: Stopped, their attempt undone."""
    if not stops:
        return
    await session.execute(
        update(_requests)
        .where(_still_claimed)
        .values(
            status=RequestStatus.STOPPED,
            stop_reason=bindparam("b_reason"),
            error=bindparam("b_error"),
            attempts=_requests.c.attempts - 1,
            lease_expires_at=None,
            updated_at=now,
        ),
        [
            {
                "b_id": request_id,
                "b_token": lease_token,
                "b_reason": int(stopped.reason),
                "b_error": stopped.error,
            }
            for request_id, stopped in stops.items()
        ],
    )


async def release(
    session: AsyncSession,
    request_ids: Sequence[int],
    *,
    lease_token: int,
    now: datetime,
    hold: bool = False,
) -> set[int]:
    """Claimed rows that were not tried: back to the queue, their attempt undone; `hold` keeps
    them out of the claim's range until released (a paused topic). Which were still ours."""
    if not request_ids:
        return set()
    values: dict[str, Any] = {
        "status": RequestStatus.CREATED,
        "attempts": Request.attempts - 1,
        "lease_expires_at": None,
        "updated_at": now,
    }
    if hold:
        values["held"] = True
    released = await session.scalars(
        update(Request)
        .where(
            Request.id.in_(request_ids),
            Request.status == RequestStatus.PROCESSING,
            Request.lease_token == lease_token,
        )
        .values(values)
        .returning(Request.id)
        .execution_options(synchronize_session=False)
    )
    return set(released)


async def record_claimed(
    session: AsyncSession, results: Sequence[SendResult], *, now: datetime
) -> tuple[list[RequestChange], list[SendResult]]:
    """Record the results of rows still claimed under their token, the usual case: one
    statement per kind, which returns what the counters need
    (docs/decisions/0020-stats-counters-as-deltas.md). The changes made, and the results left
    for `record_outcomes` (sends of rows no longer claimed: cancelled in flight, put back in
    the queue by a sweep; unconfirmed sends). A failure or requeue of a row no longer claimed
    changes nothing, as in `record_outcomes`."""
    # In id order, as other writers lock the rows they count (no deadlock between them).
    ordered = sorted(results, key=lambda result: result.request_id)
    sent = [r for r in ordered if isinstance(r, Sent)]
    failed = [r for r in ordered if isinstance(r, Failed)]
    requeued = [r for r in ordered if isinstance(r, Requeued)]
    rest: list[SendResult] = [r for r in ordered if isinstance(r, Unconfirmed)]
    changes: list[RequestChange] = []
    dialect = session.get_bind().dialect
    claimed = {"status": int(RequestStatus.PROCESSING)}
    if sent:
        rows = await session.execute(
            _claimed_update(dialect.name, "sent"),
            {
                "b_now": now,
                **rows_parameters(
                    dialect,
                    _CLAIMED_ROWS["sent"],
                    [(r.request_id, r.lease_token, r.message_id, r.sent_at) for r in sent],
                ),
            },
        )
        done = set()
        # The sends of one outcome and minute share one `after` (its time to the minute, all
        # the counters read of it), so the counters work out each of those few once.
        shared: dict[tuple[int | None, datetime], dict[str, Any]] = {}
        for request_id, topic_id, recipient, outcome, sent_at in rows:
            done.add(request_id)
            minute = sent_at.replace(second=0, microsecond=0)
            after = shared.get((outcome, minute))
            if after is None:
                after = shared[outcome, minute] = {
                    "status": int(RequestStatus.SENT),
                    "sent_at": minute,
                    "outcome": outcome,
                }
            changes.append(RequestChange(topic_id, recipient, claimed, after))
        rest += [r for r in sent if r.request_id not in done]
    if failed:
        rows = await session.execute(
            _claimed_update(dialect.name, "failed"),
            {
                "b_now": now,
                **rows_parameters(
                    dialect,
                    _CLAIMED_ROWS["failed"],
                    [(r.request_id, r.lease_token, r.error) for r in failed],
                ),
            },
        )
        after = {"status": int(RequestStatus.FAILED), "updated_at": now}
        changes += [RequestChange(topic, recipient, claimed, after) for _, topic, recipient in rows]
    if requeued:
        rows = await session.execute(
            _claimed_update(dialect.name, "requeued"),
            {
                "b_now": now,
                **rows_parameters(
                    dialect,
                    _CLAIMED_ROWS["requeued"],
                    [
                        (
                            r.request_id,
                            r.lease_token,
                            r.due_at,
                            r.error,
                            0 if r.counts_as_attempt else 1,
                        )
                        for r in requeued
                    ],
                ),
            },
        )
        after = {"status": int(RequestStatus.CREATED)}
        changes += [RequestChange(topic, recipient, claimed, after) for _, topic, recipient in rows]
    return changes, rest


_CLAIMED_ROWS: dict[str, list[tuple[str, Any]]] = {
    "sent": [
        ("id", BigInteger()),
        ("token", BigInteger()),
        ("message_id", String()),
        ("sent_at", UtcDateTime()),
    ],
    "failed": [("id", BigInteger()), ("token", BigInteger()), ("error", Text())],
    "requeued": [
        ("id", BigInteger()),
        ("token", BigInteger()),
        ("due_at", UtcDateTime()),
        ("error", Text()),
        ("undo", Integer()),
    ],
}


@functools.cache
def _claimed_update(dialect: str, kind: str) -> Any:
    """Built once per kind: `record_claimed`'s statement, guarded by the row's claim."""
    rows = rows_source(dialect, "v", _CLAIMED_ROWS[kind])
    columns = _requests.c
    values: dict[str, Any] = {"lease_expires_at": None, "updated_at": bindparam("b_now")}
    returning = [columns.id, columns.topic_id, columns.recipient_key]
    if kind == "sent":
        values |= {
            "status": RequestStatus.SENT,
            "message_id": rows.c.message_id,
            "sent_at": rows.c.sent_at,
            "error": None,
        }
        returning += [columns.outcome, columns.sent_at]
    elif kind == "failed":
        values |= {"status": RequestStatus.FAILED, "error": rows.c.error}
    else:
        values |= {
            "status": RequestStatus.CREATED,
            "due_at": rows.c.due_at,
            "error": rows.c.error,
            "attempts": columns.attempts - rows.c.undo,
        }
    return (
        update(_requests)
        .where(
            columns.id == rows.c.id,
            columns.lease_token == rows.c.token,
            # "+ 0": not by the claim index, which SQLite's planner would take for the outer
            # loop (every claimed row, each joined to every result); by the rows' ids.
            columns.status + literal_column("0") == RequestStatus.PROCESSING,
        )
        .values(values)
        .returning(*returning)
    )


async def record_outcomes(
    session: AsyncSession, results: Sequence[SendResult], *, now: datetime
) -> None:
    """One executemany per kind, each matching the row's lease token: a row claimed again since
    (its lease ran out) is the new claim's, and stays as it is.

    A send is recorded whatever else happened to the row meanwhile (a cancel, a sweep that put
    it back in the queue), unless a send is recorded already: it is what happened. Failures and
    requeues change only rows still claimed, so a row cancelled in flight is never queued again.
    Recording the same results twice (from the journal) changes nothing more.
    """
    writes: tuple[tuple[Any, list[dict[str, Any]]], ...] = (
        (
            _record_sends(fenced=True),
            [
                {
                    "b_id": r.request_id,
                    "b_token": r.lease_token,
                    "b_message_id": r.message_id,
                    "b_sent_at": r.sent_at,
                    "b_now": now,
                }
                for r in results
                if isinstance(r, Sent)
            ],
        ),
        (
            _RECORD_UNCONFIRMED,
            [
                {"b_id": r.request_id, "b_token": r.lease_token, "b_sent_at": r.at, "b_now": now}
                for r in results
                if isinstance(r, Unconfirmed)
            ],
        ),
        (
            _RECORD_FAILED,
            [
                {"b_id": r.request_id, "b_token": r.lease_token, "b_error": r.error, "b_now": now}
                for r in results
                if isinstance(r, Failed)
            ],
        ),
        (
            _RECORD_REQUEUED,
            [
                {
                    "b_id": r.request_id,
                    "b_token": r.lease_token,
                    "b_due_at": r.due_at,
                    "b_error": r.error,
                    "b_undo": 0 if r.counts_as_attempt else 1,
                    "b_now": now,
                }
                for r in results
                if isinstance(r, Requeued)
            ],
        ),
    )
    for statement, rows in writes:
        if rows:
            await session.execute(statement, rows)


# Built once, as the sends' statement is: they run for every batch of outcomes.
_RECORD_UNCONFIRMED = (
    update(_requests)
    .where(
        _our_claim,
        # Claimed, or put back in the queue by a sweep (executemany takes no IN list).
        (_requests.c.status == RequestStatus.PROCESSING)
        | (_requests.c.status == RequestStatus.CREATED),
    )
    .values(
        status=RequestStatus.SENT,
        sent_at=bindparam("b_sent_at"),
        error=UNCONFIRMED_ERROR,
        lease_expires_at=None,
        updated_at=bindparam("b_now"),
    )
)
_RECORD_FAILED = (
    update(_requests)
    .where(_still_claimed)
    .values(
        status=RequestStatus.FAILED,
        error=bindparam("b_error"),
        lease_expires_at=None,
        updated_at=bindparam("b_now"),
    )
)
_RECORD_REQUEUED = (
    update(_requests)
    .where(_still_claimed)
    .values(
        status=RequestStatus.CREATED,
        due_at=bindparam("b_due_at"),
        error=bindparam("b_error"),
        attempts=_requests.c.attempts - bindparam("b_undo"),
        lease_expires_at=None,
        updated_at=bindparam("b_now"),
    )
)


async def record_provider_sends(session: AsyncSession, sends: Mapping[int, ProviderSend]) -> None:
    """Record each request as Sent, as the message the provider reported, unless a send with a
    message id is recorded already, and only rows we have tried (attempts > 0): a requeued row
    then is not sent a second time, a row cancelled in flight or sent unconfirmed shows what
    really happened, and a worker's late outcome for it changes nothing more."""
    if not sends:
        return
    await session.execute(
        _record_sends(fenced=False),
        [
            {
                "b_id": request_id,
                "b_message_id": send.message_id,
                "b_sent_at": send.sent_at,
                "b_now": send.reported_at,
            }
            for request_id, send in sends.items()
        ],
    )


@functools.cache
def _record_sends(*, fenced: bool) -> Any:
    """Built once: it runs for every batch of outcomes and every SES event of ours."""
    not_yet = or_(_requests.c.status != RequestStatus.SENT, _requests.c.message_id.is_(None))
    guard = (_our_claim if fenced else _this_row & (_requests.c.attempts > 0)) & not_yet
    return (
        update(_requests)
        .where(guard)
        .values(
            status=RequestStatus.SENT,
            message_id=bindparam("b_message_id"),
            sent_at=bindparam("b_sent_at"),
            error=None,
            lease_expires_at=None,
            updated_at=bindparam("b_now"),
        )
    )


async def renew_leases(
    session: AsyncSession,
    request_ids: Sequence[int],
    *,
    lease_token: int,
    until: datetime,
    now: datetime,
) -> set[int]:
    """Extend the lease of those of one claim's rows still claimed under it; which were."""
    renewed = await session.scalars(
        update(Request)
        .where(
            Request.id.in_(request_ids),
            Request.lease_token == lease_token,
            Request.status == RequestStatus.PROCESSING,
        )
        .values(lease_expires_at=until, updated_at=now)
        .returning(Request.id)
        .execution_options(synchronize_session=False)
    )
    return set(renewed)


async def expired_leases(session: AsyncSession, *, now: datetime) -> list[int]:
    """Rows whose worker stopped mid-send (its lease ran out), locked for this transaction;
    others recovering them at the same time skip them."""
    rows = await session.scalars(
        select(Request.id)
        .where(Request.status == RequestStatus.PROCESSING, Request.lease_expires_at <= now)
        .order_by(Request.id)
        .with_for_update(skip_locked=True)
    )
    return list(rows)


async def requeue(session: AsyncSession, request_ids: Sequence[int], *, now: datetime) -> None:
    """Claimed rows whose lease expired unrecorded: back to the queue, due at once (their
    attempt counts: it may have been made)."""
    if not request_ids:
        return
    await session.execute(
        update(Request)
        .where(Request.id.in_(request_ids), Request.status == RequestStatus.PROCESSING)
        .values(status=RequestStatus.CREATED, lease_expires_at=None, updated_at=now)
        .execution_options(synchronize_session=False)
    )


# -- the shared rate schedule (one GCRA row per rate) ----------------------------------------


@dataclass(frozen=True, slots=True)
class ScheduleRow:
    next_free_at: float
    shifted: float
    backoff_level: float
    backoff_since: float


async def reserve_slots(
    session: AsyncSession, name: str, *, now: float, span: float, shift_to: float
) -> ScheduleRow:
    """Move the schedule on until it has been shifted by `shift_to` in all, then take `span`
    seconds of it from `now` or later.

    One upsert, so concurrent workers serialise on the row and never take the same slots. A
    shift asked for by several workers at once is made once: they ask for a total, not a step.
    """
    parameters = {
        "b_name": name,
        "b_now": now,
        "b_span": span,
        "b_shift_to": shift_to,
        "b_updated_at": datetime.fromtimestamp(now, UTC),
    }
    statement = _reserve_slots_once(session.get_bind().dialect.name)
    row = (await session.execute(statement, parameters)).one()
    return ScheduleRow(*row)


@functools.cache
def _reserve_slots_once(dialect: str) -> Any:
    """Built once: a worker reserves several times a second, and building the upsert each time
    showed in its CPU profile (docs/decisions/0011-worker-hot-path.md)."""
    now = bindparam("b_now", type_=Double)
    span = bindparam("b_span", type_=Double)
    shift_to = bindparam("b_shift_to", type_=Double)
    updated_at = bindparam("b_updated_at", type_=UtcDateTime)
    behind = shift_to > RateLimit.shifted
    moved_on = RateLimit.next_free_at + case((behind, shift_to - RateLimit.shifted), else_=0.0)
    return (
        insert_for_dialect(dialect, RateLimit)
        .values(
            name=bindparam("b_name"),
            next_free_at=now + span,
            shifted=shift_to,
            updated_at=updated_at,
        )
        .on_conflict_do_update(
            index_elements=[RateLimit.name],
            set_={
                "next_free_at": case((moved_on > now, moved_on), else_=now) + span,
                "shifted": case((behind, shift_to), else_=RateLimit.shifted),
                "updated_at": updated_at,
            },
        )
        .returning(
            RateLimit.next_free_at,
            RateLimit.shifted,
            RateLimit.backoff_level,
            RateLimit.backoff_since,
        )
    )


async def set_backoff(
    session: AsyncSession, name: str, *, seen_since: float, level: float, since: float
) -> tuple[float, float] | None:
    """Set the back-off unless another worker did since `seen_since`; the state in force
    afterwards (None before the first reservation made the row)."""
    await session.execute(
        update(RateLimit)
        .where(RateLimit.name == name, RateLimit.backoff_since == seen_since)
        .values(backoff_level=level, backoff_since=since)
        .execution_options(synchronize_session=False)
    )
    row = (
        await session.execute(
            select(RateLimit.backoff_level, RateLimit.backoff_since).where(RateLimit.name == name)
        )
    ).one_or_none()
    return None if row is None else (row[0], row[1])
