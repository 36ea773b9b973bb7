"""The claim stops email to suppressed addresses instead of handing it to a worker."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from ses_sender.composition import Runtime
from ses_sender.models import RequestStatus, StopReason, SuppressionReason
from ses_sender.suppression.service import SuppressedAddresses, suppress
from tests.support.polling import wait_until, while_running
from tests.support.rows import queue_emails, requests_by_id
from tests.support.workers import RecordingTransport, WorkerFactory, claimer_for


async def suppress_now(runtime: Runtime, email: str, reason: SuppressionReason) -> None:
    async with runtime.sessionmaker() as session, session.begin():
        await suppress(session, [email], reason, detail=None, now=datetime.now(UTC))


async def claim(runtime: Runtime, *, limit: int = 10) -> list[int]:
    """What a worker's claim hands it to send, the suppression list screening it."""
    claimer = claimer_for(runtime, [SuppressedAddresses()])
    return [queued.request_id for queued, _content in await claimer.claim(limit)]


async def test_suppressed_rows_are_stopped_with_the_reason_not_claimed(
    live_runtime: Runtime,
) -> None:
    await suppress_now(live_runtime, "gone@example.com", SuppressionReason.BOUNCE)
    await suppress_now(live_runtime, "left@example.com", SuppressionReason.UNSUBSCRIBE)
    ok, gone, left = await queue_emails(
        live_runtime, ["ok@example.com", "gone@EXAMPLE.com", "left@example.com"]
    )

    assert await claim(live_runtime) == [ok]

    rows = await requests_by_id(live_runtime)
    assert rows[ok].status == RequestStatus.PROCESSING
    assert (rows[gone].status, rows[gone].error) == (RequestStatus.STOPPED, "suppressed: bounce")
    assert (rows[left].status, rows[left].error) == (
        RequestStatus.STOPPED,
        "suppressed: unsubscribe",
    )
    assert rows[gone].stop_reason == rows[left].stop_reason == StopReason.SUPPRESSED
    assert rows[gone].attempts == rows[left].attempts == 0  # never tried
    assert await claim(live_runtime) == []  # stopped for good


async def test_only_due_rows_are_looked_at(live_runtime: Runtime) -> None:
    await suppress_now(live_runtime, "gone@example.com", SuppressionReason.COMPLAINT)
    later = datetime.now(UTC) + timedelta(hours=1)
    [future] = await queue_emails(live_runtime, ["gone@example.com"], due_at=later)

    assert await claim(live_runtime) == []

    assert (await requests_by_id(live_runtime))[future].status == RequestStatus.CREATED


async def test_an_address_suppressed_after_queueing_is_not_sent(
    live_runtime: Runtime, make_worker: WorkerFactory
) -> None:
    transport = RecordingTransport()
    ids = await queue_emails(live_runtime, [f"u{i}@example.com" for i in range(6)])
    await suppress_now(live_runtime, "u2@example.com", SuppressionReason.MANUAL)
    worker = make_worker(transport)
    task = asyncio.create_task(worker.run())

    async def settled() -> bool:
        rows = await requests_by_id(live_runtime)
        return all(rows[i].status in (RequestStatus.SENT, RequestStatus.STOPPED) for i in ids)

    await wait_until(while_running(task, settled), "every email sent or stopped")
    worker.stop()
    await asyncio.wait_for(task, 10)

    assert sorted(email.to for email in transport.sent) == [
        f"u{i}@example.com" for i in (0, 1, 3, 4, 5)
    ]
    rows = await requests_by_id(live_runtime)
    assert (rows[ids[2]].status, rows[ids[2]].error) == (
        RequestStatus.STOPPED,
        "suppressed: manual",
    )
