"""`kill -9` a worker mid-campaign, restart it: nobody is lost, and the only duplicates are the
emails SES had accepted when the worker died, unless SES's events for them came back first.
Then four workers over one PostgreSQL: every email sent exactly once.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy import select

from ses_sender.composition import Runtime
from ses_sender.models import Request, RequestStatus
from ses_sender.ses_events import service as ses_events_service
from ses_sender.ses_events.sns import SnsMessage
from tests.support.api import post_topic
from tests.support.databases import postgresql_only
from tests.support.polling import wait_until
from tests.support.rows import requests_by_id
from tests.support.ses_events import SOFT_BOUNCES, ses_message
from tests.support.ses_stub import SesStub
from tests.support.worker_processes import (
    WorkerProcess,
    accepted_per_request,
    all_sent,
    roomy_account,
    settled,
    worker_env,
)

RECIPIENTS = 2_000
MAX_CONCURRENT = 40
LEASE_SECONDS = 10  # the shortest allowed
SEND_TIMEOUT_SECONDS = 5  # at most half the lease
# Two seconds of sending at 2,500/s, claimed half a second's worth at a time: the four workers
# start together and race for the same rows, claim after claim, until none is left.
BIG_CAMPAIGN = 5_000


async def kill_mid_campaign(
    runtime: Runtime,
    client: httpx.AsyncClient,
    ses_stub: SesStub,
    start_worker: Callable[[dict[str, str]], WorkerProcess],
    env: dict[str, str],
) -> tuple[list[int], set[int], set[int]]:
    """Queue the campaign, start a worker, SIGKILL it a third of the way through.

    Returns the campaign's ids, the rows in flight at the kill (claimed, not recorded) and,
    among them, those SES had accepted: the sends whose outcome the kill lost.
    """
    ids = await post_topic(client, "campaign", RECIPIENTS)
    worker = start_worker(env)

    async def a_third_sent() -> bool:
        return len(ses_stub.accepted) >= RECIPIENTS // 3

    await wait_until(a_third_sent, "a third of the campaign at SES", within_s=60)
    worker.kill()
    await settled(ses_stub)

    rows = await requests_by_id(runtime)
    in_flight = {i for i in ids if rows[i].status == RequestStatus.PROCESSING}
    unrecorded = {i for i in accepted_per_request(ses_stub) if rows[i].status != RequestStatus.SENT}
    # What makes the test worth running: the kill caught sends SES had taken.
    assert unrecorded, "no send was lost with the worker: kill it earlier"
    assert unrecorded <= in_flight
    assert all(
        rows[i].status in (RequestStatus.CREATED, RequestStatus.SENT) for i in set(ids) - in_flight
    )
    return ids, in_flight, unrecorded


@pytest.fixture
def crash_env(database_url: str, ses_stub: SesStub) -> dict[str, str]:
    roomy_account(ses_stub)
    ses_stub.configure({"latency_s": 0.1})
    return worker_env(
        database_url,
        ses_stub,
        EMAIL_RATE="500",
        MAX_CONCURRENT=str(MAX_CONCURRENT),
        LEASE_SECONDS=str(LEASE_SECONDS),
        SEND_TIMEOUT_SECONDS=str(SEND_TIMEOUT_SECONDS),
    )


@pytest.mark.timeout(180)
async def test_a_killed_worker_loses_nobody_and_duplicates_only_what_was_in_flight(
    live_runtime: Runtime,
    live_client: httpx.AsyncClient,
    ses_stub: SesStub,
    start_worker: Callable[[dict[str, str]], WorkerProcess],
    crash_env: dict[str, str],
) -> None:
    ids, in_flight, unrecorded = await kill_mid_campaign(
        live_runtime, live_client, ses_stub, start_worker, crash_env
    )

    restarted = start_worker(crash_env)

    async def campaign_sent() -> bool:
        return await all_sent(live_runtime, ids)

    await wait_until(campaign_sent, "the whole campaign sent after the restart", within_s=90)
    assert await restarted.stop() == 0, restarted.output()

    accepted = accepted_per_request(ses_stub)
    assert set(accepted) == set(ids)  # nobody lost
    duplicated = {i for i, count in accepted.items() if count > 1}
    assert max(accepted.values()) <= 2
    # Exactly the sends the kill lost went out again, after the lease expired.
    assert duplicated == unrecorded
    assert len(duplicated) <= MAX_CONCURRENT
    assert duplicated <= in_flight
    assert "queued again" in restarted.output()


@pytest.mark.timeout(180)
async def test_sends_that_ses_reported_before_the_lease_expired_are_not_sent_again(
    live_runtime: Runtime,
    live_client: httpx.AsyncClient,
    ses_stub: SesStub,
    start_worker: Callable[[dict[str, str]], WorkerProcess],
    crash_env: dict[str, str],
) -> None:
    ids, in_flight, unrecorded = await kill_mid_campaign(
        live_runtime, live_client, ses_stub, start_worker, crash_env
    )
    # SES publishes a Send event for each email it accepted, tagged with our request id.
    message_ids = {
        int(record["tags"]["ses-sender-request-id"]): record["message_id"]
        for record in ses_stub.accepted
    }
    for request_id in unrecorded:
        await ingest_send_event(live_runtime, request_id, message_ids[request_id])

    restarted = start_worker(crash_env)

    async def campaign_sent() -> bool:
        return await all_sent(live_runtime, ids)

    await wait_until(campaign_sent, "the whole campaign sent after the restart", within_s=90)
    assert await restarted.stop() == 0, restarted.output()

    accepted = accepted_per_request(ses_stub)
    assert set(accepted) == set(ids)
    assert set(accepted.values()) == {1}  # no duplicate at all
    rows = await requests_by_id(live_runtime)
    assert {rows[i].message_id for i in unrecorded} == {message_ids[i] for i in unrecorded}
    # The rows claimed but never sent were sent once, after the lease expired.
    assert in_flight - unrecorded
    assert "queued again" in restarted.output()


async def ingest_send_event(runtime: Runtime, request_id: int, message_id: str) -> None:
    """A verified SNS notification of SES's Send event, taken in as the API takes it."""
    now = datetime.now(UTC)
    async with runtime.sessionmaker() as session:
        recipient = await session.scalar(
            select(Request.recipient_key).where(Request.id == request_id)
        )
    assert recipient is not None
    message = ses_message(
        "Send", at=now, ses_message_id=message_id, request_id=request_id, recipient=recipient
    )
    notification = SnsMessage(
        type="Notification",
        message_id=str(uuid.uuid4()),
        topic_arn="arn:aws:sns:us-east-1:123456789012:ses-events",
        message=message,
        timestamp=now,
    )
    async with runtime.sessionmaker() as session, session.begin():
        await ses_events_service.ingest_notification(
            session, notification, soft_bounces=SOFT_BOUNCES, now=now
        )


@postgresql_only  # workers scale out over PostgreSQL; SQLite is for one process
@pytest.mark.timeout(300)
async def test_four_workers_over_one_postgresql_send_every_email_once(
    database_url: str,
    live_runtime: Runtime,
    live_client: httpx.AsyncClient,
    ses_stub: SesStub,
    start_worker: Callable[[dict[str, str]], WorkerProcess],
) -> None:
    roomy_account(ses_stub)
    env = worker_env(database_url, ses_stub, EMAIL_RATE="2500", MAX_CONCURRENT="50")
    ids = await post_topic(live_client, "big", BIG_CAMPAIGN)

    workers = [start_worker(env) for _ in range(4)]

    async def campaign_sent() -> bool:
        return await all_sent(live_runtime, ids)

    await wait_until(campaign_sent, f"{BIG_CAMPAIGN} emails sent by four workers", within_s=240)
    for worker in workers:
        assert await worker.stop() == 0, worker.output()

    accepted = accepted_per_request(ses_stub)
    assert set(accepted) == set(ids)
    assert set(accepted.values()) == {1}
    assert len(ses_stub.received) == BIG_CAMPAIGN  # nothing refused, nothing retried
