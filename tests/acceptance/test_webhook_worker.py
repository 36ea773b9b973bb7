"""The real `ses-sender worker` process delivers webhooks, and a restart loses and repeats none.

The first process is stopped (SIGTERM) while the receiver holds two deliveries: it lets them
finish and exits; a second process delivers the rest. Every event arrives exactly once.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import select

from ses_sender.composition import Runtime
from ses_sender.models import DeliveryStatus, WebhookDelivery
from ses_sender.webhooks.schemas import WebhookIn
from ses_sender.webhooks.service import create_webhook, enqueue_event
from tests.support.moto_server import subprocess_env
from tests.support.polling import wait_until
from tests.support.rows import add_request
from tests.support.webhooks import Receiver

EVENTS = 6
CONCURRENCY = 2
EXIT_TIMEOUT_S = 30.0


@contextmanager
def worker_process(database_url: str, cwd: Path, log: Path) -> Iterator[subprocess.Popen[str]]:
    env = subprocess_env()
    env.update(
        {
            "DATABASE_URL": database_url,
            "EMAIL_TRANSPORT": "outbox",
            "WEBHOOK_CONCURRENCY": str(CONCURRENCY),
            "WEBHOOK_ALLOW_PRIVATE": "true",  # the receiver is on 127.0.0.1
            "LOG_LEVEL": "INFO",
        }
    )
    script = str(Path(sys.executable).with_name("ses-sender"))
    with log.open("w") as output:
        process = subprocess.Popen(
            [script, "worker"], env=env, cwd=cwd, stdout=output, stderr=subprocess.STDOUT, text=True
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


async def stop(process: subprocess.Popen[str]) -> int:
    process.send_signal(signal.SIGTERM)
    return await asyncio.to_thread(process.wait, EXIT_TIMEOUT_S)


async def test_a_restarted_worker_delivers_the_rest_exactly_once(
    database_url: str, live_runtime: Runtime, tmp_path: Path
) -> None:
    gate = asyncio.Event()
    receiver = Receiver(gate=gate)
    await receiver.start()
    try:
        now = live_runtime.clock.now()
        async with live_runtime.sessionmaker() as session, session.begin():
            hook = await create_webhook(
                session, WebhookIn(url=receiver.url), now=now, allow_private=True
            )
            secret = hook.secret
        for index in range(EVENTS):
            address = f"r{index}@example.net"
            request_id = await add_request(live_runtime, message_id=f"m{index}", to=address)
            async with live_runtime.sessionmaker() as session, session.begin():
                await enqueue_event(
                    session,
                    event_type="Open",
                    request_id=request_id,
                    occurred_at=now,
                    details={},
                    now=now,
                )

        first_log = tmp_path / "first.log"
        with worker_process(database_url, tmp_path, first_log) as first:
            await wait_until(lambda: _holding(receiver, CONCURRENCY), "two deliveries held")
            first.send_signal(signal.SIGTERM)
            await wait_until(lambda: _said(first_log, "stopping"), "the first worker stopping")
            gate.set()  # the two in flight may finish now
            assert await asyncio.to_thread(first.wait, EXIT_TIMEOUT_S) == 0, first_log.read_text()

        assert len(receiver.deliveries()) == CONCURRENCY
        statuses = [row.status for row in await deliveries(live_runtime)]
        assert statuses.count(DeliveryStatus.DELIVERED) == CONCURRENCY

        second_log = tmp_path / "second.log"
        with worker_process(database_url, tmp_path, second_log) as second:
            await wait_until(lambda: _delivered(receiver, EVENTS), "every event delivered")
            assert await stop(second) == 0, second_log.read_text()
    finally:
        await receiver.stop()

    rows = await deliveries(live_runtime)
    assert sorted(receiver.deliveries()) == sorted(str(row.id) for row in rows)
    assert len(receiver.received) == EVENTS
    assert all(row.status == DeliveryStatus.DELIVERED for row in rows)
    assert all(received.signed_by(secret) for received in receiver.received)


async def deliveries(runtime: Runtime) -> list[WebhookDelivery]:
    async with runtime.sessionmaker() as session:
        return list((await session.scalars(select(WebhookDelivery))).all())


async def _holding(receiver: Receiver, count: int) -> bool:
    return receiver.in_flight >= count


async def _delivered(receiver: Receiver, count: int) -> bool:
    return len(receiver.deliveries()) >= count


async def _said(log: Path, text: str) -> bool:
    return text in await asyncio.to_thread(log.read_text)
