"""The global rate in real `ses-sender worker` processes, against the SES stub enforcing a
strict per-second window as SES does (429 above it): 1, 2 and 4 workers together reach the
rate and never trip it; SES's latency, throttle and 5xx storms, and the account's own limits.

The stub runs in a process of its own here, so its answers are not held up by the test's own
event loop (see tests/support/ses_stub_process.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from ses_sender.models import RequestStatus
from ses_sender.runtime import Runtime
from tests.support.api import post_topic
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
RUN_S = 15  # seconds of sending at the rate: what start-up costs is a small share of it
# The schedule offers 99.6% of the rate at most (⌊rate⌋ slots per 1.004 s); bench/pacing.py
# measures what is reached. On a shared 2-CPU machine a busy spell makes a fifth of the sends
# several milliseconds late, each paid back on the schedule, and a clean-clone run of the suite
# reached 95.8%. This floor is what only a fault goes under: a halved rate costs a run 8%.
MIN_SHARE = 0.95


@pytest.fixture
async def ses() -> AsyncIterator[SesStubProcess]:
    with run_ses_stub_process() as stub:
        yield stub
        await stub.close()


def share_of_rate(accepted: list[dict[str, Any]], rate: float) -> float:
    """Accepted sends per second from the first to the last, as a share of `rate`."""
    times: list[float] = sorted(record["at"] for record in accepted)
    return (len(times) - 1) / (times[-1] - times[0]) / rate


@dataclass(frozen=True)
class Campaign:
    ids: list[int]
    accepted: list[dict[str, Any]]  # SES's records of the sends it took
    pacing: list[str]  # what each worker logged of its pacing as it stopped


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
    sent, stop them cleanly; check SES took each email exactly once.

    Queued after start-up: a Python process starting takes a CPU for a second, and on a small
    machine that delays the stub's stamps of what the others send meanwhile.
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
    accepted = [record for record in received if record["status"] == 200]
    per_request = accepted_per_request_of(accepted)
    assert set(per_request) == set(ids)
    assert set(per_request.values()) == {1}
    output = [line for process in processes for line in process.output().splitlines()]
    pacing = [line for line in output if " pacing: " in line]
    return Campaign(ids, accepted, pacing)


async def assert_paced(
    ses: SesStubProcess, campaign: Campaign, rate: float = RATE
) -> dict[str, int]:
    """No throttle, and at least `MIN_SHARE` of `rate`; the stub's counts."""
    counts = await ses.counts()
    share = share_of_rate(campaign.accepted, rate)
    pacing = "\n".join(
        [f"{share:.2%} of the rate, {counts['throttled']} throttled", *campaign.pacing]
    )
    assert counts["throttled"] == 0, pacing
    assert share >= MIN_SHARE, pacing
    return counts


async def strict_window(ses: SesStubProcess, rate: float) -> None:
    await ses.configure({**ROOMY_ACCOUNT, "max_per_second": rate})


@pytest.mark.timeout(180)
@pytest.mark.parametrize("workers", [1, 2, 4])
async def test_workers_together_reach_the_rate_and_never_exceed_it(
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

    # On two shared CPUs, 16 runs here reached 98.2-98.9% of the rate and one, in a busy
    # spell, 95.8%; 3 of the 17 drew one throttle, where a send reached the stub more than the
    # schedule's 10 ms margin after its slot (the email sent again a second later, the rate
    # trimmed by a tenth for a second). The figures and why: docs/benchmarks.md, "Pacing".
    await assert_paced(ses, campaign)


@pytest.mark.timeout(180)
async def test_in_flight_follows_ses_latency_to_reach_the_rate(
    database_url: str,
    live_runtime: Runtime,
    live_client: httpx.AsyncClient,
    ses: SesStubProcess,
    start_worker: StartWorker,
) -> None:
    await strict_window(ses, RATE)
    await ses.configure({"latency_s": 0.1})
    env = worker_env(database_url, ses, EMAIL_RATE=str(RATE), MAX_CONCURRENT="1000")

    campaign = await send_campaign(
        live_runtime, live_client, ses, start_worker, env, workers=1, count=RATE * RUN_S
    )

    counts = await assert_paced(ses, campaign)
    # 100/s at 100 ms is ~10 on the wire: what the worker keeps in flight follows that, not
    # MAX_CONCURRENT (which is also what a kill -9 could duplicate).
    assert 8 <= counts["peak_in_flight"] <= 40


STORM = 60


@pytest.mark.timeout(180)
@pytest.mark.parametrize(
    ("storm", "attempts_it_costs", "throttles_seen"),
    [
        # A throttle is not the email's fault: it costs no attempt, and the rate backs off.
        ("throttled", 0, STORM),
        # A 5xx is retried with backoff, each retry an attempt, up to MAX_ATTEMPTS.
        ("server_error", STORM, 0),
    ],
)
async def test_a_storm_of_errors_fails_nothing(
    storm: str,
    attempts_it_costs: int,
    throttles_seen: int,
    database_url: str,
    live_runtime: Runtime,
    live_client: httpx.AsyncClient,
    ses: SesStubProcess,
    start_worker: StartWorker,
) -> None:
    await strict_window(ses, RATE)
    await ses.fail_next(storm, times=STORM)
    env = worker_env(database_url, ses, EMAIL_RATE=str(RATE), MAX_ATTEMPTS="8")

    campaign = await send_campaign(
        live_runtime, live_client, ses, start_worker, env, workers=2, count=300
    )

    rows = await requests_by_id(live_runtime)
    assert {rows[i].status for i in campaign.ids} == {RequestStatus.SENT}
    assert sum(rows[i].attempts for i in campaign.ids) == 300 + attempts_it_costs
    # The scripted ones, and none from the window after them.
    assert (await ses.counts())["throttled"] == throttles_seen


@pytest.mark.timeout(180)
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

    await assert_paced(ses, campaign, max_send_rate)


@pytest.mark.timeout(180)
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
    await asyncio.sleep(2)
    assert (await ses.counts())["received"] == 0  # GetAccount said so before the first send

    await ses.configure({"sending_enabled": True})

    async def campaign_sent() -> bool:
        return await all_sent(live_runtime, ids)

    await wait_until(campaign_sent, "the campaign sent after the account came back", within_s=30)
    assert await worker.stop() == 0, worker.output()
    assert not (await live_client.get("/health")).json()["sending"]["paused"]
    assert "sending paused (account)" in worker.output()
    assert "sending resumed (account)" in worker.output()
