"""What SNS carried is kept `EVENT_RAW_RETENTION_DAYS`, then pruned in batches; the event log,
the summaries and the counters stay."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from ses_sender.composition import Runtime, retention_jobs
from ses_sender.ses_events import service
from ses_sender.ses_events.retention import BATCHES_PER_SWEEP, PruneEventPayloads
from ses_sender.ses_events.service import Ingested
from ses_sender.stats import service as stats
from tests.support.clock import FakeClock
from tests.support.rows import add_request, request_row, stored_payloads, stored_results
from tests.support.ses_events import SES_MESSAGE_ID, SOFT_BOUNCES, ingest, ses_message
from tests.support.settings import make_settings

RETENTION = timedelta(days=30)
KINDS = ("Send", "Delivery", "Open", "Click", "DeliveryDelay")


async def prune(runtime: Runtime, *, batch: int) -> None:
    async with runtime.sessionmaker() as session, session.begin():
        await PruneEventPayloads(RETENTION, batch=batch).run(session, now=runtime.clock.now())


async def what_stays(runtime: Runtime, request_id: int) -> tuple[Any, ...]:
    """The event log, the request's summary and its topic's counts."""
    results = [
        (r.status, r.request_id, r.recipient, r.sns_message_id, r.occurred_at)
        for r in await stored_results(runtime)
    ]
    row = await request_row(runtime, request_id)
    async with runtime.sessionmaker() as session:
        counts = (await stats.topic_stats(session, "t1")).model_dump()
    return results, (row.outcome, row.delivered_at, row.delayed_at, row.open_count), counts


async def test_old_payloads_go_oldest_first_in_batches_and_the_events_stay(
    runtime: Runtime, clock: FakeClock
) -> None:
    request_id = await add_request(runtime)
    old = BATCHES_PER_SWEEP + 2
    for number in range(old):
        kind = KINDS[number % len(KINDS)]
        message = ses_message(kind, at=clock.now(), request_id=request_id)
        await ingest(runtime, message, message_id=f"old-{number}")
        clock.advance(1)
    clock.advance(RETENTION.total_seconds())  # every old one is past it now
    recent = ses_message("Delivery", at=clock.now(), request_id=request_id)
    await ingest(runtime, recent, message_id="recent")
    kept_before = await what_stays(runtime, request_id)

    await prune(runtime, batch=1)  # a sweep takes BATCHES_PER_SWEEP batches at most
    after_one_sweep = set(await stored_payloads(runtime))
    await prune(runtime, batch=1)

    assert after_one_sweep == {f"old-{number}" for number in range(BATCHES_PER_SWEEP, old)} | {
        "recent"
    }
    assert await stored_payloads(runtime) == {"recent": recent}
    assert await what_stays(runtime, request_id) == kept_before


async def test_payloads_within_their_retention_stay(runtime: Runtime, clock: FakeClock) -> None:
    message = ses_message("Delivery", at=clock.now(), identity=True)
    await ingest(runtime, message, message_id="sns-1")
    clock.advance(RETENTION.total_seconds())

    await prune(runtime, batch=1)

    assert await stored_payloads(runtime) == {"sns-1": message}


async def test_a_redelivery_after_pruning_stores_nothing(
    runtime: Runtime, clock: FakeClock
) -> None:
    message = ses_message("Delivery", at=clock.now(), identity=True)
    await ingest(runtime, message, message_id="sns-1")
    clock.advance(RETENTION.total_seconds() + 1)
    await prune(runtime, batch=1)

    assert await ingest(runtime, message, message_id="sns-1") is Ingested.DUPLICATE

    assert (await stored_payloads(runtime), len(await stored_results(runtime))) == ({}, 1)


async def test_a_waiting_event_whose_payload_was_pruned_is_attached_unapplied(
    runtime: Runtime, clock: FakeClock
) -> None:
    await ingest(runtime, ses_message("Bounce", at=clock.now(), identity=True))
    clock.advance(RETENTION.total_seconds() + 1)
    await prune(runtime, batch=1)
    request_id = await add_request(runtime)

    async with runtime.sessionmaker() as session, session.begin():
        await service.adopt_waiting_events(
            session, request_id, SES_MESSAGE_ID, soft_bounces=SOFT_BOUNCES, now=clock.now()
        )

    [result] = await stored_results(runtime)
    assert result.request_id == request_id
    assert (await request_row(runtime, request_id)).bounced_at is None  # nothing to apply


def test_no_retention_keeps_payloads_for_ever() -> None:
    def names(days: int) -> list[str]:
        settings = make_settings("sqlite:///unused.db", EVENT_RAW_RETENTION_DAYS=days)
        return [job.name for job in retention_jobs(settings)]

    assert PruneEventPayloads.name in names(30)
    assert PruneEventPayloads.name not in names(0)
