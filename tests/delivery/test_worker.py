from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from ses_sender.composition import Runtime, build_side_tasks
from ses_sender.db.engine import create_engine, create_sessionmaker
from ses_sender.delivery import retry as retry_module
from ses_sender.delivery import worker as worker_module
from ses_sender.delivery.claimer import CONTENT_CACHE_SIZE
from ses_sender.delivery.pacer import Pacer
from ses_sender.delivery.schedule import DatabaseSchedule
from ses_sender.delivery.worker import Worker
from ses_sender.models import Request, RequestStatus
from ses_sender.sending.service import active_pauses, pause_sending, resume_sending
from ses_sender.ses_tags import REQUEST_ID_TAG, TOPIC_TAG
from ses_sender.transports.base import (
    AccountPausedError,
    OutgoingEmail,
    PermanentError,
    ThrottledError,
    TransientError,
)
from tests.support.pacing import max_in_any_window
from tests.support.polling import wait_until, while_running
from tests.support.rows import queue_emails, requests_by_id
from tests.support.spies import spy
from tests.support.workers import RecordingTransport, WorkerFactory


async def run_until_sent(
    runtime: Runtime, worker_task: asyncio.Task[None], ids: list[int], status: RequestStatus
) -> dict[int, Request]:
    async def done() -> bool:
        rows = await requests_by_id(runtime)
        return all(rows[i].status == status for i in ids)

    await wait_until(while_running(worker_task, done), f"requests {ids} {status.name}")
    return await requests_by_id(runtime)


async def stop(worker_task: asyncio.Task[None], worker: object) -> None:
    worker.stop()  # type: ignore[attr-defined]
    await asyncio.wait_for(worker_task, 10)


async def test_every_queued_email_is_sent_once_and_recorded(
    live_runtime: Runtime, make_worker: WorkerFactory
) -> None:
    transport = RecordingTransport()
    worker = make_worker(transport)
    ids = await queue_emails(live_runtime, [f"user{i}@example.com" for i in range(25)], topic="t/1")
    task = asyncio.create_task(worker.run())

    rows = await run_until_sent(live_runtime, task, ids, RequestStatus.SENT)
    await stop(task, worker)

    assert sorted(email.request_id for email in transport.sent) == ids
    for request_id in ids:
        assert rows[request_id].message_id == f"ses-{request_id}"
        assert rows[request_id].sent_at is not None
        assert rows[request_id].attempts == 1
    email = transport.sent[0]
    assert email.sender == "sender@example.com"
    assert email.subject == "Hello"
    assert email.text == "Hi"
    # Links tracked (TRACK_CLICKS is on by default): the body as parsed, the hidden honeypot
    # link, then the pixel.
    assert email.html.startswith(
        '<html><head></head><body><p>Hi</p><a href="https://mail.example.com/v1/c/'
    )
    assert email.html.endswith("</body></html>")
    token = email.html.split("/v1/events/open?t=", 1)[1].split('"', 1)[0]
    assert live_runtime.tokens.open_request_id(token) == email.request_id
    assert "requestId" not in email.html  # a sealed token, not the seed's readable id
    assert dict(email.tags) == {REQUEST_ID_TAG: str(email.request_id), TOPIC_TAG: "t_1"}
    # RFC 8058 one-click unsubscribe; the link's token is sealed, not the id in the clear.
    [(name, value), post] = email.headers
    prefix = "<https://mail.example.com/v1/unsubscribe/"
    assert name == "List-Unsubscribe"
    assert value.startswith(prefix)
    assert value.endswith(">")
    assert live_runtime.tokens.unsubscribe_request_id(value[len(prefix) : -1]) == email.request_id
    assert post == ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click")


