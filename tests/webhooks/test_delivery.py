"""Webhook delivery against a real receiver on a loopback port, on SQLite and PostgreSQL.

The sender runs on the test's fake clock, so a day of retries takes no time; the HTTP is real.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from ses_sender.composition import Runtime, TransportChoice, open_runtime
from ses_sender.config import Settings, TransportKind
from ses_sender.delivery.emails import Sent
from ses_sender.delivery.repository import record_outcomes
from ses_sender.models import DeliveryStatus, RequestStatus, WebhookDelivery
from ses_sender.ses_events import service as ses_events
from ses_sender.ses_events.service import Ingested, Received, adopt_waiting_events
from ses_sender.webhooks import repository, service
from ses_sender.webhooks.retry import GIVE_UP_AFTER, RETRY_BASE_S, RETRY_CAP_S
from tests.support.clock import FakeClock
from tests.support.polling import wait_until, while_running
from tests.support.rows import CLAIM_TOKEN, add_request, queue_emails, stored_results
from tests.support.ses_events import (
    RECIPIENT,
    SES_MESSAGE_ID,
    SOFT_BOUNCES,
    ingest,
    notification,
    ses_message,
)
from tests.support.spies import spy
from tests.support.tracking import DESKTOP_BROWSER, click_path, composed, tracked_links
from tests.support.webhooks import (
    Receiver,
    SenderFactory,
    create_webhook,
    deliveries,
    queue_opens,
)

# -- what is queued -------------------------------------------------------------------------


def bounce_document(request_id: int, bounced_at: datetime, message: str) -> dict[str, Any]:
    """What a webhook receives for the bounce SES reported in `message`."""
    return {
        "type": "Bounce",
        "requestId": request_id,
        "topicId": "t1",
        "email": RECIPIENT,
        "time": bounced_at.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        "details": json.loads(message)["bounce"],
    }


class TestQueueing:
    async def test_an_ses_event_is_queued_with_the_event_and_posted_signed(
        self,
        client: httpx.AsyncClient,
        runtime: Runtime,
        clock: FakeClock,
        receiver: Receiver,
        make_sender: SenderFactory,
    ) -> None:
        hook = await create_webhook(client, receiver.url)
        request_id = await add_request(runtime)
        bounced_at = clock.now() - timedelta(minutes=3)
        message = ses_message("Bounce", at=bounced_at, request_id=request_id)

        assert await ingest(runtime, message) is Ingested.STORED

        (queued,) = await deliveries(runtime)
        assert (queued.status, queued.attempts, queued.event_type) == (
            DeliveryStatus.PENDING,
            0,
            "Bounce",
        )
        assert await make_sender().deliver_due() == 1
        (received,) = receiver.received
        assert received.signed_by(hook["secret"])
        assert not received.signed_by(hook["secret"] + "0")
        assert received.headers["X-Ses-Sender-Timestamp"] == str(int(clock.now().timestamp()))
        assert received.headers["Content-Type"] == "application/json"
        assert received.delivery == str(queued.id)
        assert received.document() == bounce_document(request_id, bounced_at, message)
        (delivered,) = await deliveries(runtime)
        assert (delivered.status, delivered.attempts) == (DeliveryStatus.DELIVERED, 1)
        assert delivered.delivered_at == clock.now()

    async def test_a_rolled_back_ingestion_queues_nothing(
        self, client: httpx.AsyncClient, runtime: Runtime, clock: FakeClock
    ) -> None:
        await create_webhook(client, "https://hooks.example.com/")
        request_id = await add_request(runtime)
        message = ses_message("Delivery", at=clock.now(), request_id=request_id)

        async def ingest_then_fail() -> None:
            async with runtime.sessionmaker() as session, session.begin():
                await ses_events.ingest_notification(
                    session,
                    notification(message, sent_at=clock.now()),
                    soft_bounces=SOFT_BOUNCES,
                    now=clock.now(),
                )
                assert len((await session.scalars(select(WebhookDelivery))).all()) == 1
                raise RuntimeError("the commit never happens")

        with pytest.raises(RuntimeError):
            await ingest_then_fail()

        assert await deliveries(runtime) == []
        assert await stored_results(runtime) == []

    async def test_each_webhook_gets_the_types_it_asked_for(
        self,
        client: httpx.AsyncClient,
        runtime: Runtime,
        clock: FakeClock,
    ) -> None:
        bounces_only = await create_webhook(client, "https://a.example.com/", events=["Bounce"])
        everything = await create_webhook(client, "https://b.example.com/")
        request_id = await add_request(runtime)

        for kind in ("Delivery", "Bounce", "Open"):
            await ingest(runtime, ses_message(kind, at=clock.now(), request_id=request_id))

        queued = [(d.webhook_id, d.event_type) for d in await deliveries(runtime)]
        assert sorted(queued) == sorted(
            [
                (everything["id"], "Delivery"),
                (bounces_only["id"], "Bounce"),
                (everything["id"], "Bounce"),
                (everything["id"], "SesOpen"),  # SES's open, apart from our pixel's
            ]
        )

    async def test_a_redelivered_sns_message_is_queued_once(
        self, client: httpx.AsyncClient, runtime: Runtime, clock: FakeClock
    ) -> None:
        await create_webhook(client, "https://hooks.example.com/")
        request_id = await add_request(runtime)
        message = ses_message("Delivery", at=clock.now(), request_id=request_id)

        assert await ingest(runtime, message, message_id="sns-1") is Ingested.STORED
        assert await ingest(runtime, message, message_id="sns-1") is Ingested.DUPLICATE

        assert len(await deliveries(runtime)) == 1

    async def test_each_event_of_a_batch_is_queued_with_its_own_request(
        self, client: httpx.AsyncClient, runtime: Runtime, clock: FakeClock
    ) -> None:
        await create_webhook(client, "https://hooks.example.com/")
        addresses = ["ann@example.net", "bob@example.net", "cy@example.net"]
        request_ids = [await add_request(runtime, to=to) for to in addresses]
        now = clock.now()
        batch = [
            Received(
                notification(
                    ses_message("Delivery", at=now, request_id=request_id, recipient=to),
                    sent_at=now,
                ),
                now,
            )
            for request_id, to in zip(request_ids, addresses, strict=True)
        ]

        async with runtime.sessionmaker() as session, session.begin():
            outcomes = await ses_events.ingest_notifications(
                session, batch, soft_bounces=SOFT_BOUNCES
            )

        assert outcomes == [Ingested.STORED] * 3
        payloads = [json.loads(queued.payload) for queued in await deliveries(runtime)]
        assert sorted((p["requestId"], p["email"], p["topicId"]) for p in payloads) == [
            (request_id, to, "t1") for request_id, to in zip(request_ids, addresses, strict=True)
        ]

    async def test_an_event_waiting_for_its_send_is_queued_when_attached(
        self, client: httpx.AsyncClient, runtime: Runtime, clock: FakeClock
    ) -> None:
        await create_webhook(client, "https://hooks.example.com/")
        # Claimed, sent, but its outcome not recorded yet: SES's event arrives first, untagged.
        request_id = await add_request(runtime, message_id=None, status=RequestStatus.PROCESSING)
        bounced_at = clock.now() - timedelta(seconds=5)
        message = ses_message("Bounce", at=bounced_at, identity=False)
        await ingest(runtime, message)
        assert await deliveries(runtime) == []  # not ours yet: maybe not ours at all

        async with runtime.sessionmaker() as session, session.begin():
            sent = Sent(request_id, SES_MESSAGE_ID, clock.now(), CLAIM_TOKEN)
            await record_outcomes(session, [sent], now=clock.now())
            await adopt_waiting_events(
                session, request_id, SES_MESSAGE_ID, soft_bounces=SOFT_BOUNCES, now=clock.now()
            )

        # What the event carried is read back from where it is kept once per SNS message.
        (queued,) = await deliveries(runtime)
        assert json.loads(queued.payload) == bounce_document(request_id, bounced_at, message)

    async def test_our_open_pixel_is_posted_as_open(
        self,
        client: httpx.AsyncClient,
        runtime: Runtime,
        clock: FakeClock,
        receiver: Receiver,
        make_sender: SenderFactory,
    ) -> None:
        hook = await create_webhook(client, receiver.url, events=["Open"])
        request_id = await add_request(runtime)

        token = runtime.tokens.for_open(request_id)
        pixel = await client.get(
            "/v1/events/open", params={"t": token}, headers={"user-agent": DESKTOP_BROWSER}
        )
        assert pixel.status_code == 200
        await runtime.hits.settle()

        assert await make_sender().deliver_due() == 1
        (received,) = receiver.received
        assert received.signed_by(hook["secret"])
        assert received.document() == {
            "type": "Open",
            "requestId": request_id,
            "topicId": "t1",
            "email": RECIPIENT,
            "time": clock.now().strftime("%Y-%m-%dT%H:%M:%S.000Z"),
            "details": {"machine": False, "reason": "direct"},
        }

    async def test_a_click_on_a_tracked_link_is_posted_as_click(
        self,
        client: httpx.AsyncClient,
        runtime: Runtime,
        clock: FakeClock,
        receiver: Receiver,
        make_sender: SenderFactory,
    ) -> None:
        hook = await create_webhook(client, receiver.url, events=["Click"])
        [request_id] = await queue_emails(
            runtime, [RECIPIENT], html='<p><a href="https://shop.example/sale">sale</a></p>'
        )
        [link, _honeypot] = tracked_links((await composed(runtime, request_id)).html)

        click = await client.get(click_path(link), headers={"user-agent": DESKTOP_BROWSER})
        assert click.status_code == 302
        await runtime.hits.settle()

        assert await make_sender().deliver_due() == 1
        (received,) = receiver.received
        assert received.signed_by(hook["secret"])
        assert received.document() == {
            "type": "Click",
            "requestId": request_id,
            "topicId": "t1",
            "email": RECIPIENT,
            "time": clock.now().strftime("%Y-%m-%dT%H:%M:%S.000Z"),
            "details": {"machine": False, "reason": "direct", "url": "https://shop.example/sale"},
        }

    async def test_no_webhook_no_delivery(self, runtime: Runtime, clock: FakeClock) -> None:
        request_id = await add_request(runtime)
        await ingest(runtime, ses_message("Delivery", at=clock.now(), request_id=request_id))
        assert await deliveries(runtime) == []


# -- retries, redirects, timeouts ------------------------------------------------------------


class TestRetries:
    async def test_failures_are_retried_with_growing_delays_until_delivered(
        self,
        client: httpx.AsyncClient,
        runtime: Runtime,
        clock: FakeClock,
        receiver: Receiver,
        make_sender: SenderFactory,
    ) -> None:
        hook = await create_webhook(client, receiver.url)
        await queue_opens(runtime, 1)
        receiver.script = [500, 503, 404]
        sender = make_sender()

        for attempt in (1, 2, 3):
            assert await sender.deliver_due() == 1
            (row,) = await deliveries(runtime)
            assert (row.status, row.attempts) == (DeliveryStatus.PENDING, attempt)
            ceiling = min(RETRY_CAP_S, RETRY_BASE_S * 2 ** (attempt - 1))
            delay = (row.due_at - clock.now()).total_seconds()
            assert ceiling / 2 <= delay <= ceiling
            assert await sender.deliver_due() == 0  # not due yet
            clock.advance(delay)

        assert row.last_error == "HTTP 404"  # never what the receiver wrote
        assert await sender.deliver_due() == 1
        (row,) = await deliveries(runtime)
        assert (row.status, row.attempts, row.last_error) == (DeliveryStatus.DELIVERED, 4, None)
        # The same delivery each time, signed afresh each time.
        assert [r.delivery for r in receiver.received] == [str(row.id)] * 4
        assert all(r.signed_by(hook["secret"]) for r in receiver.received)
        assert all(r.signed_v2_by(hook["secret"]) for r in receiver.received)
        stamps = [int(r.headers["X-Ses-Sender-Timestamp"]) for r in receiver.received]
        assert stamps == sorted(stamps)
        assert len(set(stamps)) == 4

    async def test_a_redirect_is_not_followed(
        self,
        client: httpx.AsyncClient,
        runtime: Runtime,
        receiver: Receiver,
        make_sender: SenderFactory,
    ) -> None:
        elsewhere = Receiver()
        await elsewhere.start()
        try:
            await create_webhook(client, receiver.url)
            await queue_opens(runtime, 1)
            receiver.script = [307]
            receiver.redirect_to = elsewhere.url

            await make_sender().deliver_due()
        finally:
            await elsewhere.stop()

        assert elsewhere.received == []
        (row,) = await deliveries(runtime)
        assert row.status == DeliveryStatus.PENDING
        assert row.last_error == "HTTP 307: redirects are not followed"

    async def test_a_receiver_that_does_not_answer_is_given_up_on_after_the_timeout(
        self,
        client: httpx.AsyncClient,
        runtime: Runtime,
        receiver: Receiver,
        make_sender: SenderFactory,
    ) -> None:
        await create_webhook(client, receiver.url)
        await queue_opens(runtime, 1)
        receiver.gate = asyncio.Event()  # never opened

        await make_sender(timeout_s=0.2).deliver_due()

        (row,) = await deliveries(runtime)
        assert (row.status, row.attempts) == (DeliveryStatus.PENDING, 1)
        assert row.last_error == "no answer within 0.2 s"

    async def test_a_receiver_that_is_not_there(
        self, client: httpx.AsyncClient, runtime: Runtime, make_sender: SenderFactory
    ) -> None:
        gone = Receiver()
        await gone.start()
        await gone.stop()  # its port now refuses connections
        await create_webhook(client, gone.url)
        await queue_opens(runtime, 1)

        await make_sender().deliver_due()

        (row,) = await deliveries(runtime)
        assert row.status == DeliveryStatus.PENDING
        assert row.last_error is not None
        assert row.last_error.startswith("ClientConnectorError")


# -- giving up and disabling -----------------------------------------------------------------


async def retry_until_settled(
    runtime: Runtime, clock: FakeClock, deliver: Callable[[], Awaitable[int]], delivery_id: int
) -> WebhookDelivery:
    """Advance the clock to each retry of one delivery until it is no longer pending."""
    for _ in range(1_000):
        await deliver()
        row = next(d for d in await deliveries(runtime) if d.id == delivery_id)
        if row.status != DeliveryStatus.PENDING:
            return row
        clock.advance(max(0.0, (row.due_at - clock.now()).total_seconds()))
    raise AssertionError("still pending after 1,000 attempts")


class TestGivingUp:
    async def test_a_day_of_failures_fails_the_delivery_and_disables_the_webhook(
        self,
        client: httpx.AsyncClient,
        runtime: Runtime,
        clock: FakeClock,
        receiver: Receiver,
        make_sender: SenderFactory,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        hook = await create_webhook(client, receiver.url)
        other = await create_webhook(client, "https://unrelated.example.com/", events=["Bounce"])
        await queue_opens(runtime, 1)
        receiver.answer = lambda _received: 500
        started = clock.now()
        first = (await deliveries(runtime))[0]
        sender = make_sender()
        clock.advance(3600)
        await queue_opens(runtime, 1)  # a second event, queued an hour later, also failing

        with caplog.at_level(logging.INFO, logger="ses_sender.webhooks"):
            failed = await retry_until_settled(runtime, clock, sender.deliver_due, first.id)

        assert failed.status == DeliveryStatus.FAILED
        assert failed.last_error == "HTTP 500"
        assert clock.now() - started <= GIVE_UP_AFTER
        assert failed.attempts >= 30  # about a day, at most an hour apart
        listed = {h["id"]: h for h in (await client.get("/v1/webhooks")).json()["webhooks"]}
        assert listed[hook["id"]]["enabled"] is False
        reason = listed[hook["id"]]["disabledReason"]
        assert reason.startswith(f"no delivery succeeded since {started:%Y-%m-%dT%H:%M:%S}")
        assert reason.endswith("last error: HTTP 500")
        assert "try later" not in caplog.text
        assert listed[other["id"]]["enabled"] is True
        # What was still queued for it fails with it; nothing new is queued for it.
        second = (await deliveries(runtime))[1]
        assert (second.status, second.last_error) == (DeliveryStatus.FAILED, "webhook disabled")
        await queue_opens(runtime, 1)
        assert len(await deliveries(runtime)) == 2
        assert f"webhook {hook['id']} disabled: no delivery succeeded" in caplog.text

    async def test_one_event_that_keeps_failing_does_not_disable_a_working_webhook(
        self,
        client: httpx.AsyncClient,
        runtime: Runtime,
        clock: FakeClock,
        receiver: Receiver,
        make_sender: SenderFactory,
    ) -> None:
        hook = await create_webhook(client, receiver.url)
        await queue_opens(runtime, 1)
        first = (await deliveries(runtime))[0]
        refused = str(first.id)
        receiver.answer = lambda received: 422 if received.delivery == refused else 200
        sender = make_sender()
        clock.advance(60)
        await queue_opens(runtime, 1)  # delivered at once: the endpoint works

        failed = await retry_until_settled(runtime, clock, sender.deliver_due, first.id)

        assert failed.status == DeliveryStatus.FAILED
        (listed,) = (await client.get("/v1/webhooks")).json()["webhooks"]
        assert (listed["id"], listed["enabled"], listed["disabledReason"]) == (
            hook["id"],
            True,
            None,
        )

    async def test_a_delivery_whose_webhook_was_disabled_meanwhile_is_not_sent(
        self,
        client: httpx.AsyncClient,
        runtime: Runtime,
        clock: FakeClock,
        receiver: Receiver,
        make_sender: SenderFactory,
    ) -> None:
        await create_webhook(client, receiver.url)
        await queue_opens(runtime, 1)
        (row,) = await deliveries(runtime)
        async with runtime.sessionmaker() as session, session.begin():
            now = clock.now()
            claimed, _targets = await service.claim_due(session, now=now, lease_until=now, limit=10)
            assert [d.id for d in claimed] == [row.id]
        async with runtime.sessionmaker() as session, session.begin():
            await repository.disable_webhook(session, row.webhook_id, reason="test", now=now)

        await make_sender().deliver_due()

        assert receiver.received == []


# -- the loop: concurrency, restarts, leases -------------------------------------------------


class TestLoop:
    async def test_at_most_concurrency_deliveries_at_once(
        self,
        client: httpx.AsyncClient,
        runtime: Runtime,
        receiver: Receiver,
        make_sender: SenderFactory,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        await create_webhook(client, receiver.url)
        await queue_opens(runtime, 5)
        receiver.gate = asyncio.Event()
        sender = make_sender(concurrency=2)
        claims = spy(monkeypatch, sender, "_record_and_claim")
        loop = asyncio.create_task(sender.run())
        try:
            await wait_until(
                while_running(loop, lambda: _at_least(receiver, 2)), "two deliveries held"
            )
            held = len(claims.started)

            async def went_round_full() -> bool:
                # A round of the loop since, done, with no slot free: it claimed none.
                done = range(held, len(claims.returned))
                return any(claims.started[call][0] == (0,) for call in done)

            await wait_until(while_running(loop, went_round_full), "a round with no slot free")
            assert len(receiver.received) == 2
            receiver.gate.set()
            await wait_until(while_running(loop, lambda: _delivered(receiver, 5)), "five delivered")
        finally:
            sender.stop()
            await loop
        assert receiver.most_in_flight == 2

    async def test_a_stopped_loop_finishes_what_it_started_and_a_new_one_delivers_the_rest(
        self,
        client: httpx.AsyncClient,
        runtime: Runtime,
        settings: Settings,
        clock: FakeClock,
        receiver: Receiver,
        make_sender: SenderFactory,
    ) -> None:
        await create_webhook(client, receiver.url)
        await queue_opens(runtime, 10)
        receiver.gate = asyncio.Event()
        first = make_sender(concurrency=3)
        first_loop = asyncio.create_task(first.run())
        await wait_until(
            while_running(first_loop, lambda: _at_least(receiver, 3)), "three deliveries held"
        )

        first.stop()  # mid-way: three in flight, seven not started
        receiver.gate.set()
        await first_loop

        assert len(receiver.deliveries()) == 3
        rows = await deliveries(runtime)
        assert sum(row.status == DeliveryStatus.DELIVERED for row in rows) == 3
        assert sum(row.attempts == 0 for row in rows) == 7
        # A process of its own: another engine, the rows in the database its only state.
        choice = TransportChoice(TransportKind.OUTBOX, "tests")
        async with open_runtime(settings, transport=choice, clock=clock) as restarted:
            second = make_sender(sessionmaker=restarted.sessionmaker, concurrency=3)
            second_loop = asyncio.create_task(second.run())
            try:
                await wait_until(
                    while_running(second_loop, lambda: _delivered(receiver, 10)), "ten delivered"
                )
            finally:
                second.stop()
                await second_loop

        delivered = receiver.deliveries()
        assert sorted(delivered) == sorted(str(row.id) for row in rows)  # each exactly once
        assert len(receiver.received) == 10
        assert all(row.status == DeliveryStatus.DELIVERED for row in await deliveries(runtime))

    async def test_a_delivery_whose_process_died_is_sent_after_its_lease(
        self,
        client: httpx.AsyncClient,
        runtime: Runtime,
        clock: FakeClock,
        receiver: Receiver,
        make_sender: SenderFactory,
    ) -> None:
        await create_webhook(client, receiver.url)
        await queue_opens(runtime, 1)
        sender = make_sender(timeout_s=5.0)
        async with runtime.sessionmaker() as session, session.begin():
            now = clock.now()
            # Claimed by a process that then died: nothing was posted, nothing recorded.
            await service.claim_due(
                session, now=now, lease_until=now + timedelta(seconds=35), limit=10
            )

        assert await sender.deliver_due() == 0  # still leased
        clock.advance(35)
        assert await sender.deliver_due() == 1

        (row,) = await deliveries(runtime)
        assert (row.status, row.attempts) == (DeliveryStatus.DELIVERED, 2)
        assert len(receiver.received) == 1


async def _at_least(receiver: Receiver, count: int) -> bool:
    return len(receiver.received) >= count


async def _delivered(receiver: Receiver, count: int) -> bool:
    return len(receiver.deliveries()) >= count
