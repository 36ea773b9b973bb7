"""Rows as the API, the worker and SNS leave them, written straight to the database, and the
reads tests make of them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy import case, or_, select, update

from ses_sender.composition import Runtime
from ses_sender.messages.addresses import recipient_key
from ses_sender.models import (
    Content,
    EventPayload,
    Request,
    RequestStatus,
    Result,
    StopReason,
    Suppression,
)
from ses_sender.stats import counters
from ses_sender.stats import service as stats
from tests.support.ses_events import RECIPIENT, SES_MESSAGE_ID

# The lease token of the rows these helpers leave claimed (PROCESSING), as a worker's claim would.
CLAIM_TOKEN = 4242

# -- writes ---------------------------------------------------------------------------------


async def add_request(
    runtime: Runtime,
    *,
    message_id: str | None = SES_MESSAGE_ID,
    status: RequestStatus = RequestStatus.SENT,
    to: str = RECIPIENT,
) -> int:
    """One email request (with its content), as the API and the worker would have left it."""
    now = runtime.clock.now()
    async with runtime.sessionmaker() as session, session.begin():
        content = Content(topic_id="t1", subject="Hello", content="<p>Hi</p>", created_at=now)
        session.add(content)
        await session.flush()
        request = Request(
            topic_id="t1",
            to=to,
            recipient_key=recipient_key(to),
            content_id=content.id,
            scheduled_at=now,
            status=status,
            due_at=now,
            attempts=0 if status == RequestStatus.CREATED else 1,
            lease_token=CLAIM_TOKEN if status == RequestStatus.PROCESSING else None,
            message_id=message_id,
            sent_at=now if status == RequestStatus.SENT else None,
            created_at=now,
            updated_at=now,
        )
        session.add(request)
        await session.flush()
        await stats.count_added(session, [request.id])
        return request.id


async def add_requests(
    runtime: Runtime,
    statuses: Sequence[RequestStatus],
    *,
    topic: str = "t1",
    scheduled_in_s: float = 0.0,
) -> list[int]:
    """One request per status, as the API and the worker leave them, on the runtime's clock."""
    now = runtime.clock.now()
    scheduled = now + timedelta(seconds=scheduled_in_s)
    async with runtime.sessionmaker() as session, session.begin():
        content = Content(topic_id=topic, subject="Hello", content="<p>Hi</p>", created_at=now)
        session.add(content)
        await session.flush()
        rows = [
            _row(topic, index, content.id, status, scheduled, now)
            for index, status in enumerate(statuses)
        ]
        session.add_all(rows)
        await session.flush()
        await stats.count_added(session, [row.id for row in rows])
        return [row.id for row in rows]


def _row(
    topic: str,
    index: int,
    content_id: int,
    status: RequestStatus,
    scheduled: datetime,
    now: datetime,
) -> Request:
    address = f"{topic.replace('/', '.')}-{index}@example.com"
    return Request(
        topic_id=topic,
        to=address,
        recipient_key=address,
        content_id=content_id,
        scheduled_at=scheduled,
        due_at=scheduled,
        lease_expires_at=scheduled + timedelta(minutes=2)
        if status == RequestStatus.PROCESSING
        else None,
        lease_token=CLAIM_TOKEN if status == RequestStatus.PROCESSING else None,
        stop_reason=StopReason.CANCELLED if status == RequestStatus.STOPPED else None,
        status=status,
        attempts=0 if status == RequestStatus.CREATED else 1,
        message_id=f"ses-{topic}-{index}" if status == RequestStatus.SENT else None,
        sent_at=now if status == RequestStatus.SENT else None,
        error="MessageRejected" if status == RequestStatus.FAILED else None,
        open_count=0,
        click_count=0,
        created_at=now,
        updated_at=now,
    )


async def queue_emails(
    runtime: Runtime,
    addresses: list[str],
    *,
    topic: str = "t1",
    html: str = "<html><body><p>Hi</p></body></html>",
    due_at: datetime | None = None,
) -> list[int]:
    """Emails queued as the API queues them, due now (or at `due_at`) on the real clock."""
    now = datetime.now(UTC)
    async with runtime.sessionmaker() as session, session.begin():
        content = Content(topic_id=topic, subject="Hello", content=html, created_at=now)
        session.add(content)
        await session.flush()
        rows = [
            Request(
                topic_id=topic,
                to=address,
                recipient_key=recipient_key(address),
                content_id=content.id,
                scheduled_at=due_at or now,
                due_at=due_at or now,
                status=RequestStatus.CREATED,
                attempts=0,
                open_count=0,
                click_count=0,
                created_at=now,
                updated_at=now,
            )
            for address in addresses
        ]
        session.add_all(rows)
        await session.flush()
        await stats.count_added(session, [row.id for row in rows])
        return [row.id for row in rows]


