"""Storage benchmark: the bytes SES events take on PostgreSQL, per recipient and per event,
with the payload on every recipient's row (as up to migration 0012) and stored once per SNS
message (0014).

    .venv/bin/python -m bench.storage                   # 244 KB payloads, as the audit sent
    .venv/bin/python -m bench.storage --payload-kb 24   # a tenth of that, for a quick run

Two shapes, each in fresh temporary databases (created and dropped here):

- typical: `--events` Delivery notifications of about 1 KB, each naming one recipient;
- wide: one Bounce notification of `--payload-kb` KB (SES's headers, random so that
  PostgreSQL's compression cannot shrink them) naming `--recipients` recipients, the shape of
  the audit's (a 244 KB notification naming 1,000 recipients wrote 244 MB).

Before: the schema at 0012 and the rows its ingestion wrote, one per recipient with the whole
payload, loaded in bulk. After: typical through the real ingestion path (`ingest_notifications`,
50 notifications a transaction); wide, which the service now refuses (at most 50 recipients an
event), by migrating the before database with 0014 and rewriting the table (VACUUM FULL, which
a dropped column needs to give its space back). Then `pg_total_relation_size` (heap, TOAST and
indexes) of the event tables over their rows. The requests the events belong to are the same
in both and not counted.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import random
import sys
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from alembic import command
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from bench.ingest import DEFAULT_POSTGRES, POSTGRES_ENV, BenchError, postgres_database
from ses_sender.config import to_async_url
from ses_sender.db.engine import create_engine, create_sessionmaker
from ses_sender.db.migrate import alembic_config
from ses_sender.ses_events.service import Received, ingest_notifications
from ses_sender.ses_events.sns import SnsMessage
from ses_sender.ses_tags import REQUEST_ID_TAG
from ses_sender.suppression.service import SoftBounceRule

BEFORE = "0012"  # the payload on every recipient's row
AFTER = "0014"  # the payload once per SNS message
EVENT_TABLES = ("email_results", "event_payloads")
SNS_BATCH = 50
SOFT_BOUNCES = SoftBounceRule(limit=3, window=timedelta(days=7))
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
TOPIC_ARN = "arn:aws:sns:us-east-1:123456789012:bench"

_CONTENT = (
    "INSERT INTO email_contents (id, topic_id, subject, content, created_at) "
    "VALUES (1, 'bench', 'Hi', '<p>Hi</p>', :now)"
)
_REQUESTS = """
    INSERT INTO email_requests (id, topic_id, "to", recipient_key, content_id, scheduled_at,
        status, due_at, attempts, message_id, sent_at, held, open_count, click_count,
        created_at, updated_at)
    SELECT i, 'bench', 'u' || i || '@example.com', 'u' || i || '@example.com', 1, :now, 2,
        :now, 1, 'm-' || i, :now, false, 0, 0, :now, :now
    FROM generate_series(1, :count) AS i
"""
# A row as ingestion up to 0012 wrote it: the whole payload for each recipient.
_OLD_RESULT = """
    INSERT INTO email_results (request_id, status, source, sns_message_id, ses_message_id,
        recipient, occurred_at, raw, created_at)
    VALUES (:request_id, :status, 'ses', :sns_message_id, :ses_message_id, :recipient, :now,
        :raw, :now)
