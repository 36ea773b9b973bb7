"""Group commit of SES events (`runtime.ses_events`), on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import event

from ses_sender.composition import Runtime
from ses_sender.errors import InvalidInput
from ses_sender.ses_events.ingester import Ingester
from ses_sender.ses_events.service import Ingested
from tests.support.clock import FakeClock
from tests.support.rows import add_request, request_row, stored_results
from tests.support.ses_events import SOFT_BOUNCES, notification, ses_message


@contextmanager
def counting_commits(runtime: Runtime) -> Iterator[list[None]]:
    commits: list[None] = []

    def count(_connection: object) -> None:
        commits.append(None)

    event.listen(runtime.engine.sync_engine, "commit", count)
    try:
        yield commits
    finally:
        event.remove(runtime.engine.sync_engine, "commit", count)


async def test_notifications_that_arrive_together_share_a_transaction(
    runtime: Runtime, clock: FakeClock
) -> None:
    request_ids = [await add_request(runtime, message_id=f"m-{i}") for i in range(20)]
    messages = [
        notification(
            ses_message("Delivery", at=clock.now(), ses_message_id=f"m-{i}", request_id=request_id),
            sent_at=clock.now(),
        )
        for i, request_id in enumerate(request_ids)
    ]

    with counting_commits(runtime) as commits:
        outcomes = await asyncio.gather(
            *(runtime.ses_events.ingest(message, now=clock.now()) for message in messages)
        )

    assert outcomes == [Ingested.STORED] * 20
    assert 1 <= len(commits) < 20
    assert len(await stored_results(runtime)) == 20
    for request_id in request_ids:
        assert (await request_row(runtime, request_id)).delivered_at == clock.now()


async def test_a_writer_takes_all_that_waits(runtime: Runtime, clock: FakeClock) -> None:
    ingester = Ingester(runtime.sessionmaker, soft_bounces=SOFT_BOUNCES, max_writers=2)
    request_ids = [await add_request(runtime, message_id=f"m-{i}") for i in range(10)]
    messages = [
        notification(
            ses_message("Delivery", at=clock.now(), ses_message_id=f"m-{i}", request_id=request_id),
            sent_at=clock.now(),
        )
        for i, request_id in enumerate(request_ids)
    ]

    with counting_commits(runtime) as commits:
        outcomes = await asyncio.gather(
            *(ingester.ingest(message, now=clock.now()) for message in messages)
        )

    # Handed over together: the first writer takes all ten, the second finds none left.
    assert outcomes == [Ingested.STORED] * 10
    assert len(commits) == 1


async def test_a_message_that_fails_fails_alone(runtime: Runtime, clock: FakeClock) -> None:
    request_ids = [await add_request(runtime, message_id=f"m-{i}") for i in range(6)]
    good = [
        notification(
            ses_message("Bounce", at=clock.now(), ses_message_id=f"m-{i}", request_id=request_id),
            sent_at=clock.now(),
        )
        for i, request_id in enumerate(request_ids)
    ]
    bad = notification('{"eventType": "Delivery"}', sent_at=clock.now())
    batch = [*good[:3], bad, *good[3:]]

    outcomes = await asyncio.gather(
        *(runtime.ses_events.ingest(message, now=clock.now()) for message in batch),
        return_exceptions=True,
    )

    assert outcomes[:3] == outcomes[4:] == [Ingested.STORED] * 3
    assert isinstance(outcomes[3], InvalidInput)
    assert "Message: not an SES event" in outcomes[3].message
    assert len(await stored_results(runtime)) == 6
    for request_id in request_ids:
        assert (await request_row(runtime, request_id)).bounced_at == clock.now()


async def test_a_redelivery_in_the_same_batch_is_a_duplicate(
    runtime: Runtime, clock: FakeClock
) -> None:
    request_id = await add_request(runtime)
    message = notification(
        ses_message("Delivery", at=clock.now(), request_id=request_id), sent_at=clock.now()
    )

    outcomes = await asyncio.gather(
        *(runtime.ses_events.ingest(message, now=clock.now()) for _ in range(4))
    )

    assert sorted(outcomes) == sorted([Ingested.STORED, *[Ingested.DUPLICATE] * 3])
    assert len(await stored_results(runtime)) == 1


@pytest.mark.parametrize("max_writers", [1, 3])
async def test_close_waits_for_what_was_handed_over(
    runtime: Runtime, clock: FakeClock, max_writers: int
) -> None:
    ingester = Ingester(
        runtime.sessionmaker, soft_bounces=SOFT_BOUNCES, max_batch=2, max_writers=max_writers
    )
    request_ids = [await add_request(runtime, message_id=f"m-{i}") for i in range(7)]
    pending = [
        asyncio.ensure_future(
            ingester.ingest(
                notification(
                    ses_message(
                        "Delivery", at=clock.now(), ses_message_id=f"m-{i}", request_id=request_id
                    ),
                    sent_at=clock.now(),
                ),
                now=clock.now(),
            )
        )
        for i, request_id in enumerate(request_ids)
    ]
    await asyncio.sleep(0)  # every request has handed its message over

    await ingester.close()

    assert all(future.done() for future in pending)
    assert [future.result() for future in pending] == [Ingested.STORED] * 7
    assert len(await stored_results(runtime)) == 7
