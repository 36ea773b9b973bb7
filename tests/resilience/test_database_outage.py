"""The database goes away from a worker mid-campaign for longer than its lease, and comes back:
every email is sent, none twice. And a worker stopped while the database is away keeps what it
could not record in its journal, says so, fails, and the next worker writes it."""

from __future__ import annotations

import time

import httpx
import pytest

from ses_sender.composition import Runtime
from ses_sender.models import RequestStatus
from tests.support.api import post_topic
from tests.support.databases import postgresql_only
from tests.support.polling import until_elapsed, wait_until
from tests.support.rows import requests_by_id
from tests.support.ses_stub import SesStub
from tests.support.worker_outage import worker_database_outage
from tests.support.worker_processes import (
    StartWorker,
    accepted_per_request,
    assert_each_sent_once,
    roomy_account,
    settled,
    until_accepted,
    until_all_sent,
    worker_env,
)

RECIPIENTS = 100
LEASE_SECONDS = 10  # the shortest allowed
OUTAGE_S = LEASE_SECONDS + 3  # longer than the lease: its rows may be claimed by others
ENV = {
    "EMAIL_RATE": "20",  # five seconds of sending: the outage comes mid-campaign
    "MAX_CONCURRENT": "10",
    "LEASE_SECONDS": str(LEASE_SECONDS),
    "SEND_TIMEOUT_SECONDS": "5",
}


@pytest.mark.timeout(240)
async def test_a_worker_cut_off_for_longer_than_its_lease_sends_nothing_twice(
    database_url: str,
    live_runtime: Runtime,
    live_client: httpx.AsyncClient,
    ses_stub: SesStub,
    start_worker: StartWorker,
) -> None:
    roomy_account(ses_stub)
    ses_stub.configure({"latency_s": 0.2})
    ids = await post_topic(live_client, "outage", RECIPIENTS)
    async with worker_database_outage(database_url) as outage:
        worker = start_worker(worker_env(outage.url, ses_stub, **ENV))
        await until_accepted(ses_stub, 20)

        await outage.begin()
        began = time.monotonic()
        await until_elapsed(began, OUTAGE_S, f"an outage of {OUTAGE_S} s")
        await outage.end()

        await until_all_sent(live_runtime, ids, "the campaign sent after the outage")
        assert await worker.stop() == 0, worker.output()
    await settled(ses_stub)

    assert_each_sent_once(ses_stub, ids)


@postgresql_only  # another worker takes the rows over: workers scale out over PostgreSQL
@pytest.mark.timeout(300)
async def test_rows_another_worker_took_over_are_not_sent_by_the_worker_cut_off(
    database_url: str,
    live_runtime: Runtime,
    live_client: httpx.AsyncClient,
    ses_stub: SesStub,
    start_worker: StartWorker,
) -> None:
    roomy_account(ses_stub)
    ses_stub.configure({"latency_s": 0.2})
    ids = await post_topic(live_client, "takeover", RECIPIENTS)
    async with worker_database_outage(database_url) as outage:
        cut_off = start_worker(worker_env(outage.url, ses_stub, **ENV))
        await until_accepted(ses_stub, 20)
        await outage.begin()
        rows = await requests_by_id(live_runtime)
        held = {i for i in ids if rows[i].status == RequestStatus.PROCESSING}
        other = start_worker(worker_env(database_url, ses_stub, **ENV))

        # The other worker sends the rest, and, once their lease ran out, the cut-off worker's.
        await until_all_sent(live_runtime, ids, "the campaign sent by the other worker")
        await outage.end()
        # Stopped with the database back, the cut-off worker writes what it still holds (or it
        # would exit 1): whether its lease renewal or its recorder reaches the database first
        # is a race with no log line to wait for.
        assert await cut_off.stop() == 0, cut_off.output()
        assert await other.stop() == 0, other.output()
    await settled(ses_stub)

    accepted = accepted_per_request(ses_stub)
    assert set(accepted) == set(ids), "lost"
    # What the cut-off worker had sent and could not record before its lease ran out looks,
    # to the others, like the sends of a killed worker: the same bound.
    duplicated = {i for i, count in accepted.items() if count > 1}
    assert max(accepted.values()) <= 2
    assert duplicated <= held
    assert len(duplicated) <= int(ENV["MAX_CONCURRENT"])


# On SQLite the outage is a held lock, and each write waits out the 30 s busy timeout before it
# fails: longer than a stop may take. The journal itself is tested on both (tests/delivery).
@postgresql_only
@pytest.mark.timeout(240)
async def test_a_worker_stopped_while_the_database_is_away_journals_what_it_sent(
    database_url: str,
    live_runtime: Runtime,
    live_client: httpx.AsyncClient,
    ses_stub: SesStub,
    start_worker: StartWorker,
) -> None:
    roomy_account(ses_stub)
    ses_stub.configure({"latency_s": 1.0})  # sends on the wire when the database goes
    ids = await post_topic(live_client, "journal", RECIPIENTS)
    async with worker_database_outage(database_url) as outage:
        env = worker_env(outage.url, ses_stub, **ENV)
        worker = start_worker(env)
        await until_accepted(ses_stub, 20)
        await outage.begin()

        async def unrecorded_outcomes() -> bool:
            return "journal" in worker.output() or "outcomes failed" in worker.output()

        await wait_until(unrecorded_outcomes, "outcomes the database would not take")
        assert await worker.stop() == 1, worker.output()
        stopped = [line for line in worker.output().splitlines() if "the worker stopped" in line]
        assert len(stopped) == 1, worker.output()
        assert "kept in the outcome journal" in stopped[0]
        await outage.end()

        restarted = start_worker(env)

        await until_all_sent(live_runtime, ids, "the campaign sent after the restart")
        assert await restarted.stop() == 0, restarted.output()
    await settled(ses_stub)

    assert "had journaled" in restarted.output()
    assert_each_sent_once(ses_stub, ids)
