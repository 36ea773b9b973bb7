"""Reconciling sends with SES's reports: a send whose outcome was lost is not sent again.

Against a real database (SQLite and PostgreSQL), on a fake clock.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from ses_sender.composition import Runtime
from ses_sender.control import repository as control_repository
from ses_sender.delivery import repository
from ses_sender.delivery.emails import Failed, Requeued, SendResult, Sent
from ses_sender.delivery.housekeeping import Housekeeping
from ses_sender.models import Request, RequestStatus, Result, ResultSource
from ses_sender.ses_events.hooks import SesEventHooks
from ses_sender.stats.hooks import StatsHooks
from tests.support.clock import FakeClock
from tests.support.rows import CLAIM_TOKEN, add_requests, requests_by_id
from tests.support.ses_events import ingest, ses_message

C, P, S, F, X = (
    RequestStatus.CREATED,
    RequestStatus.PROCESSING,
    RequestStatus.SENT,
    RequestStatus.FAILED,
    RequestStatus.STOPPED,
)
LEASE = timedelta(minutes=2)


async def store_event(
    runtime: Runtime,
    request_id: int,
    status: str,
    *,
    at: datetime,
    message_id: str | None,
    source: ResultSource = ResultSource.SES,
) -> None:
    """An event already attached to its request, as ingestion or adoption leaves it."""
    async with runtime.sessionmaker() as session, session.begin():
        session.add(
            Result(
                request_id=request_id,
                status=status,
                source=source,
                ses_message_id=message_id,
                occurred_at=at,
                created_at=at,
            )
        )


async def recover(runtime: Runtime, now: datetime) -> tuple[int, int]:
    """(recorded Sent on SES's word, queued again), by the engine's housekeeping at `now`."""
    hooks = SesEventHooks(runtime.soft_bounces)
    housekeeping = Housekeeping(
        runtime.sessionmaker, evidence=hooks, counter=StatsHooks(), jobs=[], clock=FakeClock(now)
    )
    return await housekeeping.recover_expired_leases()


async def record(runtime: Runtime, outcomes: list[SendResult]) -> None:
    async with runtime.sessionmaker() as session, session.begin():
        await repository.record_outcomes(session, outcomes, now=runtime.clock.now())


# -- when a lease expires ---------------------------------------------------------------------


async def test_an_expired_lease_that_ses_reported_is_recorded_sent_not_queued_again(
    runtime: Runtime, clock: FakeClock
) -> None:
    [reported, silent, only_opened, live] = await add_requests(runtime, [P, P, P, P])
    sent_at = clock.now() - timedelta(seconds=30)
    # Delivery first in the log, Send earlier in time: the send's own time and id win.
    await store_event(
        runtime, reported, "Delivery", at=sent_at + timedelta(seconds=3), message_id="m-1"
    )
    await store_event(runtime, reported, "Send", at=sent_at, message_id="m-1")
    # Our own pixel carries no SES message id: not proof enough to record a send.
    await store_event(
        runtime, only_opened, "Open", at=sent_at, message_id=None, source=ResultSource.TRACKING
    )
    # Leases end two minutes after the claim; `live` was claimed again a minute later.
    async with runtime.sessionmaker() as session, session.begin():
        row = await session.get(Request, live)
        assert row is not None
        row.lease_expires_at = clock.now() + LEASE + timedelta(minutes=1)

    recovered = await recover(runtime, clock.now() + LEASE)

    assert recovered == (1, 2)
    rows = await requests_by_id(runtime)
    assert (rows[reported].status, rows[reported].message_id) == (S, "m-1")
    assert rows[reported].sent_at == sent_at
    assert rows[reported].error is None
    assert [rows[i].status for i in (silent, only_opened, live)] == [C, C, P]
    assert await recover(runtime, clock.now() + LEASE) == (0, 0)


# -- when the report arrives later ------------------------------------------------------------


async def test_a_report_for_a_request_tried_but_not_recorded_records_it_sent(
    runtime: Runtime, clock: FakeClock
) -> None:
    """Requeued after its worker died, cancelled in flight, failed on a timeout, in flight."""
    ids = await add_requests(runtime, [C, X, F, P])
    at = clock.now() - timedelta(seconds=5)
    async with runtime.sessionmaker() as session, session.begin():
        for request_id in ids:
            row = await session.get(Request, request_id)
            assert row is not None
            row.attempts = 1

    to = {request_id: row.to for request_id, row in (await requests_by_id(runtime)).items()}
    for request_id in ids:
        event = ses_message(
            "Send",
            at=at,
            ses_message_id=f"m-{request_id}",
            request_id=request_id,
            recipient=to[request_id],
        )
        await ingest(runtime, event)

    rows = await requests_by_id(runtime)
    for request_id in ids:
        row = rows[request_id]
        # A Send event's time is the send's (mail.timestamp, 2 s before `at` here).
        assert (row.status, row.message_id, row.error) == (S, f"m-{request_id}", None)
        assert row.sent_at == at - timedelta(seconds=2)


async def test_a_report_never_marks_an_untried_request_or_rewrites_a_recorded_send(
    runtime: Runtime, clock: FakeClock
) -> None:
    [untried, sent] = await add_requests(runtime, [C, S])
    before = (await requests_by_id(runtime))[sent]

    to = {request_id: row.to for request_id, row in (await requests_by_id(runtime)).items()}
    for request_id in (untried, sent):
        await ingest(
            runtime,
            ses_message(
                "Delivery",
                at=clock.now(),
                ses_message_id="other",
                request_id=request_id,
                recipient=to[request_id],
            ),
        )

    rows = await requests_by_id(runtime)
    assert (rows[untried].status, rows[untried].message_id) == (C, None)
    assert (rows[sent].message_id, rows[sent].sent_at) == (before.message_id, before.sent_at)


async def test_a_worker_outcome_after_the_report_changes_nothing(
    runtime: Runtime, clock: FakeClock
) -> None:
    """SES reported the send before the worker recorded it (it timed out, say)."""
    [timed_out, slow] = await add_requests(runtime, [P, P])
    to = {request_id: row.to for request_id, row in (await requests_by_id(runtime)).items()}
    for request_id in (timed_out, slow):
        event = ses_message(
            "Send",
            at=clock.now(),
            ses_message_id=f"m-{request_id}",
            request_id=request_id,
            recipient=to[request_id],
        )
        await ingest(runtime, event)

    await record(
        runtime,
        [
            Requeued(timed_out, clock.now() + timedelta(seconds=2), "timed out", True, CLAIM_TOKEN),
            Sent(slow, f"m-{slow}", clock.now() + timedelta(seconds=1), CLAIM_TOKEN),
        ],
    )

    rows = await requests_by_id(runtime)
    assert [rows[i].status for i in (timed_out, slow)] == [S, S]
    assert rows[slow].sent_at == clock.now() - timedelta(seconds=2)  # the report's, kept


# -- outcomes of requests cancelled in flight -------------------------------------------------


async def test_a_request_cancelled_in_flight_is_never_queued_again_but_a_send_is_recorded(
    runtime: Runtime, clock: FakeClock
) -> None:
    [requeued, failed, sent] = await add_requests(runtime, [P, P, P])
    async with runtime.sessionmaker() as session, session.begin():
        stopped = await control_repository.stop_requests(session, "t1", P, now=clock.now())
    assert stopped == {"example.com": 3}

    await record(
        runtime,
        [
            Requeued(requeued, clock.now(), "HTTP 503", True, CLAIM_TOKEN),
            Failed(failed, "MessageRejected", CLAIM_TOKEN),
            Sent(sent, "m-sent", clock.now(), CLAIM_TOKEN),
        ],
    )

    rows = await requests_by_id(runtime)
    assert [(rows[i].status, rows[i].error) for i in (requeued, failed)] == [
        (X, control_repository.CANCELLED)
    ] * 2
    assert (rows[sent].status, rows[sent].message_id, rows[sent].error) == (S, "m-sent", None)


async def test_a_late_outcome_for_a_released_lease_prevents_the_resend(
    runtime: Runtime, clock: FakeClock
) -> None:
    """The worker was stalled past its lease (not dead): its send is recorded when it lands."""
    [stalled] = await add_requests(runtime, [P])
    assert await recover(runtime, clock.now() + LEASE) == (0, 1)

    await record(runtime, [Sent(stalled, "m-late", clock.now(), CLAIM_TOKEN)])

    row = (await requests_by_id(runtime))[stalled]
    assert (row.status, row.message_id) == (S, "m-late")
