"""Pause, reschedule, resume and cancel a campaign through the API while a separate
`ses-sender worker` process sends it: the worker learns of each only through the database."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from ses_sender.composition import Runtime
from ses_sender.models import Request, RequestStatus
from tests.support.api import post_topic
from tests.support.polling import wait_until
from tests.support.ses_stub import SesStub
from tests.support.worker_processes import (
    WorkerProcess,
    accepted_per_request,
    roomy_account,
    worker_env,
)

CAMPAIGN = 300


@pytest.fixture
def worker(database_url: str, ses_stub: SesStub, tmp_path: Path) -> Iterator[WorkerProcess]:
    roomy_account(ses_stub)
    process = WorkerProcess(
        worker_env(database_url, ses_stub, EMAIL_RATE="50", MAX_CONCURRENT="10"),
        tmp_path / "worker.log",
    )
    yield process
    process.ensure_gone()


async def count(runtime: Runtime, topic: str, status: RequestStatus) -> int:
    async with runtime.sessionmaker() as session:
        found = await session.scalar(
            select(func.count()).where(Request.topic_id == topic, Request.status == status)
        )
    return found or 0


def sent_to(ses_stub: SesStub, ids: list[int]) -> int:
    accepted = accepted_per_request(ses_stub)
    return sum(accepted[i] for i in ids)


async def fence(client: httpx.AsyncClient, ses_stub: SesStub, name: str) -> None:
    """One email on another topic, waited for at SES: the worker has claimed since."""
    [request_id] = await post_topic(client, name, 1)

    async def at_ses() -> bool:
        return request_id in accepted_per_request(ses_stub)

    await wait_until(at_ses, f"the {name} email at SES", within_s=30)


@pytest.mark.timeout(180)
async def test_a_campaign_is_paused_rescheduled_resumed_and_cancelled_across_processes(
    live_runtime: Runtime, live_client: httpx.AsyncClient, ses_stub: SesStub, worker: WorkerProcess
) -> None:
    ids = await post_topic(live_client, "campaign", CAMPAIGN)

    async def some_sent() -> bool:
        return sent_to(ses_stub, ids) >= 20

    await wait_until(some_sent, "the campaign under way", within_s=30)

    # Pause: what the worker had claimed goes out, then nothing.
    assert (await live_client.post("/v1/topics/campaign/pause")).json()["paused"] is True

    async def drained() -> bool:
        return await count(live_runtime, "campaign", RequestStatus.PROCESSING) == 0

    await wait_until(drained, "the claimed emails sent", within_s=30)
    await fence(live_client, ses_stub, "fence-1")
    sent_while_pausing = sent_to(ses_stub, ids)
    assert sent_while_pausing < CAMPAIGN

    # Rescheduled an hour ahead, then resumed: still nothing before its time.
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    moved = await live_client.post("/v1/topics/campaign/reschedule", json={"scheduledAt": later})
    assert moved.json()["rescheduled"] == CAMPAIGN - sent_while_pausing
    assert (await live_client.post("/v1/topics/campaign/resume")).json()["paused"] is False
    await fence(live_client, ses_stub, "fence-2")
    assert sent_to(ses_stub, ids) == sent_while_pausing

    # Brought back to now: sending resumes; cancelled half-way through what was left.
    await live_client.post("/v1/topics/campaign/reschedule", json={"scheduledAt": ""})
    halfway = sent_while_pausing + (CAMPAIGN - sent_while_pausing) // 2

    async def half_the_rest_sent() -> bool:
        return sent_to(ses_stub, ids) >= halfway

    await wait_until(half_the_rest_sent, "the campaign under way again", within_s=30)
    cancelled = (await live_client.post("/v1/topics/campaign/cancel")).json()
    assert cancelled["cancelled"] > 0
    await fence(live_client, ses_stub, "fence-3")
    assert await worker.stop() == 0, worker.output()

    sent = await count(live_runtime, "campaign", RequestStatus.SENT)
    stopped = await count(live_runtime, "campaign", RequestStatus.STOPPED)
    assert sent + stopped == CAMPAIGN
    assert max(accepted_per_request(ses_stub).values()) == 1  # nobody twice
    assert sent_to(ses_stub, ids) == sent  # every send recorded
    assert cancelled["alreadySent"] <= sent <= cancelled["alreadySent"] + cancelled["inFlight"]

    first = next(i for i in ids if i in accepted_per_request(ses_stub))
    refused = await live_client.post(f"/v1/requests/{first}/cancel")
    assert (refused.status_code, refused.json()["status"]) == (409, RequestStatus.SENT)
