"""`GET /metrics`: who may read it, what the database gauges say and how often they read it,
and what the engine, the SNS endpoint and the HTTP layer count.

The counters are the process's own and every test in this process adds to them, so the tests
compare a scrape before with one after."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from prometheus_client import REGISTRY

from ses_sender.composition import Runtime, create_app
from ses_sender.delivery import retry as retry_module
from ses_sender.delivery import worker as worker_module
from ses_sender.delivery.pacer import Backoff, Pacer, Reservation
from ses_sender.models import DeliveryStatus, RequestStatus, Webhook, WebhookDelivery
from ses_sender.sending.service import pause_sending
from ses_sender.transports.ses import SesTransport
from tests.support.clock import FakeClock
from tests.support.metrics import scrape
from tests.support.polling import wait_until
from tests.support.rows import add_requests, queue_emails, requests_by_id
from tests.support.ses_events import ses_message
from tests.support.ses_stub import REJECTED, THROTTLED, SesStub
from tests.support.settings import API_KEY, make_settings
from tests.support.signed_sns import post, publisher, signed_sns_runtime, sns_client
from tests.support.worker_processes import roomy_account
from tests.support.workers import WorkerFactory

ROUTE = "/v1/topics/{topic_id:path}"


# -- who may read it ------------------------------------------------------------------------


async def test_metrics_need_the_api_key(anonymous_client: httpx.AsyncClient) -> None:
    assert (await anonymous_client.get("/metrics")).status_code == 401
    wrong = await anonymous_client.get("/metrics", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert wrong.json()["error"] == "Unauthorized: Invalid API key"

    await scrape(anonymous_client, **{"x-api-key": API_KEY})
    await scrape(anonymous_client, Authorization=f"Bearer {API_KEY}")  # Prometheus's way


async def test_metrics_are_open_when_the_key_is_not_required(runtime: Runtime) -> None:
    settings = runtime.settings.model_copy(update={"metrics_api_key_required": False})
    app = create_app(dataclasses.replace(runtime, settings=settings))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as anonymous:
        await scrape(anonymous)
        # Every other protected route still asks for it.
        assert (await anonymous.get("/v1/topics/t1")).status_code == 401


# -- gauges read from the database ------------------------------------------------------------


async def add_webhook_backlog(runtime: Runtime, pending: int) -> None:
    now = runtime.clock.now()
    async with runtime.sessionmaker() as session, session.begin():
        hook = Webhook(
            url="https://hooks.example.com/",
            secret="whsec_test",
            events=None,
            enabled=True,
            created_at=now,
            updated_at=now,
        )
        session.add(hook)
        await session.flush()
        statuses = [DeliveryStatus.PENDING] * pending + [DeliveryStatus.DELIVERED]
        session.add_all(
            WebhookDelivery(
                webhook_id=hook.id,
                event_type="Delivery",
                payload="{}",
                status=status,
                attempts=0,
                due_at=now,
                created_at=now,
            )
            for status in statuses
        )


async def test_queue_depth_pauses_and_webhook_backlog(
    client: httpx.AsyncClient, runtime: Runtime, clock: FakeClock
) -> None:
    created, processing, sent = RequestStatus.CREATED, RequestStatus.PROCESSING, RequestStatus.SENT
    await add_requests(runtime, [created, created, created, processing, sent], topic="open")
    await add_requests(runtime, [created, created], topic="on-hold")
    assert (await client.post("/v1/topics/on-hold/pause")).status_code == 200
    async with runtime.sessionmaker() as session, session.begin():
        await pause_sending(session, "guardrail", "bounce rate too high", now=clock.now())
    await add_webhook_backlog(runtime, pending=4)

    first = await scrape(client)

    assert first.value("ses_sender_queue_depth", status="queued") == 3
    assert first.value("ses_sender_queue_depth", status="held") == 2
    assert first.value("ses_sender_queue_depth", status="processing") == 1
    assert first.value("ses_sender_sending_paused", reason="guardrail") == 1
    assert first.value("ses_sender_webhook_backlog") == 4

    # Within the refresh interval a scrape does not read the database again ...
    await add_requests(runtime, [created], topic="open")
    clock.advance(5)
    assert (await scrape(client)).value("ses_sender_queue_depth", status="queued") == 3
    # ... after it, the next one does; a lifted pause reads 0.
    assert (await client.post("/v1/sending/resume", json={})).status_code == 200
    clock.advance(5)
    later = await scrape(client)
    assert later.value("ses_sender_queue_depth", status="queued") == 4
    assert later.value("ses_sender_sending_paused", reason="guardrail") == 0


# -- HTTP latency by route --------------------------------------------------------------------


async def test_http_latency_is_labelled_by_route_template(client: httpx.AsyncClient) -> None:
    before = await scrape(client)

    assert (await client.get("/v1/topics/launch-2026%2Fsecret")).status_code == 200
    assert (await client.get("/no/such/path/4711")).status_code == 404

    after = await scrape(client)
    count = "ses_sender_http_request_duration_seconds_count"
    for labels in (
        {"method": "GET", "route": ROUTE, "status": "200"},
        {"method": "GET", "route": "unmatched", "status": "404"},
    ):
        assert after.value(count, **labels) == before.value(count, **labels) + 1
    values = {value for labels in after.labels_of(count) for value in labels.values()}
    assert not any("secret" in value or "4711" in value for value in values)


# -- SNS --------------------------------------------------------------------------------------


@pytest.fixture
async def sns_runtime(database_url: str, clock: FakeClock) -> AsyncIterator[Runtime]:
    async with signed_sns_runtime(make_settings(database_url), clock) as runtime:
        yield runtime


async def test_sns_messages_and_verification_failures_are_counted(
    sns_runtime: Runtime, clock: FakeClock
) -> None:
    key = {"x-api-key": API_KEY}
    sign = publisher(clock)
    [request_id] = await add_requests(sns_runtime, [RequestStatus.SENT])
    delivery = sign.notification(_delivery(sns_runtime, request_id, clock))
    forged = {**delivery, "Message": delivery["Message"].replace("Delivery", "Bounce")}
    async with sns_client(sns_runtime) as sns:
        before = await scrape(sns, **key)

        assert (await post(sns, delivery)).json() == {"message": "ok"}
        assert (await post(sns, delivery)).json() == {"message": "duplicate"}
        assert (await post(sns, forged)).status_code == 400

        after = await scrape(sns, **key)
    name = "ses_sender_sns_messages_total"
    for outcome in ("ok", "duplicate"):
        labels = {"type": "Notification", "outcome": outcome}
        assert after.value(name, **labels) == before.value(name, **labels) + 1
    failures = "ses_sender_sns_verification_failures_total"
    assert after.value(failures, kind="rejected") == before.value(failures, kind="rejected") + 1


def _delivery(runtime: Runtime, request_id: int, clock: FakeClock) -> str:
    return ses_message("Delivery", at=clock.now() - timedelta(seconds=2), request_id=request_id)


# -- the engine -------------------------------------------------------------------------------


class StillSchedule:
    """A shared schedule whose clock moves only when told; throttles never reserve."""

    def __init__(self) -> None:
        self.at = 1_000.0

    def now(self) -> float:
        return self.at

    async def reserve(
        self, *, now: float, count: int, interval: float, shift_to: float
    ) -> Reservation:
        raise AssertionError("a throttle reserves nothing")

    async def back_off(self, *, seen: Backoff, to: Backoff) -> Backoff:
        raise AssertionError("a throttle shares its back-off at the next settle")


def test_a_burst_of_throttles_counts_one_back_off() -> None:
    schedule = StillSchedule()
    pacer = Pacer(100, schedule=schedule)

    def backoffs() -> float:
        return REGISTRY.get_sample_value("ses_sender_rate_backoffs_total") or 0.0

    before = backoffs()
    pacer.throttled()
    pacer.throttled()  # the same burst
    assert backoffs() == before + 1
    schedule.at += 1.5  # soon after: a storm halves the rate, once more
    pacer.throttled()
    assert backoffs() == before + 2


# -- the engine, sending through SES ---------------------------------------------------------


async def test_sends_throttles_and_failures_through_ses_are_counted(
    live_runtime: Runtime,
    live_client: httpx.AsyncClient,
    make_worker: WorkerFactory,
    ses_stub: SesStub,
    ses: SesTransport,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A throttled email is due again at once: the test is about what is counted, not when.
    monkeypatch.setattr(retry_module, "THROTTLE_RETRY_S", 0.05)
    monkeypatch.setattr(worker_module, "POLL_INTERVAL_S", 0.05)
    roomy_account(ses_stub)
    ses_stub.fail_next(THROTTLED)
    ses_stub.fail_next(REJECTED)
    worker = make_worker(ses, rate=500.0)
    before = await scrape(live_client)
    ids = await queue_emails(live_runtime, [f"r{i}@example.com" for i in range(5)])
    task = asyncio.create_task(worker.run())

    async def all_final() -> bool:
        rows = await requests_by_id(live_runtime)
        finished = (RequestStatus.SENT, RequestStatus.FAILED)
        return all(rows[request_id].status in finished for request_id in ids)

    try:
        await wait_until(all_final, "every email sent or failed", within_s=90)
    finally:
        worker.stop()
        await task
    after = await scrape(live_client)

    def added(name: str, **labels: str) -> float:
        return after.value(name, **labels) - before.value(name, **labels)

    assert added("ses_sender_emails_sent_total") == 4
    assert added("ses_sender_throttles_total") == 1
    assert added("ses_sender_send_failures_total", kind="permanent") == 1
    assert added("ses_sender_emails_failed_total", kind="permanent") == 1
    assert added("ses_sender_send_duration_seconds_count") == 6  # 4 sent, 2 refused
    assert after.value("ses_sender_emails_in_flight") == 0
    assert after.value("ses_sender_target_rate_emails_per_second") == 500
    assert 0 < after.value("ses_sender_paced_rate_emails_per_second") <= 500
    assert 0 <= after.value("ses_sender_rate_backoff_ratio") < 1
