"""The global rate in real `ses-sender worker` processes over one PostgreSQL, against the SES
stub enforcing a strict per-second window as SES does (429 above it): what must hold however
busy the machine is.

- Every email is accepted by SES exactly once, and none is lost, with 1, 2 and 4 workers,
  through throttle and 5xx storms (the latter an SES outage: sending pauses until a probe
  finds SES back), and when the account's own MaxSendRate is below ours.
- No one-second window holds more than the rate plus one request. The window is judged on
  the stub's own record of every request it received, whatever it answered, stamped with the
  time the kernel received it (tests/support/stamped_http.py), so a pause of the stub's
  process cannot bunch them. The one request of slack: the schedule leaves a 4 ms margin in
  each window for sends it cannot pay back (WINDOW_S in ses_sender/delivery/pacer.py), and a
  send held up longer than that (a worker off the CPU on a shared machine) shifts only the
  slots reserved after it, so one late request can meet the next second's first one.

How close the workers come to the rate, and that they draw no throttle at all, are figures
of a quiet machine, not properties: `make bench-pacing` (bench/pacing.py) measures both, with
the most requests in any second and the most in flight, and docs/benchmarks.md keeps them.

PostgreSQL only: several worker processes share the rate through the database, which SQLite
is not for (see test_crash_recovery.py). The stub runs in a process of its own, so its answers
are not held up by the test's own event loop (tests/support/ses_stub_process.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from ses_sender.composition import Runtime
from ses_sender.models import RequestStatus
from tests.support.api import post_topic
from tests.support.databases import postgresql_only
from tests.support.pacing import max_in_any_window
from tests.support.polling import wait_until
from tests.support.rows import requests_by_id
from tests.support.ses_stub_process import SesStubProcess, run_ses_stub_process
from tests.support.worker_processes import (
    ROOMY_ACCOUNT,
    StartWorker,
    accepted_per_request_of,
    all_sent,
    worker_env,
)

RATE = 100
RUN_S = 3  # seconds of sending at the rate: enough windows to judge, nothing to measure
LATENCY_S = 0.05  # SES's answer, as the bench has it: several sends in flight at once


@pytest.fixture
async def ses() -> AsyncIterator[SesStubProcess]:
    with run_ses_stub_process() as stub:
        yield stub
        await stub.close()


@dataclass(frozen=True)
class Campaign:
    ids: list[int]
    received: list[dict[str, Any]]  # SES's record of every request, whatever it answered
    pacing: str  # what each worker logged of its pacing as it stopped, to show on a failure


async def send_campaign(
    runtime: Runtime,
    client: httpx.AsyncClient,
    ses: SesStubProcess,
    start_worker: StartWorker,
    env: dict[str, str],
    *,
    workers: int,
    count: int,
) -> Campaign:
    """Start `workers` processes, queue `count` emails once they are up, run until all are
    sent, stop them cleanly; check SES took each email exactly once and none was lost.

    Queued after start-up: a Python process starting takes a CPU for a second, and the
    campaign should be paced by workers that are all running.
    """
    processes = [start_worker(env) for _ in range(workers)]

    async def all_started() -> bool:
        return all("sending through" in process.output() for process in processes)

    await wait_until(all_started, f"{workers} workers started", within_s=60)
    ids = await post_topic(client, "campaign", count)

    async def campaign_sent() -> bool:
        return await all_sent(runtime, ids)

    await wait_until(campaign_sent, f"{count} emails sent", within_s=120)
    for process in processes:
        assert await process.stop() == 0, process.output()
    received = await ses.received()
    per_request = accepted_per_request_of([r for r in received if r["status"] == 200])
    assert set(per_request) == set(ids)  # none lost
    assert set(per_request.values()) == {1}  # none twice
    output = [line for process in processes for line in process.output().splitlines()]
    return Campaign(ids, received, "\n".join(line for line in output if " pacing: " in line))


def assert_within_the_rate(campaign: Campaign, rate: float) -> None:
    """No one-second window holds more than `rate` requests plus one (see the module's
    docstring), counting every request SES received, refused or not."""
    most = max_in_any_window([record["at"] for record in campaign.received])
    assert most <= rate + 1, f"{most} requests in one second at {rate}/s\n{campaign.pacing}"


async def strict_window(ses: SesStubProcess, rate: float) -> None:
    await ses.configure({**ROOMY_ACCOUNT, "max_per_second": rate, "latency_s": LATENCY_S})


@postgresql_only
@pytest.mark.timeout(120)
@pytest.mark.parametrize("workers", [1, 2, 4])
async def test_workers_together_send_each_email_once_within_the_rate(
    workers: int,
    database_url: str,
    live_runtime: Runtime,
    live_client: httpx.AsyncClient,
    ses: SesStubProcess,
    start_worker: StartWorker,
) -> None:
    await strict_window(ses, RATE)
    env = worker_env(database_url, ses, EMAIL_RATE=str(RATE))

    campaign = await send_campaign(
        live_runtime, live_client, ses, start_worker, env, workers=workers, count=RATE * RUN_S
    )

    assert_within_the_rate(campaign, RATE)


STORM = 60


STORM_WORKERS = 2
FAILURES_TO_PAUSE = 5


@postgresql_only
@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("storm", "status", "most_attempts_it_costs"),
    [
        # A throttle is not the email's fault: it costs no attempt, and the rate backs off.
        ("throttled", 429, 0),
        # 5xx to every send is an SES outage: all sending pauses until SES answers a probe.
        # Only the first failure of each run costs an attempt (alone, it could be the email's
        # own): at most one per worker for every SES_OUTAGE_FAILURES failures.
        ("server_error", 500, STORM_WORKERS * (STORM // FAILURES_TO_PAUSE + 1)),
    ],
)
async def test_a_storm_of_errors_fails_nothing(
    storm: str,
    status: int,
    most_attempts_it_costs: int,
    database_url: str,
    live_runtime: Runtime,
    live_client: httpx.AsyncClient,
    ses: SesStubProcess,
    start_worker: StartWorker,
) -> None:
    count = 2 * RATE
    await strict_window(ses, RATE)
    await ses.fail_next(storm, times=STORM)
    env = worker_env(
        database_url,
        ses,
        EMAIL_RATE=str(RATE),
        MAX_ATTEMPTS="8",
        SES_OUTAGE_FAILURES=str(FAILURES_TO_PAUSE),
        SES_OUTAGE_PROBE_SECONDS="0.2",
        SES_OUTAGE_PROBE_MAX_SECONDS="1",
    )

    campaign = await send_campaign(
        live_runtime, live_client, ses, start_worker, env, workers=STORM_WORKERS, count=count
    )

    rows = await requests_by_id(live_runtime)
    assert {rows[i].status for i in campaign.ids} == {RequestStatus.SENT}
    # Throttles from the window, if a busy machine draws any, cost no attempt either.
    assert count <= sum(rows[i].attempts for i in campaign.ids) <= count + most_attempts_it_costs
    assert sum(record["status"] == status for record in campaign.received) >= STORM
    assert_within_the_rate(campaign, RATE)


@postgresql_only
@pytest.mark.timeout(120)
async def test_the_accounts_max_send_rate_caps_every_worker(
    database_url: str,
    live_runtime: Runtime,
    live_client: httpx.AsyncClient,
    ses: SesStubProcess,
    start_worker: StartWorker,
) -> None:
    max_send_rate = 20
    await strict_window(ses, max_send_rate)
    await ses.configure({"max_send_rate": max_send_rate})
    env = worker_env(database_url, ses, EMAIL_RATE="1000")

    campaign = await send_campaign(
        live_runtime, live_client, ses, start_worker, env, workers=2, count=max_send_rate * RUN_S
    )

    # At the 1,000/s asked for, the campaign would have gone out within a tenth of a second.
    assert_within_the_rate(campaign, max_send_rate)


@pytest.mark.timeout(120)
async def test_sending_resumes_by_itself_when_ses_enables_the_account_again(
    database_url: str,
    live_runtime: Runtime,
    live_client: httpx.AsyncClient,
    ses: SesStubProcess,
    start_worker: StartWorker,
) -> None:
    await ses.configure({**ROOMY_ACCOUNT, "sending_enabled": False})
    env = worker_env(database_url, ses, EMAIL_RATE=str(RATE), ACCOUNT_CHECK_SECONDS="1")
    ids = await post_topic(live_client, "campaign", 50)
    worker = start_worker(env)

    async def paused_in_health() -> bool:
        health = (await live_client.get("/health")).json()
        return bool(health["sending"]["paused"])

    await wait_until(paused_in_health, "the account pause in /health", within_s=30)
    checks = (await ses.counts())["account_checks"]

    async def checked_twice_more() -> bool:
        return (await ses.counts())["account_checks"] >= checks + 2

    # Paused, the worker keeps asking SES about the account and sends nothing meanwhile.
    await wait_until(checked_twice_more, "two more account checks while paused", within_s=30)
    assert (await ses.counts())["received"] == 0  # GetAccount said so before the first send

    await ses.configure({"sending_enabled": True})

    async def campaign_sent() -> bool:
        return await all_sent(live_runtime, ids)

    await wait_until(campaign_sent, "the campaign sent after the account came back", within_s=30)
    assert await worker.stop() == 0, worker.output()
    assert not (await live_client.get("/health")).json()["sending"]["paused"]
    assert "sending paused (account)" in worker.output()
    assert "sending resumed (account)" in worker.output()
