"""The disk under a SQLite database fills up mid-campaign: the worker cannot record what it
sent, keeps it in its outcome journal (on another disk), and, stopped before the disk is freed,
says so and fails; the next worker writes the journal first, and every email is sent once.
`/health` answers 503 while the database takes no write. (A full disk is SQLite's outage; on
PostgreSQL the same paths are taken by a cut connection: test_database_outage.py.)"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from ses_sender.composition import create_app
from tests.support.api import post_topic
from tests.support.clock import FakeClock
from tests.support.databases import sqlite_only
from tests.support.outages import database_outage
from tests.support.polling import wait_until
from tests.support.ses_stub import SesStub
from tests.support.settings import API_KEY
from tests.support.worker_processes import (
    StartWorker,
    assert_each_sent_once,
    roomy_account,
    settled,
    until_accepted,
    until_all_sent,
    worker_env,
)

RECIPIENTS = 60


@sqlite_only
@pytest.mark.timeout(240)
async def test_a_full_disk_loses_no_outcome_and_sends_nothing_twice(
    backend: str,
    database_url: str,
    tmp_path: Path,
    clock: FakeClock,
    ses_stub: SesStub,
    start_worker: StartWorker,
) -> None:
    roomy_account(ses_stub)
    ses_stub.configure({"latency_s": 0.3})  # sends on the wire when the disk fills
    async with (
        database_outage(backend, database_url, tmp_path, clock) as outage,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=create_app(outage.runtime)),
            base_url="http://testserver",
            headers={"x-api-key": API_KEY},
        ) as api,
    ):
        assert outage.runtime.settings.database_url is not None
        env = worker_env(
            outage.runtime.settings.database_url,
            ses_stub,
            EMAIL_RATE="20",
            MAX_CONCURRENT="10",
            # Emails claimed and not sent when the worker stopped could not be given back on
            # the full disk: they wait for their lease to run out.
            LEASE_SECONDS="10",
            SEND_TIMEOUT_SECONDS="5",
            OUTCOME_JOURNAL_DIR=str(tmp_path / "journal"),  # not on the full disk
        )
        ids = await post_topic(api, "full-disk", RECIPIENTS)
        worker = start_worker(env)

        await until_accepted(ses_stub, 15)
        await outage.start()

        async def unhealthy() -> bool:
            return (await api.get("/health")).status_code == 503

        await wait_until(unhealthy, "/health to see the full disk")

        async def unrecorded_outcomes() -> bool:
            return "outcomes failed" in worker.output()

        await wait_until(unrecorded_outcomes, "outcomes the full disk would not take")
        assert await worker.stop() == 1, worker.output()
        assert "kept in the outcome journal" in worker.output()
        await outage.end()

        restarted = start_worker(env)

        await until_all_sent(outage.runtime, ids, "the campaign sent after the disk was freed")
        assert await restarted.stop() == 0, restarted.output()
        assert (await api.get("/health")).status_code == 200
    await settled(ses_stub)

    assert "had journaled" in restarted.output()
    assert_each_sent_once(ses_stub, ids)
