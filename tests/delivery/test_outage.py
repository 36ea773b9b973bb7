"""SES failing every send is an outage: all sending pauses, no email uses an attempt for it, and
sending resumes by itself once SES answers. An email failing alone is still its own failure.
Against the SES stub and a real database, with a worker as the process wires it."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from sqlalchemy import update

from ses_sender.composition import Runtime, build_outage_watch, build_pause_gate, build_worker
from ses_sender.delivery import worker as worker_module
from ses_sender.delivery.outage import ProviderOutage
from ses_sender.delivery.pacer import Pacer
from ses_sender.delivery.pause_gate import CHECK_INTERVAL_S
from ses_sender.delivery.schedule import DatabaseSchedule
from ses_sender.delivery.worker import Worker
from ses_sender.models import Request, RequestStatus
from ses_sender.sending.service import (
    SES_UNREACHABLE,
    SendingPauses,
    active_pauses,
    pause_sending,
)
from ses_sender.transports.base import TransientError, Transport
from ses_sender.transports.ses import SesTransport
from tests.support.polling import wait_until, while_running
from tests.support.rows import queue_emails, requests_by_id
from tests.support.ses_stub import SesStub
from tests.support.worker_processes import roomy_account
from tests.support.workers import RecordingTransport

MAX_ATTEMPTS = 2  # an outage that used attempts would fail emails after two tries
FAILURES_TO_PAUSE = 3


Engine = tuple[Worker, ProviderOutage]


@pytest.fixture
def make_engine(
    live_runtime: Runtime, ses: SesTransport, monkeypatch: pytest.MonkeyPatch
) -> Callable[[Transport], Engine]:
    """A worker sending through `transport` and the outage watch probing the stub's SES."""
    # Emails backing off are made due by the tests; the worker looks for them every 50 ms.
    monkeypatch.setattr(worker_module, "POLL_INTERVAL_S", 0.05)

    def build(transport: Transport) -> Engine:
        settings = live_runtime.settings.model_copy(
            update={
                "max_concurrent": 4,
                "lease_s": 60.0,
                "send_timeout_s": 5.0,
                "max_attempts": MAX_ATTEMPTS,
                "ses_outage_failures": FAILURES_TO_PAUSE,
                "ses_outage_probe_s": 0.1,
                "ses_outage_probe_max_s": 0.4,
            }
        )
        runtime = dataclasses.replace(live_runtime, settings=settings)
        pauses = build_pause_gate(runtime)
        outage = build_outage_watch(runtime, ses, pauses)
        pacer = Pacer(1_000.0, schedule=DatabaseSchedule(runtime.sessionmaker))
        worker = build_worker(runtime, transport, pacer, pauses=pauses, outage=outage)
        return worker, outage

    return build


async def pause_names(runtime: Runtime) -> list[str]:
    async with runtime.sessionmaker() as session:
        return [pause.name for pause in await active_pauses(session, now=datetime.now(UTC))]


async def make_due(runtime: Runtime) -> None:
    """Skip backoff waits: what is queued is due now."""
    async with runtime.sessionmaker() as session, session.begin():
        await session.execute(
            update(Request)
            .where(Request.status == RequestStatus.CREATED)
            .values(due_at=datetime.now(UTC))
        )


async def test_ses_failing_every_send_pauses_sending_uses_no_attempt_and_resumes_by_itself(
    live_runtime: Runtime,
    ses_stub: SesStub,
    ses: SesTransport,
    make_engine: Callable[[Transport], Engine],
) -> None:
    roomy_account(ses_stub)
    ses_stub.configure({"unavailable": True})
    worker, outage = make_engine(ses)
    ids = await queue_emails(live_runtime, [f"r{i}@example.com" for i in range(12)])
    task = asyncio.create_task(worker.run())
    probe = asyncio.create_task(outage.run())

    async def paused() -> bool:
        return SES_UNREACHABLE in await pause_names(live_runtime)

    await wait_until(while_running(task, paused), "sending paused for the outage")
    checks = ses_stub.account_checks

    async def probed_long() -> bool:
        return ses_stub.account_checks >= checks + 3

    # Far longer than two attempts of each email would last, were they counted.
    await wait_until(while_running(task, probed_long), "three probes while SES is away")
    tried = len(ses_stub.received)
    rows = await requests_by_id(live_runtime)
    assert {rows[i].status for i in ids} <= {RequestStatus.CREATED, RequestStatus.PROCESSING}

    ses_stub.configure({"unavailable": False})

    async def all_sent() -> bool:
        await make_due(live_runtime)
        rows = await requests_by_id(live_runtime)
        return all(rows[i].status == RequestStatus.SENT for i in ids)

    await wait_until(while_running(task, all_sent), "every email sent once SES is back")
    worker.stop()
    outage.stop()
    await asyncio.wait_for(asyncio.gather(task, probe), 10)

    assert await pause_names(live_runtime) == []
    assert tried < 2 * len(ids)  # paused: not every email tried twice
    accepted = [record["to"][0] for record in ses_stub.accepted]
    assert sorted(accepted) == sorted(f"r{i}@example.com" for i in range(12))  # once each
    rows = await requests_by_id(live_runtime)
    # Only the first failure of the run counted an attempt: it could have been its own.
    assert sum(rows[i].attempts for i in ids) <= len(ids) + 1


