"""A real `ses-sender worker` serves its own metrics on METRICS_PORT: what it sent, read by
Prometheus's scrape, and nothing else on that port."""

from __future__ import annotations

import httpx
import pytest

from ses_sender.composition import Runtime
from tests.support.api import post_topic
from tests.support.metrics import Scrape, parse
from tests.support.polling import wait_until
from tests.support.ports import free_port
from tests.support.ses_stub import SesStub
from tests.support.worker_processes import StartWorker, all_sent, roomy_account, worker_env

METRICS_KEY = "metrics-key-0123456789"
EMAILS = 30


@pytest.mark.timeout(240)
async def test_a_worker_serves_its_metrics_on_metrics_port(
    database_url: str,
    live_runtime: Runtime,
    live_client: httpx.AsyncClient,
    ses_stub: SesStub,
    start_worker: StartWorker,
) -> None:
    roomy_account(ses_stub)
    port = free_port()
    worker = start_worker(
        worker_env(
            database_url,
            ses_stub,
            EMAIL_RATE="100",
            METRICS_PORT=str(port),
            API_KEY=METRICS_KEY,
        )
    )
    ids = await post_topic(live_client, "metrics", EMAILS)

    async def sent() -> bool:
        return await all_sent(live_runtime, ids)

    await wait_until(sent, "every email sent by the worker process", within_s=120)

    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as prometheus:

        async def scraped() -> Scrape | None:
            if worker.process.poll() is not None:
                pytest.fail(f"the worker exited:\n{worker.output()}")
            try:
                response = await prometheus.get(
                    "/metrics", headers={"Authorization": f"Bearer {METRICS_KEY}"}
                )
            except httpx.TransportError:
                return None
            assert response.status_code == 200, response.text
            return parse(response.text)

        metrics = await wait_until(scraped, "the worker's metrics port to answer")
        assert metrics is not None
        assert (await prometheus.get("/metrics")).status_code == 401
        assert (await prometheus.get("/v1/topics/metrics")).status_code == 404

    # A fresh process: its counters hold exactly what it did.
    assert metrics.value("ses_sender_emails_sent_total") == EMAILS
    assert metrics.value("ses_sender_send_duration_seconds_count") == EMAILS
    assert metrics.value("ses_sender_throttles_total") == 0
    assert metrics.value("ses_sender_queue_depth", status="queued") == 0
    assert metrics.value("ses_sender_queue_depth", status="processing") == 0
    assert metrics.value("ses_sender_target_rate_emails_per_second") == 100
    assert metrics.value("process_cpu_seconds_total") > 0
    assert await worker.stop() == 0