async def add_sends(
    runtime: Runtime,
    count: int,
    *,
    sent_at: datetime,
    bounce_type: str | None = None,
    complained: bool = False,
) -> list[int]:
    """`count` sent emails, each with the same fate, as the worker and SNS would leave them."""
    async with runtime.sessionmaker() as session, session.begin():
        content = Content(topic_id="t1", subject="Hi", content="<p>Hi</p>", created_at=sent_at)
        session.add(content)
        await session.flush()
        rows = [
            Request(
                topic_id="t1",
                to=f"r{index}@example.net",
                recipient_key=f"r{index}@example.net",
                content_id=content.id,
                scheduled_at=sent_at,
                due_at=sent_at,
                status=RequestStatus.SENT,
                attempts=1,
                message_id=None,
                sent_at=sent_at,
                bounced_at=sent_at if bounce_type else None,
                bounce_type=bounce_type,
                complained_at=sent_at if complained else None,
                open_count=0,
                click_count=0,
                created_at=sent_at,
                updated_at=sent_at,
            )
            for index in range(count)
        ]
        session.add_all(rows)
        await session.flush()
        await stats.count_added(session, [row.id for row in rows])
        return [row.id for row in rows]


async def log_event(
    runtime: Runtime,
    request_id: int,
    status: str,
    *,
    source: str = "ses",
    machine: bool | None = None,
    at: datetime | None = None,
) -> None:
    """An event logged straight to the table, with what the request keeps of its events for
    the counters (as the writers keep it), counted. The summary times (`delivered_at`, ...)
    are left as they are."""
    when = at or runtime.clock.now()
    values: dict[str, object] = {
        "event_types": Request.event_types.op("|")(counters.EVENT_BITS[status])
    }
    for types, column in (
        (counters.OPEN_TYPES, Request.opened_at),
        (counters.CLICK_TYPES, Request.clicked_at),
    ):
        if status in types:
            values[column.key] = case((or_(column.is_(None), column > when), when), else_=column)
    if source == "tracking" and status in ("Open", "Click"):
        kind = status.lower()
        for name, add in ((f"{kind}_count", 1), (f"machine_{kind}_count", int(bool(machine)))):
            values[name] = getattr(Request, name) + add
    async with (
        runtime.sessionmaker() as session,
        session.begin(),
        stats.counting(session, [request_id]) as counted,
    ):
        session.add(
            Result(
                request_id=request_id,
                status=status,
                source=source,
                occurred_at=when,
                machine=machine,
                created_at=runtime.clock.now(),
            )
        )
        await session.execute(update(Request).where(Request.id == request_id).values(values))
        counted.events(request_id, [(status, when)], machine=bool(machine))


# -- reads ----------------------------------------------------------------------------------


async def requests_by_id(runtime: Runtime) -> dict[int, Request]:
    async with runtime.sessionmaker() as session:
        rows = (await session.scalars(select(Request))).all()
    return {row.id: row for row in rows}


async def request_row(runtime: Runtime, request_id: int) -> Request:
    async with runtime.sessionmaker() as session:
        row = await session.get(Request, request_id)
    assert row is not None
    return row


async def stored_results(runtime: Runtime) -> list[Result]:
    async with runtime.sessionmaker() as session:
        return list((await session.scalars(select(Result).order_by(Result.id))).all())


async def stored_payloads(runtime: Runtime) -> dict[str, str]:
    """The SES events kept as SNS carried them, by SNS message id."""
    async with runtime.sessionmaker() as session:
        rows = await session.execute(select(EventPayload.sns_message_id, EventPayload.raw))
        return dict(rows.all())


async def suppressions(runtime: Runtime) -> dict[str, tuple[str, str | None]]:
    """The suppression list: address -> (reason, detail)."""
    async with runtime.sessionmaker() as session:
        rows = (await session.scalars(select(Suppression))).all()
    return {row.email: (row.reason, row.detail) for row in rows}