async def test_an_email_failing_alone_is_given_up_after_its_attempts(
    live_runtime: Runtime, ses_stub: SesStub, make_engine: Callable[[Transport], Engine]
) -> None:
    transport = RecordingTransport(
        failures={"down@example.com": [TransientError("HTTP 500")] * MAX_ATTEMPTS}
    )
    worker, _outage = make_engine(transport)
    ids = await queue_emails(
        live_runtime, ["down@example.com", *(f"ok{i}@example.com" for i in range(5))]
    )
    task = asyncio.create_task(worker.run())

    async def settled() -> bool:
        await make_due(live_runtime)
        rows = await requests_by_id(live_runtime)
        return all(rows[i].status in {RequestStatus.SENT, RequestStatus.FAILED} for i in ids)

    await wait_until(while_running(task, settled), "every email sent or failed")
    worker.stop()
    await asyncio.wait_for(task, 10)

    rows = await requests_by_id(live_runtime)
    assert rows[ids[0]].status == RequestStatus.FAILED
    assert rows[ids[0]].error == f"HTTP 500 (after {MAX_ATTEMPTS} attempts)"
    assert {rows[i].status for i in ids[1:]} == {RequestStatus.SENT}
    assert await pause_names(live_runtime) == []
    assert ses_stub.account_checks >= 1  # SES was asked before the email was given up


async def test_an_email_at_its_last_attempt_is_not_failed_when_ses_does_not_answer(
    live_runtime: Runtime, ses_stub: SesStub, make_engine: Callable[[Transport], Engine]
) -> None:
    # Alone in the queue, no run tells an outage: SES, asked before the email is given up,
    # does not answer.
    ses_stub.configure({"unavailable": True})
    transport = RecordingTransport(
        failures={"last@example.com": [TransientError("HTTP 503")] * 100}
    )
    worker, _outage = make_engine(transport)
    [last] = await queue_emails(live_runtime, ["last@example.com"])
    task = asyncio.create_task(worker.run())

    async def tried_past_its_attempts() -> bool:
        await make_due(live_runtime)
        return transport.begun >= MAX_ATTEMPTS + 2

    await wait_until(while_running(task, tried_past_its_attempts), "more tries than attempts")
    transport.failures.clear()  # sending works again

    async def sent() -> bool:
        await make_due(live_runtime)
        return (await requests_by_id(live_runtime))[last].status == RequestStatus.SENT

    await wait_until(while_running(task, sent), "the email sent, never failed")
    worker.stop()
    await asyncio.wait_for(task, 10)


async def test_the_probe_lifts_only_the_outage_pause(
    live_runtime: Runtime, ses: SesTransport, make_engine: Callable[[Transport], Engine]
) -> None:
    _worker, outage = make_engine(ses)
    now = datetime.now(UTC)
    async with live_runtime.sessionmaker() as session, session.begin():
        await pause_sending(session, "guardrail", "bounce rate 6%", now=now)
        await pause_sending(session, SES_UNREACHABLE, "5 emails in a row failed", now=now)
    probe = asyncio.create_task(outage.run())

    async def lifted() -> bool:
        return SES_UNREACHABLE not in await pause_names(live_runtime)

    await wait_until(while_running(probe, lifted), "the outage pause lifted")
    outage.stop()
    await asyncio.wait_for(probe, 10)

    assert await pause_names(live_runtime) == ["guardrail"]


async def test_the_probe_waits_longer_after_each_silence_and_after_a_lift_too_early(
    live_runtime: Runtime, ses_stub: SesStub, ses: SesTransport
) -> None:
    probe_waits: list[float] = []

    async def sleep(seconds: float) -> None:  # virtual time: the waits are what is tested
        if seconds != CHECK_INTERVAL_S:
            probe_waits.append(seconds)
        await asyncio.sleep(0)

    outage = ProviderOutage(
        source=ses,
        pauses=SendingPauses(),
        gate=build_pause_gate(live_runtime),
        sessionmaker=live_runtime.sessionmaker,
        clock=live_runtime.clock,
        failures_to_pause=FAILURES_TO_PAUSE,
        probe_first_s=0.3,
        probe_max_s=5.0,
        timeout_s=5.0,
        sleep=sleep,
    )

    async def pause_for_outage() -> None:
        async with live_runtime.sessionmaker() as session, session.begin():
            await SendingPauses().pause_for_outage(session, "SES away", now=datetime.now(UTC))

    async def lifted() -> bool:
        return SES_UNREACHABLE not in await pause_names(live_runtime)

    ses_stub.configure({"unavailable": True})
    await pause_for_outage()
    probe = asyncio.create_task(outage.run())

    async def three_silences() -> bool:
        return ses_stub.account_checks >= 3

    await wait_until(while_running(probe, three_silences), "three probes SES did not answer")
    ses_stub.configure({"unavailable": False})
    await wait_until(while_running(probe, lifted), "the pause lifted once SES answered")
    # As many silences as the probe met before the stub answered again: one a real round trip.
    doubling = [min(5.0, 0.3 * 2**step) for step in range(len(probe_waits) + 1)]
    first_outage = len(probe_waits)
    assert first_outage >= 4
    assert probe_waits == doubling[:first_outage]

    # Paused again before any send was answered: SES's API came back, its sending did not.
    await pause_for_outage()
    await wait_until(while_running(probe, lifted), "the pause lifted again")
    assert probe_waits[first_outage:] == [doubling[first_outage]]

    outage.answered()  # a send went out: the next outage is a new one
    await pause_for_outage()
    await wait_until(while_running(probe, lifted), "a new outage's pause lifted")
    assert probe_waits[first_outage + 1 :] == [0.3]
    outage.stop()
    await asyncio.wait_for(probe, 10)
