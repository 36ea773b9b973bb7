"""Feedback-loop benchmark: the guardrail's check, webhook delivery, and what webhooks add to
SES event ingestion.

    .venv/bin/python -m bench.feedback            # --help for the options

For each backend (SQLite in a temporary file, PostgreSQL in a temporary database created and
dropped here), in this process, against the real code:

1. guardrail: N emails sent over the last 24 hours (2 % hard bounces, 0.05 % complaints) are
   written with one SQL statement; then `check_reputation` (the pause row and the window's one
   aggregate) is timed `--repeat` times, each in its own transaction, rolled back;
2. ingestion: `ingest_notification` (store the event, apply it, queue its webhook deliveries),
   one transaction per notification as the SNS endpoint does, for 2,000 Delivery events with no
   webhook and again with one webhook; SNS signature checks and HTTP are not included;
3. delivery: 2,000 queued deliveries POSTed by `WebhookSender` (default concurrency, 8) to a
   local aiohttp receiver that answers 200 at once, from the first claim to the last record.

Only loopback addresses are contacted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aiohttp import web
from sqlalchemy import delete, func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bench.ingest import DEFAULT_POSTGRES, POSTGRES_ENV, BenchError, postgres_database
from ses_sender.clock import SystemClock
from ses_sender.config import to_async_url
from ses_sender.db.engine import create_engine, create_sessionmaker
from ses_sender.db.migrate import upgrade_to_head_async
from ses_sender.guardrail.service import Limits, Memory, check_reputation
from ses_sender.models import DeliveryStatus, WebhookDelivery
from ses_sender.ses_events.service import ingest_notification
from ses_sender.ses_events.sns import SnsMessage
from ses_sender.suppression.service import SoftBounceRule
from ses_sender.webhooks import repository as webhooks_repository
from ses_sender.webhooks.repository import NewDelivery
from ses_sender.webhooks.retry import WebhookRetryPolicy
from ses_sender.webhooks.schemas import WebhookIn
from ses_sender.webhooks.service import create_webhook
from ses_sender.webhooks.worker import WebhookSender

SOFT_BOUNCES = SoftBounceRule(limit=3, window=timedelta(days=7))

BACKENDS = ("sqlite", "postgresql")
DEFAULT_SENDS = (100_000, 1_000_000)
NOTIFICATIONS = 2_000
DELIVERIES = 2_000
LIMITS = Limits(bounce_rate=0.05, complaint_rate=0.001, min_sends=200)

_SENDS_SQL = {
    "postgresql": """
        INSERT INTO email_requests (topic_id, "to", recipient_key, content_id, scheduled_at,
            status, due_at, attempts, sent_at, bounced_at, bounce_type, complained_at,
            open_count, click_count, created_at, updated_at)
        SELECT 'bench', 'u' || i || '@example.com', 'u' || i || '@example.com', 1, now(), 2,
            now(), 1, now() - (i % 86000) * interval '1 second',
            CASE WHEN i % 50 = 0 THEN now() END,
            CASE WHEN i % 50 = 0 THEN 'Permanent/General' END,
            CASE WHEN i % 2000 = 0 THEN now() END, 0, 0, now(), now()
        FROM generate_series(1, :count) AS i
    """,
    "sqlite": """
        WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < :count)
        INSERT INTO email_requests (topic_id, "to", recipient_key, content_id, scheduled_at,
            status, due_at, attempts, sent_at, bounced_at, bounce_type, complained_at,
            open_count, click_count, created_at, updated_at)
        SELECT 'bench', 'u' || i || '@example.com', 'u' || i || '@example.com', 1, :now, 2,
            :now, 1, strftime('%Y-%m-%d %H:%M:%f', :now, '-' || (i % 86000) || ' seconds'),
            CASE WHEN i % 50 = 0 THEN :now END,
            CASE WHEN i % 50 = 0 THEN 'Permanent/General' END,
            CASE WHEN i % 2000 = 0 THEN :now END, 0, 0, :now, :now
        FROM n
    """,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.feedback", description=__doc__)
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument(
        "--sends",
        default=",".join(str(size) for size in DEFAULT_SENDS),
        help="emails in the guardrail's window, comma-separated",
    )
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--postgres", default=os.environ.get(POSTGRES_ENV, DEFAULT_POSTGRES))
    args = parser.parse_args(argv)
    try:
        for backend in args.backends.split(","):
            for sends in (int(size) for size in args.sends.split(",")):
                with _database(backend, args.postgres) as url:
                    asyncio.run(_guardrail(backend, url, sends, args.repeat))
            with _database(backend, args.postgres) as url:
                asyncio.run(_webhooks(backend, url))
    except BenchError as error:
        print(f"bench: {error}", file=sys.stderr)
        return 2
    return 0


@contextmanager
def _database(backend: str, postgres_dsn: str) -> Iterator[str]:
    """A fresh database for one measurement, removed afterwards."""
    if backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix="ses-sender-bench-") as directory:
            yield f"sqlite:///{Path(directory) / 'bench.db'}"
    elif backend == "postgresql":
        with postgres_database(postgres_dsn) as url:
            yield url
    else:
        raise BenchError(f"unknown backend {backend!r}")


async def _open(url: str) -> tuple[AsyncEngine, async_sessionmaker[AsyncSession]]:
    await upgrade_to_head_async(url)
    engine = create_engine(to_async_url(url))
    return engine, create_sessionmaker(engine)


async def _guardrail(backend: str, url: str, sends: int, repeat: int) -> None:
    engine, sessionmaker = await _open(url)
    try:
        now = datetime.now(UTC)
        async with sessionmaker() as session, session.begin():
            await session.execute(
                text(
                    "INSERT INTO email_contents (id, topic_id, subject, content, created_at) "
                    "VALUES (1, 'bench', 'Hi', '<p>Hi</p>', :now)"
                ),
                {"now": now.replace(tzinfo=None) if backend == "sqlite" else now},
            )
            # SQLite keeps times as text, in the form the ORM writes them.
            params: dict[str, object] = {"count": sends}
            if backend == "sqlite":
                params["now"] = now.replace(tzinfo=None).isoformat(sep=" ")
            await session.execute(text(_SENDS_SQL[backend]), params)
        async with sessionmaker() as session, session.begin():
            await session.execute(text("ANALYZE"))
        timings = []
        reason = None
        for _ in range(repeat):
            async with sessionmaker() as session:
                started = time.perf_counter()
                check = await check_reputation(
                    session, LIMITS, now=datetime.now(UTC), memory=Memory()
                )
                await session.rollback()  # a trip's pause is not kept: every run counts
                timings.append((time.perf_counter() - started) * 1000)
                reason = check.tripped
        print(
            f"guardrail  {backend:10} {sends:>9,} sends in the window: check "
            f"median {statistics.median(timings):7.1f} ms "
            f"(min {min(timings):.1f}, max {max(timings):.1f}); tripped: {reason is not None}"
        )
    finally:
        await engine.dispose()


async def _webhooks(backend: str, url: str) -> None:
    engine, sessionmaker = await _open(url)
    receiver = await _start_receiver()
    try:
        request_id = await _one_request(sessionmaker)
        without = await _ingest(sessionmaker, request_id)
        async with sessionmaker() as session, session.begin():
            # The receiver is on this machine: a deployment posting inside its own network.
            hook = await create_webhook(
                session, WebhookIn(url=receiver.url), now=datetime.now(UTC), allow_private=True
            )
        with_one = await _ingest(sessionmaker, request_id)
        print(
            f"ingestion  {backend:10} {NOTIFICATIONS:,} events, one transaction each: "
            f"{without:,.0f}/s with no webhook, {with_one:,.0f}/s with one "
            f"({with_one / without:.0%} of the rate without)"
        )
        async with sessionmaker() as session, session.begin():
            # Only the deliveries timed below: empty the queue the ingestion filled.
            await session.execute(delete(WebhookDelivery))
            payload = json.dumps({"type": "Open", "requestId": request_id})
            delivery = NewDelivery(hook.id, "Open", payload, now=datetime.now(UTC))
            await webhooks_repository.insert_deliveries(session, [delivery] * DELIVERIES)
        sender = WebhookSender(
            sessionmaker=sessionmaker,
            clock=SystemClock(),
            retry=WebhookRetryPolicy(),
            concurrency=8,
            timeout_s=10.0,
            allow_private=True,
        )
        started = time.perf_counter()
        loop = asyncio.create_task(sender.run())
        await receiver.all_received.wait()
        sender.stop()  # drains: the last attempts are recorded before `run` returns
        await loop
        elapsed = time.perf_counter() - started
        delivered = await _delivered(sessionmaker)
        print(
            f"delivery   {backend:10} {DELIVERIES:,} deliveries, concurrency 8: "
            f"{DELIVERIES / elapsed:,.0f}/s, POSTed and recorded ({delivered:,} delivered)"
        )
    finally:
        await receiver.stop()
        await engine.dispose()


async def _one_request(sessionmaker: async_sessionmaker[AsyncSession]) -> int:
    now = datetime.now(UTC)
    async with sessionmaker() as session, session.begin():
        await session.execute(
            text(
                "INSERT INTO email_contents (topic_id, subject, content, created_at) "
                "VALUES ('bench', 'Hi', '<p>Hi</p>', :now)"
            ),
            {"now": now},
        )
        request_id = await session.scalar(
            text(
                'INSERT INTO email_requests (topic_id, "to", recipient_key, content_id, '
                "scheduled_at, status, due_at, attempts, message_id, sent_at, open_count, "
                "click_count, created_at, updated_at) VALUES ('bench', 'a@example.com', "
                "'a@example.com', (SELECT max(id) FROM email_contents), :now, 2, :now, 1, "
                "'ses-bench', :now, 0, 0, :now, :now) RETURNING id"
            ),
            {"now": now},
        )
    assert isinstance(request_id, int)
    return request_id


async def _ingest(sessionmaker: async_sessionmaker[AsyncSession], request_id: int) -> float:
    """Delivery events for one request, each in its own transaction; events per second."""
    now = datetime.now(UTC)
    stamp = now.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    message = json.dumps(
        {
            "eventType": "Delivery",
            "mail": {
                "timestamp": stamp,
                "messageId": "ses-bench",
                "destination": ["a@example.com"],
                "tags": {"ses-sender-request-id": [str(request_id)]},
            },
            "delivery": {"timestamp": stamp, "recipients": ["a@example.com"]},
        }
    )
    started = time.perf_counter()
    for _ in range(NOTIFICATIONS):
        notification = SnsMessage(
            type="Notification",
            message_id=str(uuid.uuid4()),
            topic_arn="arn:aws:sns:us-east-1:123456789012:bench",
            message=message,
            timestamp=now,
        )
        async with sessionmaker() as session, session.begin():
            await ingest_notification(session, notification, soft_bounces=SOFT_BOUNCES, now=now)
    return NOTIFICATIONS / (time.perf_counter() - started)


async def _delivered(sessionmaker: async_sessionmaker[AsyncSession]) -> int:
    async with sessionmaker() as session:
        count = await session.scalar(
            select(func.count())
            .select_from(WebhookDelivery)
            .where(WebhookDelivery.status == DeliveryStatus.DELIVERED)
        )
    return count or 0


class _Receiver:
    def __init__(self, runner: web.AppRunner, port: int) -> None:
        self.runner = runner
        self.url = f"http://127.0.0.1:{port}/hooks"
        self.count = 0
        self.all_received = asyncio.Event()

    async def stop(self) -> None:
        await self.runner.cleanup()


async def _start_receiver() -> _Receiver:
    app = web.Application()
    runner = web.AppRunner(app)
    receiver: _Receiver | None = None

    async def answer(_request: web.Request) -> web.Response:
        assert receiver is not None
        receiver.count += 1
        if receiver.count >= DELIVERIES:
            receiver.all_received.set()
        return web.Response(text="ok")

    app.router.add_post("/hooks", answer)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    receiver = _Receiver(runner, runner.addresses[0][1])
    return receiver


if __name__ == "__main__":
    raise SystemExit(main())
