"""SES goes away from a worker mid-campaign, refusing connections or answering 503 to everyone,
for longer than every retry of an email would last, and comes back: nothing is Failed, every
email is sent once, `/health` shows the outage while it lasts, and the worker logs its start and
its end once each."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import httpx
import pytest

from ses_sender.composition import Runtime
from ses_sender.delivery.retry import BACKOFF_BASE_S
from ses_sender.models import RequestStatus
from tests.support.api import post_topic
from tests.support.polling import until_elapsed, wait_until
from tests.support.rows import requests_by_id
from tests.support.ses_stub import SesStub
from tests.support.worker_processes import (
    StartWorker,
    accepted_per_request,
    roomy_account,
    settled,
    until_accepted,
    until_all_sent,
    worker_env,
)

RECIPIENTS = 60
MAX_ATTEMPTS = 2
MAX_CONCURRENT = 10
# Longer than an email's every attempt and backoff would take, were the outage its fault.
OUTAGE_S = 4 * BACKOFF_BASE_S * MAX_ATTEMPTS
ENV = {
    "EMAIL_RATE": "20",  # three seconds of sending: SES goes mid-campaign
    "MAX_CONCURRENT": str(MAX_CONCURRENT),
    "MAX_ATTEMPTS": str(MAX_ATTEMPTS),
    "SEND_TIMEOUT_SECONDS": "5",
    "SES_OUTAGE_FAILURES": "3",
    "SES_OUTAGE_PROBE_SECONDS": "0.2",
    "SES_OUTAGE_PROBE_MAX_SECONDS": "1",
}
PAUSED_LINE = "sending paused (ses_unreachable)"
RESUMED_LINE = "sending resumed (ses_unreachable)"


async def refuse_connections(ses_stub: SesStub) -> Callable[[], Awaitable[None]]:
    await ses_stub.stop()
    return ses_stub.restart


async def answer_503(ses_stub: SesStub) -> Callable[[], Awaitable[None]]:
    ses_stub.configure({"unavailable": True})

    async def back() -> None:
        ses_stub.configure({"unavailable": False})

    return back


@pytest.mark.timeout(240)
@pytest.mark.parametrize("outage", [refuse_connections, answer_503])
async def test_ses_away_for_longer_than_every_retry_fails_nothing_and_sends_each_once(
    outage: Callable[[SesStub], Awaitable[Callable[[], Awaitable[None]]]],
    database_url: str,
    live_runtime: Runtime,
    live_client: httpx.AsyncClient,
    ses_stub: SesStub,
    start_worker: StartWorker,
) -> None:
    roomy_account(ses_stub)
    ids = await post_topic(live_client, "ses-outage", RECIPIENTS)
    worker = start_worker(worker_env(database_url, ses_stub, **ENV))

    await until_accepted(ses_stub, 10)
    come_back = await outage(ses_stub)
    began = time.monotonic()

    async def shown_in_health() -> bool:
        health = (await live_client.get("/health")).json()
        return health["status"] == "degraded" and health["transport"]["reachable"] is False

    await wait_until(shown_in_health, "the outage in /health", within_s=60)
    health = (await live_client.get("/health")).json()
    assert any(reason.startswith("ses_unreachable: ") for reason in health["sending"]["reasons"])

    await until_elapsed(began, OUTAGE_S, f"an outage of {OUTAGE_S:g} s")
    rows = await requests_by_id(live_runtime)
    assert RequestStatus.FAILED not in {rows[i].status for i in ids}
    await come_back()

    await until_all_sent(live_runtime, ids, "the campaign sent after SES came back")
    health = (await live_client.get("/health")).json()
    assert (health["status"], health["transport"]["reachable"]) == ("ok", True)
    assert await worker.stop() == 0, worker.output()
    await settled(ses_stub)

    output = worker.output()
    assert output.count(PAUSED_LINE) == 1, output
    assert f"ERROR ses_sender.sending.service: {PAUSED_LINE}" in output  # so Sentry hears of it
    assert output.count(RESUMED_LINE) == 1, output
    accepted = accepted_per_request(ses_stub)
    assert set(accepted) == set(ids), "lost"
    # A send on the wire as the connection dropped may have reached SES, unanswered: it is
    # tried again, as any send that timed out. The bound is what was in flight.
    duplicated = {i for i, count in accepted.items() if count > 1}
    assert max(accepted.values()) <= 2
    assert len(duplicated) <= MAX_CONCURRENT
