"""A slow receiver never slows SNS ingestion: events are queued, and POSTed by another loop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import func, select

from ses_sender.composition import Runtime
from ses_sender.config import Settings
from ses_sender.models import WebhookDelivery
from tests.support.clock import FakeClock
from tests.support.polling import wait_until, while_running
from tests.support.rows import add_request
from tests.support.ses_events import ses_message
from tests.support.signed_sns import earlier, post, publisher, signed_sns_runtime
from tests.support.webhooks import Receiver, SenderFactory, create_webhook

NOTIFICATIONS = 6


@pytest.fixture
async def runtime(settings: Settings, clock: FakeClock) -> AsyncIterator[Runtime]:
    async with signed_sns_runtime(settings, clock) as runtime:
        yield runtime


async def queued(runtime: Runtime) -> int:
    async with runtime.sessionmaker() as session:
        return await session.scalar(select(func.count()).select_from(WebhookDelivery)) or 0


async def test_notifications_are_taken_in_while_the_receiver_holds_every_delivery(
    client: httpx.AsyncClient,
    runtime: Runtime,
    clock: FakeClock,
    receiver: Receiver,
    make_sender: SenderFactory,
) -> None:
    await create_webhook(client, receiver.url)
    request_ids = [
        await add_request(runtime, message_id=f"ses-{index}", to=f"r{index}@example.net")
        for index in range(NOTIFICATIONS)
    ]
    signing = publisher(clock)
    receiver.gate = asyncio.Event()  # the receiver answers nothing until the test says so
    sender = make_sender(concurrency=2)
    loop = asyncio.create_task(sender.run())
    try:
        answers = []
        for index, request_id in enumerate(request_ids):
            message = ses_message(
                "Delivery",
                at=earlier(clock),
                ses_message_id=f"ses-{index}",
                request_id=request_id,
                recipient=f"r{index}@example.net",
            )
            answers.append(await post(client, signing.notification(message)))
            if index == 1:
                # From here on, both of the loop's slots are held by the receiver.
                await wait_until(
                    while_running(loop, lambda: _holding(receiver, 2)), "two deliveries held"
                )

        # Every notification was stored and answered while the receiver still held two.
        assert [(a.status_code, a.json()) for a in answers] == [
            (200, {"message": "ok"})
        ] * NOTIFICATIONS
        assert receiver.in_flight == 2
        assert not receiver.gate.is_set()
        assert await queued(runtime) == NOTIFICATIONS

        receiver.gate.set()
        await wait_until(
            while_running(loop, lambda: _delivered(receiver, NOTIFICATIONS)), "all delivered"
        )
    finally:
        sender.stop()
        await loop
    assert sorted(r.document()["requestId"] for r, _status in receiver.answers) == request_ids


async def _holding(receiver: Receiver, count: int) -> bool:
    return receiver.in_flight >= count


async def _delivered(receiver: Receiver, count: int) -> bool:
    return len(receiver.deliveries()) >= count