async def test_rows_that_become_due_are_picked_up_at_the_next_poll_without_a_wake_up(
    live_runtime: Runtime, make_worker: WorkerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    transport = RecordingTransport()
    worker = make_worker(transport)
    polls: list[float] = []
    poll_ends = asyncio.Event()

    async def poll(seconds: float) -> None:  # the idle wait, in virtual time
        polls.append(seconds)
        await poll_ends.wait()

    monkeypatch.setattr(worker, "_sleep", poll)
    task = asyncio.create_task(worker.run())

    async def idle() -> bool:
        return bool(polls)

    await wait_until(while_running(task, idle), "the worker idle, waiting for work")
    ids = await queue_emails(live_runtime, ["late@example.com"])  # no wake-up call
    assert transport.sent == []  # nothing but the poll can show it the row

    poll_ends.set()
    await run_until_sent(live_runtime, task, ids, RequestStatus.SENT)
    await stop(task, worker)

    assert polls[0] == worker_module.POLL_INTERVAL_S <= 1.0


async def test_future_rows_wait_for_their_time(
    live_runtime: Runtime, make_worker: WorkerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    transport = RecordingTransport()
    worker = make_worker(transport)
    claims = spy(monkeypatch, worker._claimer, "claim")
    later = datetime.now(UTC) + timedelta(hours=1)
    [future] = await queue_emails(live_runtime, ["future@example.com"], due_at=later)
    now_ids = await queue_emails(live_runtime, ["now@example.com"])
    task = asyncio.create_task(worker.run())

    await run_until_sent(live_runtime, task, now_ids, RequestStatus.SENT)

    async def found_nothing_due() -> bool:
        return [] in claims.returned

    # The first claim took the email due now; one that comes back empty passed over the other.
    await wait_until(while_running(task, found_nothing_due), "a claim that found nothing due")
    await stop(task, worker)

    rows = await requests_by_id(live_runtime)
    assert rows[future].status == RequestStatus.CREATED
    assert [email.to for email in transport.sent] == ["now@example.com"]


async def test_sends_never_exceed_the_rate_in_any_second(
    live_runtime: Runtime, make_worker: WorkerFactory
) -> None:
    transport = RecordingTransport()
    worker = make_worker(transport, rate=20)
    ids = await queue_emails(live_runtime, [f"u{i}@example.com" for i in range(50)])
    task = asyncio.create_task(worker.run())

    await run_until_sent(live_runtime, task, ids, RequestStatus.SENT)
    await stop(task, worker)

    times = sorted(transport.sent_at)
    # Measured after each grant, so a busy machine's scheduling jitter is in these times; the
    # exact window is the pacer's (tests/delivery/test_pacer.py), this allows 20 ms of noise.
    assert max_in_any_window(times, window=0.98) <= 20
    # Paced, not in bursts: 50 sends at 20/s cannot take less than 49 intervals. (How close to
    # the rate a busy machine gets is `make bench-pacing`'s question, not a test's.)
    assert times[-1] - times[0] >= 49 / 20 * 0.95


async def test_permanent_errors_fail_at_once_with_the_reason(
    live_runtime: Runtime, make_worker: WorkerFactory
) -> None:
    transport = RecordingTransport(
        failures={
            "bad@example.com": [PermanentError("MessageRejected: Email address is not verified")]
        }
    )
    worker = make_worker(transport)
    [bad, good] = await queue_emails(live_runtime, ["bad@example.com", "good@example.com"])
    task = asyncio.create_task(worker.run())

    rows = await run_until_sent(live_runtime, task, [good], RequestStatus.SENT)
    rows = await run_until_sent(live_runtime, task, [bad], RequestStatus.FAILED)
    await stop(task, worker)

    assert rows[bad].error == "MessageRejected: Email address is not verified"
    assert rows[bad].message_id is None


async def test_transient_errors_are_retried_then_sent(
    live_runtime: Runtime, make_worker: WorkerFactory
) -> None:
    transport = RecordingTransport(failures={"flaky@example.com": [TransientError("HTTP 503")]})
    worker = make_worker(transport)
    [flaky] = await queue_emails(live_runtime, ["flaky@example.com"])
    task = asyncio.create_task(worker.run())

    async def requeued() -> bool:
        row = (await requests_by_id(live_runtime))[flaky]
        return row.status == RequestStatus.CREATED and row.error == "HTTP 503"

    await wait_until(while_running(task, requeued), "the failed send queued again")
    row = (await requests_by_id(live_runtime))[flaky]
    assert row.attempts == 1
    assert row.due_at > datetime.now(UTC)  # backing off
    rows = await run_until_sent(live_runtime, task, [flaky], RequestStatus.SENT)
    await stop(task, worker)

    assert rows[flaky].attempts == 2
    assert rows[flaky].error is None


async def test_transient_errors_fail_after_the_last_attempt(
    live_runtime: Runtime, make_worker: WorkerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The worker looks for due rows every 50 ms instead of every second: the test is about
    # what each attempt counts, not about how soon the worker looks.
    monkeypatch.setattr(worker_module, "POLL_INTERVAL_S", 0.05)
    transport = RecordingTransport(failures={"down@example.com": [TransientError("HTTP 500")] * 5})
    worker = make_worker(transport)
    [down] = await queue_emails(live_runtime, ["down@example.com"])
    # Skip the backoff waits: make the row due again whenever it is requeued.
    task = asyncio.create_task(worker.run())

    async def failed() -> bool:
        async with live_runtime.sessionmaker() as session, session.begin():
            await session.execute(
                update(Request)
                .where(Request.id == down, Request.status == RequestStatus.CREATED)
                .values(due_at=datetime.now(UTC))
            )
        return (await requests_by_id(live_runtime))[down].status == RequestStatus.FAILED

    await wait_until(while_running(task, failed), "the request failed for good")
    await stop(task, worker)
    row = (await requests_by_id(live_runtime))[down]
    assert row.error == "HTTP 500 (after 3 attempts)"
    assert row.attempts == 3
    assert transport.sent == []


async def test_throttles_requeue_without_failing_or_counting(
    live_runtime: Runtime, make_worker: WorkerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A throttled email is due again 50 ms later and the worker looks every 50 ms, instead of
    # a second each: the test is about what a throttle counts, not about when it is retried
    # (tests/delivery/test_retry.py has that).
    monkeypatch.setattr(retry_module, "THROTTLE_RETRY_S", 0.05)
    monkeypatch.setattr(worker_module, "POLL_INTERVAL_S", 0.05)
    transport = RecordingTransport(
        failures={"busy@example.com": [ThrottledError("TooManyRequestsException")] * 4}
    )
    worker = make_worker(transport)
    [busy] = await queue_emails(live_runtime, ["busy@example.com"])
    task = asyncio.create_task(worker.run())

    rows = await run_until_sent(live_runtime, task, [busy], RequestStatus.SENT)
    await stop(task, worker)

    assert rows[busy].attempts == 1  # four throttles, one real attempt


async def test_an_unexpected_transport_error_is_retried_not_lost(
    live_runtime: Runtime, make_worker: WorkerFactory
) -> None:
    class Exploding(RecordingTransport):
        async def send(self, email, *, on_sent=None):  # type: ignore[no-untyped-def]
            raise RuntimeError("bug in a transport")

    worker = make_worker(Exploding())
    [row_id] = await queue_emails(live_runtime, ["x@example.com"])
    task = asyncio.create_task(worker.run())

    async def requeued() -> bool:
        row = (await requests_by_id(live_runtime))[row_id]
        return row.status == RequestStatus.CREATED and row.attempts == 1

    await wait_until(while_running(task, requeued), "the request queued again")
    await stop(task, worker)
    assert (await requests_by_id(live_runtime))[row_id].error == "RuntimeError: bug in a transport"


async def test_expired_leases_are_recovered_and_sent(
    live_runtime: Runtime, make_worker: WorkerFactory
) -> None:
    [stuck] = await queue_emails(live_runtime, ["stuck@example.com"])
    async with live_runtime.sessionmaker() as session, session.begin():
        # As a worker killed mid-send leaves it: claimed, lease already over.
        await session.execute(
            update(Request)
            .where(Request.id == stuck)
            .values(
                status=RequestStatus.PROCESSING,
                attempts=1,
                lease_expires_at=datetime.now(UTC) - timedelta(seconds=1),
            )
        )
    transport = RecordingTransport()
    worker = make_worker(transport)
    housekeeping = build_side_tasks(live_runtime)["housekeeping"]
    tasks = [asyncio.create_task(worker.run()), asyncio.create_task(housekeeping.run())]

    rows = await run_until_sent(live_runtime, tasks[0], [stuck], RequestStatus.SENT)
    housekeeping.stop()
    await stop(tasks[0], worker)
    await tasks[1]

    assert rows[stuck].attempts == 2
    assert [email.request_id for email in transport.sent] == [stuck]


async def test_stop_drains_in_flight_sends_and_releases_the_rest(
    live_runtime: Runtime, make_worker: WorkerFactory
) -> None:
    transport = RecordingTransport(latency_s=0.5)
    worker = make_worker(transport, rate=10, concurrency=2)
    ids = await queue_emails(live_runtime, [f"u{i}@example.com" for i in range(10)])
    task = asyncio.create_task(worker.run())

    async def a_send_in_flight() -> bool:
        return transport.begun >= 1

    # A send on the wire (0.5 s each), the rest claimed or queued.
    await wait_until(while_running(task, a_send_in_flight), "a send on the wire")
    await stop(task, worker)

    rows = await requests_by_id(live_runtime)
    sent = [i for i in ids if rows[i].status == RequestStatus.SENT]
    assert len(sent) == len(transport.sent) >= 1, [
        (row.id, row.status, row.attempts) for row in rows.values()
    ]
    for request_id in ids:
        row = rows[request_id]
        assert row.status in (RequestStatus.SENT, RequestStatus.CREATED)
        if row.status == RequestStatus.CREATED:
            assert row.attempts == 0  # claimed, never tried: nothing counted


async def test_a_database_outage_pauses_the_worker_without_ending_it(
    make_worker: WorkerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    unreachable = create_sessionmaker(create_engine("postgresql+asyncpg://postgres@127.0.0.1:1/x"))
    sessions = 0

    def counted_sessions() -> AsyncSession:
        nonlocal sessions
        sessions += 1
        return unreachable()

    worker = make_worker(RecordingTransport(), sessionmaker=counted_sessions)
    task = asyncio.create_task(worker.run())

    def outages() -> list[logging.LogRecord]:
        return [r for r in caplog.records if r.getMessage().startswith("database unavailable")]

    async def said_once() -> bool:
        return len(outages()) == 1

    await wait_until(while_running(task, said_once), "the outage logged")
    tried = sessions

    async def tried_again() -> bool:
        return sessions >= tried + 3

    await wait_until(while_running(task, tried_again), "more tries at the database")
    assert not task.done()
    # One line with its cause, not one (with a traceback) at every try.
    [line] = outages()
    assert (line.levelno, line.exc_info) == (logging.ERROR, None)
    assert "ConnectionRefusedError" in line.getMessage() or "OSError" in line.getMessage()
    await stop(task, worker)  # and it still stops cleanly


async def test_an_outcome_that_lands_while_others_are_written_is_kept(
    live_runtime: Runtime, make_worker: WorkerFactory
) -> None:
    """Send 1 is recorded while send 2 is still on the wire; send 2's outcome must not be lost.

    The stop arrives exactly as send 2 goes on the wire, which makes the interleaving certain.
    """
    worker: Worker | None = None

    class StopAtSecondSend(RecordingTransport):
        async def send(
            self, email: OutgoingEmail, *, on_sent: Callable[[], None] | None = None
        ) -> str:
            if self.begun == 1 and worker is not None:
                worker.stop()
            return await super().send(email, on_sent=on_sent)

    transport = StopAtSecondSend(latency_s=0.5)
    pacer = Pacer(10, schedule=DatabaseSchedule(live_runtime.sessionmaker))
    worker = make_worker(transport, concurrency=2, pacer=pacer)
    ids = await queue_emails(live_runtime, [f"u{i}@example.com" for i in range(10)])

    await asyncio.wait_for(worker.run(), 10)

    rows = await requests_by_id(live_runtime)
    assert sorted(email.request_id for email in transport.sent) == ids[:2]
    assert [rows[i].status for i in ids[:2]] == [RequestStatus.SENT] * 2
    assert {(rows[i].status, rows[i].attempts) for i in ids[2:]} == {(RequestStatus.CREATED, 0)}


async def test_a_batch_with_more_contents_than_the_cache_holds(
    live_runtime: Runtime, make_worker: WorkerFactory
) -> None:
    """Transactional mail: every email its own content, more of them than the content cache."""
    transport = RecordingTransport()
    worker = make_worker(transport)
    ids = []
    for index in range(CONTENT_CACHE_SIZE + 20):
        ids += await queue_emails(
            live_runtime, [f"u{index}@example.com"], html=f"<p>Hi {index}</p>"
        )
    task = asyncio.create_task(worker.run())

    await run_until_sent(live_runtime, task, ids, RequestStatus.SENT)
    await stop(task, worker)

    assert {email.to: email.text for email in transport.sent}["u270@example.com"] == "Hi 270"


async def test_a_pause_of_all_sending_holds_every_email_until_resumed(
    live_runtime: Runtime, make_worker: WorkerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with live_runtime.sessionmaker() as session, session.begin():
        await pause_sending(session, "guardrail", "bounce rate 6%", now=datetime.now(UTC))
    transport = RecordingTransport()
    worker = make_worker(transport)
    waits = spy(monkeypatch, worker, "_wait_for_work")
    ids = await queue_emails(live_runtime, ["a@example.com", "b@example.com"])
    task = asyncio.create_task(worker.run())

    async def held_twice() -> bool:
        return len(waits.started) >= 2  # held, waited, came round and held again

    await wait_until(while_running(task, held_twice), "two rounds of the worker, held")
    assert transport.sent == []
    assert {row.status for row in (await requests_by_id(live_runtime)).values()} == {
        RequestStatus.CREATED
    }
    async with live_runtime.sessionmaker() as session, session.begin():
        assert await resume_sending(session) == ["guardrail"]

    await run_until_sent(live_runtime, task, ids, RequestStatus.SENT)
    await stop(task, worker)


async def test_an_account_level_stop_pauses_all_sending_and_says_why(
    live_runtime: Runtime, make_worker: WorkerFactory
) -> None:
    transport = RecordingTransport(
        failures={"a@example.com": [AccountPausedError("SendingPausedException: paused")]}
    )
    worker = make_worker(transport)
    [stopped, _waiting] = await queue_emails(live_runtime, ["a@example.com", "b@example.com"])
    task = asyncio.create_task(worker.run())

    async def paused() -> bool:
        async with live_runtime.sessionmaker() as session, session.begin():
            return bool(await active_pauses(session, now=datetime.now(UTC)))

    await wait_until(while_running(task, paused), "sending paused")
    await stop(task, worker)

    async with live_runtime.sessionmaker() as session, session.begin():
        [pause] = await active_pauses(session, now=datetime.now(UTC))
    assert (pause.name, pause.reason) == ("account", "SendingPausedException: paused")
    assert pause.until is not None  # tried again by itself after a while
    rows = await requests_by_id(live_runtime)
    assert rows[stopped].status == RequestStatus.CREATED  # queued, not failed
    assert rows[stopped].attempts == 0
