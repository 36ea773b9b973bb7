"""Cancel, pause, resume and reschedule through the API while a real worker sends."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from ses_sender.composition import Runtime
from ses_sender.control.repository import CANCELLED
from ses_sender.models import RequestStatus
from ses_sender.transports.base import OutgoingEmail, TransientError
from tests.support.api import post_topic
from tests.support.polling import wait_until, while_running
from tests.support.rows import requests_by_id
from tests.support.workers import RecordingTransport, WorkerFactory

C, P, S, X = (
    RequestStatus.CREATED,
    RequestStatus.PROCESSING,
    RequestStatus.SENT,
    RequestStatus.STOPPED,
)


@pytest.fixture
def api(live_client: httpx.AsyncClient) -> httpx.AsyncClient:
    return live_client


async def statuses(runtime: Runtime, ids: list[int]) -> list[int]:
    rows = await requests_by_id(runtime)
    return [rows[i].status for i in ids]


async def fence(
    api: httpx.AsyncClient, runtime: Runtime, worker: asyncio.Task[None], name: str
) -> None:
    """Queue one email on another topic and wait until it is sent: the worker has claimed and
    recorded since everything before this call."""
    ids = await post_topic(api, name, 1)
    runtime.wakeup.notify()

    async def sent() -> bool:
        return await statuses(runtime, ids) == [S]

    await wait_until(while_running(worker, sent), f"the {name} email sent")


async def stop(worker_task: asyncio.Task[None], worker: object) -> None:
    worker.stop()  # type: ignore[attr-defined]
    await asyncio.wait_for(worker_task, 10)


def sent_to(transport: RecordingTransport, topic: str) -> list[int]:
    return [email.request_id for email in transport.sent if email.topic_id == topic]


async def test_a_paused_topic_stops_sending_and_resumes_where_it_was(
    api: httpx.AsyncClient, live_runtime: Runtime, make_worker: WorkerFactory
) -> None:
    transport = RecordingTransport()
    worker = make_worker(transport, rate=40)
    campaign = await post_topic(api, "campaign", 80)
    task = asyncio.create_task(worker.run())

    async def some_sent() -> bool:
        return len(transport.sent) >= 5

    await wait_until(while_running(task, some_sent), "the campaign under way")
    paused = await api.post("/v1/topics/campaign/pause")
    assert paused.json()["paused"] is True

    # What the worker had claimed before the pause goes out; then nothing more.
    async def drained() -> bool:
        return P not in await statuses(live_runtime, campaign)

    await wait_until(while_running(task, drained), "the claimed emails sent")
    sent_while_pausing = len(sent_to(transport, "campaign"))
    await fence(api, live_runtime, task, "fence1")
    await fence(api, live_runtime, task, "fence2")
    assert len(sent_to(transport, "campaign")) == sent_while_pausing < 80
    assert (await api.get("/v1/topics/campaign")).json()["request"]["created"] == (
        80 - sent_while_pausing
    )

    resumed = await api.post("/v1/topics/campaign/resume")
    assert resumed.json() == {
        "topicId": "campaign",
        "paused": False,
        "pausedAt": None,
        "queued": 80 - sent_while_pausing,
    }

    async def all_sent() -> bool:
        return await statuses(live_runtime, campaign) == [S] * 80

    await wait_until(while_running(task, all_sent), "the whole campaign sent")
    await stop(task, worker)
    assert sorted(sent_to(transport, "campaign")) == campaign  # each once


async def test_cancelling_a_topic_mid_campaign_sends_nothing_more_than_it_says(
    api: httpx.AsyncClient, live_runtime: Runtime, make_worker: WorkerFactory
) -> None:
    transport = RecordingTransport(latency_s=0.05)
    worker = make_worker(transport, rate=40)
    campaign = await post_topic(api, "campaign", 80)
    task = asyncio.create_task(worker.run())

    async def some_sent() -> bool:
        return len(transport.sent) >= 5

    await wait_until(while_running(task, some_sent), "the campaign under way")
    answer = (await api.post("/v1/topics/campaign/cancel")).json()
    sent_before = answer["alreadySent"]
    assert answer["cancelled"] + answer["inFlight"] + sent_before == 80
    assert answer["cancelled"] > 0

    await fence(api, live_runtime, task, "fence")
    await stop(task, worker)

    rows = await requests_by_id(live_runtime)
    sent = [i for i in campaign if rows[i].status == S]
    assert sorted(sent_to(transport, "campaign")) == sent  # every send recorded, none twice
    assert sent_before <= len(sent) <= sent_before + answer["inFlight"]
    assert {(rows[i].status, rows[i].error) for i in campaign if i not in sent} == {(X, CANCELLED)}
    again = (await api.post("/v1/topics/campaign/cancel")).json()
    assert (again["cancelled"], again["inFlight"], again["alreadySent"]) == (0, 0, len(sent))


@dataclass
class HeldTransport(RecordingTransport):
    """Holds each send until the test lets it finish, failing transiently if told to."""

    started: asyncio.Event = field(default_factory=asyncio.Event)
    finish: asyncio.Event = field(default_factory=asyncio.Event)
    fail: bool = True
    calls: list[int] = field(default_factory=list)

    async def send(self, email: OutgoingEmail, *, on_sent: Callable[[], None] | None = None) -> str:
        self.calls.append(email.request_id)
        if email.topic_id == "held":
            self.started.set()
            await self.finish.wait()
            if self.fail:
                raise TransientError("HTTP 503")
        return await super().send(email, on_sent=on_sent)


@pytest.mark.parametrize("fails", [True, False], ids=["fails", "succeeds"])
async def test_a_request_cancelled_while_at_ses_is_never_retried_and_a_send_is_told(
    api: httpx.AsyncClient, live_runtime: Runtime, make_worker: WorkerFactory, fails: bool
) -> None:
    transport = HeldTransport(fail=fails)
    worker = make_worker(transport)
    [held] = await post_topic(api, "held", 1)
    task = asyncio.create_task(worker.run())
    await asyncio.wait_for(transport.started.wait(), 10)

    cancelled = await api.post(f"/v1/requests/{held}/cancel")
    transport.finish.set()
    await fence(api, live_runtime, task, "fence")
    await stop(task, worker)

    assert cancelled.json() == {"id": held, "status": 4, "outcome": "cancelledInFlight"}
    looked_up = (await api.get(f"/v1/requests/{held}")).json()
    if fails:
        assert (looked_up["status"], looked_up["error"]) == (4, CANCELLED)
    else:
        assert (looked_up["status"], looked_up["messageId"]) == (2, f"ses-{held}")
    assert looked_up["attempts"] == 1
    assert transport.calls.count(held) == 1
    stopped_again = await api.post(f"/v1/requests/{held}/cancel")
    assert stopped_again.status_code == (200 if fails else 409)


async def test_a_rescheduled_topic_waits_for_its_new_time(
    api: httpx.AsyncClient, live_runtime: Runtime, make_worker: WorkerFactory
) -> None:
    transport = RecordingTransport()
    worker = make_worker(transport)
    campaign = await post_topic(api, "campaign", 5)
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    moved = await api.post("/v1/topics/campaign/reschedule", json={"scheduledAt": later})
    assert moved.json()["rescheduled"] == 5
    task = asyncio.create_task(worker.run())

    await fence(api, live_runtime, task, "fence")
    assert sent_to(transport, "campaign") == []
    assert await statuses(live_runtime, campaign) == [C] * 5

    now = await api.post("/v1/topics/campaign/reschedule", json={"scheduledAt": ""})
    assert now.json()["rescheduled"] == 5

    async def all_sent() -> bool:
        return await statuses(live_runtime, campaign) == [S] * 5

    await wait_until(while_running(task, all_sent), "the whole campaign sent")
    await stop(task, worker)
    assert sorted(sent_to(transport, "campaign")) == campaign
