"""SIGTERM with sends on the wire and no grace (SHUTDOWN_GRACE_SECONDS=0): the cut-off sends
are recorded sent, unconfirmed, and a restarted worker sends the rest; nothing twice."""

from __future__ import annotations

import httpx
import pytest

from ses_sender.composition import Runtime
from ses_sender.delivery.repository import UNCONFIRMED_ERROR
from ses_sender.models import RequestStatus
from tests.support.api import post_topic
from tests.support.polling import wait_until
from tests.support.rows import requests_by_id
from tests.support.ses_stub import SesStub
from tests.support.worker_processes import (
    StartWorker,
    accepted_per_request,
    roomy_account,
    settled,
    until_all_sent,
    worker_env,
)

RECIPIENTS = 60
MAX_CONCURRENT = 10


@pytest.mark.timeout(240)
async def test_sigterm_with_no_grace_sends_nothing_twice(
    database_url: str,
    live_runtime: Runtime,
    live_client: httpx.AsyncClient,
    ses_stub: SesStub,
    start_worker: StartWorker,
) -> None:
    roomy_account(ses_stub)
    ses_stub.configure({"latency_s": 3.0})  # every send stays on the wire a while
    env = worker_env(
        database_url,
        ses_stub,
        EMAIL_RATE="50",
        MAX_CONCURRENT=str(MAX_CONCURRENT),
        SHUTDOWN_GRACE_SECONDS="0",
        SEND_TIMEOUT_SECONDS="10",
        LEASE_SECONDS="20",
    )
    ids = await post_topic(live_client, "no-grace", RECIPIENTS)
    worker = start_worker(env)

    async def sends_on_the_wire() -> bool:
        return ses_stub.in_flight >= MAX_CONCURRENT // 2

    await wait_until(sends_on_the_wire, "sends on the wire", within_s=120)
    assert await worker.stop() == 0, worker.output()
    await settled(ses_stub)

    rows = await requests_by_id(live_runtime)
    assert {rows[i].status for i in ids} <= {RequestStatus.CREATED, RequestStatus.SENT}
    unconfirmed = {i for i in ids if rows[i].error == UNCONFIRMED_ERROR}
    assert unconfirmed, worker.output()
    assert "still on the wire when the shutdown grace (0 s) ended" in worker.output()

    ses_stub.configure({"latency_s": 0.0})
    restarted = start_worker(env)

    await until_all_sent(live_runtime, ids, "the campaign sent after the restart")
    assert await restarted.stop() == 0, restarted.output()
    await settled(ses_stub)

    accepted = accepted_per_request(ses_stub)
    assert set(accepted) == set(ids)  # the stub took every cut-off send: none lost
    assert set(accepted.values()) == {1}