"""


@dataclass(frozen=True)
class Event:
    """One SNS notification: its id, SES message id, type, payload and the request ids it
    names (recipient i is u{i}@example.com)."""

    sns_message_id: str
    ses_message_id: str
    kind: str
    raw: str
    request_ids: list[int]


@dataclass
class Figures:
    shape: str
    layout: str
    notifications: int
    recipients: int
    payload_bytes: int  # the largest notification's
    bytes_by_table: dict[str, tuple[int, int]]  # table -> (bytes, rows)

    @property
    def total(self) -> int:
        return sum(size for size, _rows in self.bytes_by_table.values())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.storage", description=__doc__)
    parser.add_argument("--events", type=int, default=2_000, help="typical notifications")
    parser.add_argument("--recipients", type=int, default=1_000, help="recipients, wide shape")
    parser.add_argument("--payload-kb", type=int, default=244, help="payload, wide shape")
    parser.add_argument("--postgres", default=os.environ.get(POSTGRES_ENV, DEFAULT_POSTGRES))
    args = parser.parse_args(argv)
    typical = [_delivery(number) for number in range(1, args.events + 1)]
    wide = [_wide_bounce(args.recipients, args.payload_kb * 1024)]
    try:
        figures = [
            _before("typical", typical, args.postgres),
            _ingested("typical", typical, args.postgres),
            *_before_and_migrated("wide", wide, args.postgres),
        ]
    except BenchError as error:
        print(f"bench: {error}", file=sys.stderr)
        return 2
    _print(figures)
    return 0


def _before(shape: str, events: list[Event], postgres: str) -> Figures:
    with postgres_database(postgres) as url:
        command.upgrade(alembic_config(url), BEFORE)
        asyncio.run(_load_old_rows(url, events))
        return asyncio.run(_measure(url, shape, f"before ({BEFORE})", events))


def _ingested(shape: str, events: list[Event], postgres: str) -> Figures:
    with postgres_database(postgres) as url:
        command.upgrade(alembic_config(url), AFTER)
        asyncio.run(_ingest(url, events))
        return asyncio.run(_measure(url, shape, f"after ({AFTER}, ingested)", events))


def _before_and_migrated(shape: str, events: list[Event], postgres: str) -> list[Figures]:
    with postgres_database(postgres) as url:
        command.upgrade(alembic_config(url), BEFORE)
        asyncio.run(_load_old_rows(url, events))
        before = asyncio.run(_measure(url, shape, f"before ({BEFORE})", events))
        command.upgrade(alembic_config(url), AFTER)
        asyncio.run(_rewrite(url))
        return [before, asyncio.run(_measure(url, shape, f"after ({AFTER}, migrated)", events))]


async def _requests(connection: AsyncConnection, events: list[Event]) -> None:
    count = max(i for event in events for i in event.request_ids)
    await connection.execute(text(_CONTENT), {"now": NOW})
    await connection.execute(text(_REQUESTS), {"now": NOW, "count": count})


async def _load_old_rows(url: str, events: list[Event]) -> None:
    engine = create_engine(to_async_url(url))
    try:
        async with engine.begin() as connection:
            await _requests(connection, events)
            for event in events:
                await connection.execute(
                    text(_OLD_RESULT),
                    [
                        {
                            "request_id": request_id,
                            "status": event.kind,
                            "sns_message_id": event.sns_message_id,
                            "ses_message_id": event.ses_message_id,
                            "recipient": f"u{request_id}@example.com",
                            "now": NOW,
                            "raw": event.raw,
                        }
                        for request_id in event.request_ids
                    ],
                )
    finally:
        await engine.dispose()


async def _ingest(url: str, events: list[Event]) -> None:
    engine = create_engine(to_async_url(url))
    sessionmaker = create_sessionmaker(engine)
    try:
        async with engine.begin() as connection:
            await _requests(connection, events)
        for start in range(0, len(events), SNS_BATCH):
            batch = [
                Received(
                    SnsMessage(
                        type="Notification",
                        message_id=event.sns_message_id,
                        topic_arn=TOPIC_ARN,
                        message=event.raw,
                        timestamp=NOW,
                    ),
                    NOW,
                )
                for event in events[start : start + SNS_BATCH]
            ]
            async with sessionmaker() as session, session.begin():
                await ingest_notifications(session, batch, soft_bounces=SOFT_BOUNCES)
    finally:
        await engine.dispose()


async def _rewrite(url: str) -> None:
    engine = create_engine(to_async_url(url))
    try:
        async with engine.connect() as connection:
            await connection.execution_options(isolation_level="AUTOCOMMIT")
            await connection.execute(text("VACUUM FULL email_results"))
    finally:
        await engine.dispose()


async def _measure(url: str, shape: str, layout: str, events: list[Event]) -> Figures:
    engine = create_engine(to_async_url(url))
    sizes: dict[str, tuple[int, int]] = {}
    try:
        async with engine.connect() as connection:
            for table in EVENT_TABLES:
                if not await connection.scalar(text("SELECT to_regclass(:t)"), {"t": table}):
                    continue
                size = await connection.scalar(
                    text("SELECT pg_total_relation_size(:t)"), {"t": table}
                )
                rows = await connection.scalar(text(f"SELECT count(*) FROM {table}"))  # noqa: S608
                sizes[table] = (int(size or 0), int(rows or 0))
    finally:
        await engine.dispose()
    recipients = sum(len(event.request_ids) for event in events)
    payload = max(len(event.raw.encode()) for event in events)
    return Figures(shape, layout, len(events), recipients, payload, sizes)


def _delivery(number: int) -> Event:
    """A Delivery of email `number` to u{number}@example.com, as event publishing sends it."""
    address = f"u{number}@example.com"
    when = NOW.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    message: dict[str, Any] = {
        "eventType": "Delivery",
        "mail": {
            "timestamp": when,
            "source": "Shop <shop@example.com>",
            "sourceArn": "arn:aws:ses:us-east-1:123456789012:identity/example.com",
            "sendingAccountId": "123456789012",
            "messageId": _ses_message_id(number),
            "destination": [address],
            "headersTruncated": False,
            "tags": {
                REQUEST_ID_TAG: [str(number)],
                "ses:configuration-set": ["marketing"],
                "ses:source-ip": ["203.0.113.10"],
                "ses:from-domain": ["example.com"],
                "ses:caller-identity": ["ses-sender"],
            },
        },
        "delivery": {
            "timestamp": when,
            "processingTimeMillis": 812,
            "recipients": [address],
            "smtpResponse": "250 2.0.0 OK  1717243200 a1b2c3d4e5f6 - gsmtp",
            "reportingMTA": "a8-55.smtp-out.amazonses.com",
            "remoteMtaIp": "198.51.100.27",
        },
    }
    return Event(
        _sns_message_id(number), _ses_message_id(number), "Delivery", json.dumps(message), [number]
    )


def _sns_message_id(number: int) -> str:
    """As SNS spells them: a UUID."""
    return str(uuid.UUID(int=number, version=4))


def _ses_message_id(number: int) -> str:
    """As SES spells them (60 characters)."""
    return f"010001{number:010x}-1c2d3e4f-5a6b-4c8d-9e0f-a1b2c3d4e5f6-000000"


def _wide_bounce(recipients: int, payload_bytes: int) -> Event:
    """One Bounce naming `recipients` addresses, padded with the message's headers to about
    `payload_bytes`."""
    numbers = list(range(1, recipients + 1))
    addresses = [f"u{number}@example.com" for number in numbers]
    message: dict[str, Any] = {
        "notificationType": "Bounce",
        "mail": {
            "timestamp": NOW.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
            "source": "shop@example.com",
            "messageId": _ses_message_id(0),
            "destination": addresses,
            "headers": [],
        },
        "bounce": {
            "bounceType": "Permanent",
            "bounceSubType": "General",
            "bouncedRecipients": [{"emailAddress": address} for address in addresses],
            "timestamp": NOW.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        },
    }
    noise = random.Random(0)  # the same payload every run
    while len(raw := json.dumps(message)) < payload_bytes:
        value = base64.b64encode(noise.randbytes(750)).decode()
        message["mail"]["headers"].append({"name": "X-Trace", "value": value})
    return Event(_sns_message_id(0), _ses_message_id(0), "Bounce", raw, numbers)


def _print(figures: list[Figures]) -> None:
    print(
        "| shape | layout | notifications | recipients | payload | email_results "
        "| event_payloads | total | bytes/recipient | bytes/notification |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for figure in figures:
        cells = []
        for table in EVENT_TABLES:
            size, rows = figure.bytes_by_table.get(table, (0, 0))
            cells.append(f"{_size(size)} ({rows:,} rows)" if rows else "—")
        print(
            f"| {figure.shape} | {figure.layout} | {figure.notifications:,} "
            f"| {figure.recipients:,} | {_size(figure.payload_bytes)} | {cells[0]} | {cells[1]} "
            f"| {_size(figure.total)} "
            f"| {figure.total / figure.recipients:,.0f} "
            f"| {figure.total / figure.notifications:,.0f} |"
        )


def _size(size: int) -> str:
    return f"{size / 1024 / 1024:,.2f} MiB" if size >= 1024 * 1024 else f"{size / 1024:,.0f} KiB"


if __name__ == "__main__":
    sys.exit(main())
