from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import (
    Integer,
    String,
    Text,
    column,
    delete,
    func,
    insert,
    select,
    table,
    text,
    update,
)
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ses_sender.composition import Runtime
from ses_sender.config import to_async_url
from ses_sender.db.base import Base, UtcDateTime
from ses_sender.db.engine import create_engine, create_sessionmaker
from ses_sender.db.migrate import alembic_config, is_at_head, upgrade_to_head_async
from ses_sender.models import (
    Content,
    CounterScope,
    EventPayload,
    Outcome,
    Request,
    RequestStatus,
    Result,
    StatCounter,
    StopReason,
)
from ses_sender.stats import build, counters
from ses_sender.stats import repository as stats_repository
from ses_sender.stats import service as stats
from tests.support.databases import postgres_database


async def _count_counters(engine: AsyncEngine, *where: Any) -> int | None:
    async with engine.connect() as connection:
        return await connection.scalar(select(func.count()).select_from(StatCounter).where(*where))


def _differences(connection: Connection) -> list[object]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, Base.metadata))


async def test_migrations_match_the_models(runtime: Runtime) -> None:
    async with runtime.engine.connect() as connection:
        differences = await connection.run_sync(_differences)

    assert differences == []


async def test_upgrading_again_changes_nothing(database_url: str, runtime: Runtime) -> None:
    await upgrade_to_head_async(database_url)
    await upgrade_to_head_async(database_url)

    assert await is_at_head(runtime.engine)


async def test_an_empty_database_is_not_at_head(tmp_path: object) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/empty.db")
    try:
        assert not await is_at_head(engine)
    finally:
        await engine.dispose()


async def test_sqlite_connections_get_their_pragmas(runtime: Runtime) -> None:
    if runtime.engine.dialect.name != "sqlite":
        return
    async with runtime.engine.connect() as connection:
        journal = (await connection.exec_driver_sql("PRAGMA journal_mode")).scalar()
        foreign_keys = (await connection.exec_driver_sql("PRAGMA foreign_keys")).scalar()
        busy = (await connection.exec_driver_sql("PRAGMA busy_timeout")).scalar()

    assert (journal, foreign_keys, busy) == ("wal", 1, 30_000)


@pytest.fixture
async def fresh_database_url(backend: str, tmp_path: Path) -> AsyncIterator[str]:
    """An empty database of its own (the session's is already at head)."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path}/fresh.db"
        return
    async with postgres_database("ses_sender_migration") as url:
        yield url


# email_results as the revisions before 0014 have it: the SNS payload on every row.
OLD_RESULTS = table(
    "email_results",
    column("id", Integer),
    column("request_id", Integer),
    column("status", String),
    column("source", String),
    column("sns_message_id", String),
    column("ses_message_id", String),
    column("recipient", String),
    column("occurred_at", UtcDateTime()),
    column("raw", Text),
    column("created_at", UtcDateTime()),
)


def _migrate(url: str, revision: str, *, down: bool = False) -> None:
    (command.downgrade if down else command.upgrade)(alembic_config(url), revision)


async def test_0004_keeps_the_event_log_and_backfills_outcomes(fresh_database_url: str) -> None:
    await asyncio.to_thread(_migrate, fresh_database_url, "0003")
    engine = create_engine(to_async_url(fresh_database_url))
    at = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
    summaries: dict[str, dict[str, Any]] = {
        "complained": {"complained_at": at, "bounced_at": at, "bounce_type": "Permanent/General"},
        "hard": {"bounced_at": at, "bounce_type": "Permanent/General", "delivered_at": at},
        "rejected": {"rejected_at": at},
        "soft": {"bounced_at": at, "bounce_type": "Transient/MailboxFull", "delivered_at": at},
        "delivered": {"delivered_at": at, "delayed_at": at},
        "delayed": {"delayed_at": at},
        "quiet": {},
    }
    try:
        async with engine.begin() as connection:
            await connection.execute(
                insert(Content).values(id=1, subject="s", content="c", created_at=at)
            )
            for number, summary in enumerate(summaries.values(), start=1):
                await connection.execute(
                    insert(Request).values(
                        id=number,
                        to=f"u{number}@example.com",
                        recipient_key=f"u{number}@example.com",
                        content_id=1,
                        scheduled_at=at,
                        due_at=at,
                        created_at=at,
                        updated_at=at,
                        **summary,
                    )
                )
            await connection.execute(
                insert(OLD_RESULTS).values(
                    request_id=1,
                    status="Complaint",
                    source="ses",
                    sns_message_id="sns-1",
                    recipient="u1@example.com",
                    occurred_at=at,
                    raw="{}",
                    created_at=at,
                )
            )
        await asyncio.to_thread(_migrate, fresh_database_url, "head")

        async with engine.begin() as connection:
            outcomes = dict((await connection.execute(select(Request.id, Request.outcome))).all())
            # The same SNS message now holds one row per recipient.
            await connection.execute(
                insert(Result).values(
                    status="Complaint",
                    source="ses",
                    sns_message_id="sns-1",
                    recipient="u2@example.com",
                    occurred_at=at,
                    created_at=at,
                )
            )
            stored = (await connection.execute(select(func.count()).select_from(Result))).scalar()
    finally:
        await engine.dispose()

    assert outcomes == {
        1: Outcome.COMPLAINED,
        2: Outcome.BOUNCED,
        3: Outcome.REJECTED,
        4: Outcome.SOFT_BOUNCED,
        5: Outcome.DELIVERED,
        6: Outcome.DELAYED,
        7: None,
    }
    assert stored == 2
    await asyncio.to_thread(_migrate, fresh_database_url, "0003", down=True)


async def test_0007_gives_the_lease_the_hold_and_the_stop_reason_columns_of_their_own(
    fresh_database_url: str,
) -> None:
    await asyncio.to_thread(_migrate, fresh_database_url, "0006")
    engine = create_engine(to_async_url(fresh_database_url))
    at = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
    lease_end = datetime(2026, 1, 5, 10, 2, tzinfo=UTC)
    held_sentinel = datetime(9999, 1, 1, tzinfo=UTC)
    old_requests = table(
        "email_requests",
        column("id", Integer),
        column("topic_id", String),
        column("to", String),
        column("recipient_key", String),
        column("content_id", Integer),
        column("scheduled_at", UtcDateTime()),
        column("due_at", UtcDateTime()),
        column("status", Integer),
        column("attempts", Integer),
        column("open_count", Integer),
        column("click_count", Integer),
        column("error", String),
        column("created_at", UtcDateTime()),
        column("updated_at", UtcDateTime()),
    )
    # (status, due_at, error) as the old schema kept them
    rows = {
        1: (RequestStatus.CREATED, at, None),
        2: (RequestStatus.PROCESSING, lease_end, None),
        3: (RequestStatus.CREATED, held_sentinel, None),  # a paused topic's row
        4: (RequestStatus.STOPPED, at, "suppressed: complaint"),
        5: (RequestStatus.STOPPED, at, "cancelled"),
    }
    try:
        async with engine.begin() as connection:
            await connection.execute(
                insert(Content).values(id=1, subject="s", content="c", created_at=at)
            )
            for number, (status, due_at, error) in rows.items():
                await connection.execute(
                    insert(old_requests).values(
                        id=number,
                        topic_id="t",
                        to=f"u{number}@example.com",
                        recipient_key=f"u{number}@example.com",
                        content_id=1,
                        scheduled_at=at,
                        due_at=due_at,
                        status=status,
                        attempts=1,
                        open_count=0,
                        click_count=0,
                        error=error,
                        created_at=at,
                        updated_at=at,
                    )
                )
            await connection.execute(
                insert(OLD_RESULTS).values(
                    request_id=1,
                    status="Delivery",
                    source="ses",
                    sns_message_id="sns-1",
                    recipient="u1@example.com",
                    occurred_at=at,
                    raw="{}",
                    created_at=at,
                )
            )
        await asyncio.to_thread(_migrate, fresh_database_url, "head")

        async with engine.begin() as connection:
            results_after_upgrade = await _count(connection, Result)
            migrated = {
                row.id: (row.due_at, row.held, row.lease_expires_at, row.stop_reason)
                for row in await connection.execute(
                    select(
                        Request.id,
                        Request.due_at,
                        Request.held,
                        Request.lease_expires_at,
                        Request.stop_reason,
                    )
                )
            }
    finally:
        await engine.dispose()

    # SQLite copies a table to alter it: the event log that refers to it must survive that.
    assert results_after_upgrade == 1
    assert migrated == {
        1: (at, False, None, None),
        2: (lease_end, False, lease_end, None),
        3: (at, True, None, None),  # due at its scheduled time once resumed
        4: (at, False, None, StopReason.SUPPRESSED),
        5: (at, False, None, StopReason.CANCELLED),
    }
    await asyncio.to_thread(_migrate, fresh_database_url, "0006", down=True)
    engine = create_engine(to_async_url(fresh_database_url))
    try:
        async with engine.begin() as connection:
            assert await _count(connection, Result) == 1
    finally:
        await engine.dispose()


async def _count(connection: AsyncConnection, model: Any) -> int:
    return int((await connection.execute(select(func.count()).select_from(model))).scalar_one())


async def test_0013_builds_the_counters_of_the_requests_and_events_there_are(
    fresh_database_url: str,
) -> None:
    await asyncio.to_thread(_migrate, fresh_database_url, "0007")
    engine = create_engine(to_async_url(fresh_database_url))
    at = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
    rows = [  # (topic, address, status, outcome, delivered)
        ("sale", "a@gmail.com", RequestStatus.SENT, Outcome.DELIVERED, True),
        ("sale", "b@gmail.com", RequestStatus.SENT, None, False),
        ("sale", "c@naver.com", RequestStatus.FAILED, None, False),
        ("sale", "d@naver.com", RequestStatus.CREATED, None, False),
        ("news", "e@gmail.com", RequestStatus.STOPPED, None, False),
    ]
    try:
        async with engine.begin() as connection:
            await connection.execute(
                insert(Content).values(id=1, subject="s", content="c", created_at=at)
            )
            for number, (topic, address, status, outcome, delivered) in enumerate(rows, 1):
                await connection.execute(
                    insert(Request).values(
                        id=number,
                        topic_id=topic,
                        to=address,
                        recipient_key=address,
                        content_id=1,
                        scheduled_at=at,
                        due_at=at,
                        status=status,
                        outcome=outcome,
                        sent_at=at if status == RequestStatus.SENT else None,
                        delivered_at=at if delivered else None,
                        stop_reason=StopReason.CANCELLED
                        if status == RequestStatus.STOPPED
                        else None,
                        created_at=at,
                        updated_at=at,
                    )
                )
            for sns_id, event in (("sns-1", "Delivery"), ("sns-2", "Open"), ("sns-3", "Open")):
                await connection.execute(
                    insert(OLD_RESULTS).values(
                        request_id=1,
                        status=event,
                        source="ses",
                        sns_message_id=sns_id,
                        recipient="a@gmail.com",
                        occurred_at=at,
                        raw="{}",
                        created_at=at,
                    )
                )
            # Our own opens and clicks (one of each is found a machine's below, once 0012 gave
            # them that column), and an SES click.
            for request_id, event, minutes in (
                (1, "Open", 1),
                (1, "Open", 2),
                (2, "Click", 3),
                (2, "Click", 4),
                (2, "SesClick", 1),
            ):
                await connection.execute(
                    insert(OLD_RESULTS).values(
                        request_id=request_id,
                        status=event,
                        source="ses" if event.startswith("Ses") else "tracking",
                        recipient="x",
                        occurred_at=at + timedelta(minutes=minutes),
                        raw="{}",
                        created_at=at,
                    )
                )
        await asyncio.to_thread(_migrate, fresh_database_url, "0012")
        async with engine.begin() as connection:
            await connection.execute(
                update(Result)
                .where(
                    Result.source == "tracking",
                    Result.occurred_at.in_([at + timedelta(minutes=2), at + timedelta(minutes=3)]),
                )
                .values(machine=True)
            )
        await asyncio.to_thread(_migrate, fresh_database_url, "head")

        sessionmaker = create_sessionmaker(engine)
        async with sessionmaker() as session:
            report = await stats.verify(session, None)
            sale = await stats.topic_stats(session, "sale")
            topics = await stats.list_topics(session, cursor=None, limit=10)
            kept = {
                row.id: (row.event_types, row.opened_at, row.clicked_at, row.machine_click_count)
                for row in (await session.scalars(select(Request))).all()
            }
    finally:
        await engine.dispose()

    assert report.requests == 5
    assert report.differences == []
    assert (sale.request.total, sale.request.sent, sale.request.failed) == (4, 2, 1)
    assert sale.result.statuses == {"Delivery": 1, "Open": 1, "Click": 1, "SesClick": 1}
    assert (sale.result.outcomes.delivered, sale.result.outcomes.sent) == (1, 1)
    assert (sale.opens.total, sale.opens.machine, sale.opens.unique_human) == (2, 1, 1)
    assert (sale.clicks.total, sale.clicks.human, sale.clicks.unique_machine) == (2, 1, 1)
    assert kept[2] == (
        counters.EVENT_BITS["Click"] | counters.EVENT_BITS["SesClick"],
        None,
        at + timedelta(minutes=1),
        1,
    )
    assert kept[3] == (0, None, None, 0)
    assert sorted(topic.topic_id for topic in topics.topics) == ["news", "sale"]
    await asyncio.to_thread(_migrate, fresh_database_url, "0007", down=True)


async def test_0014_keeps_each_sns_payload_once_and_gives_it_back_on_the_way_down(
    fresh_database_url: str,
) -> None:
    await asyncio.to_thread(_migrate, fresh_database_url, "0012")
    engine = create_engine(to_async_url(fresh_database_url))
    at = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
    later = datetime(2026, 1, 5, 10, 5, tzinfo=UTC)
    bounce = '{"eventType":"Bounce","recipients":3}'
    delivery = '{"eventType":"Delivery"}'
    # (sns message id, recipient, raw, received): a bounce naming three, a delivery, our open.
    rows = [
        ("sns-1", "a@example.com", bounce, at),
        ("sns-1", "b@example.com", bounce, at),
        ("sns-1", "c@example.com", bounce, at),
        ("sns-2", "a@example.com", delivery, later),
        (None, "a@example.com", "{}", later),
    ]
    try:
        async with engine.begin() as connection:
            for number, (sns_id, recipient, raw, received) in enumerate(rows, start=1):
                await connection.execute(
                    insert(OLD_RESULTS).values(
                        id=number,
                        status="Open" if sns_id is None else "Bounce",
                        source="tracking" if sns_id is None else "ses",
                        sns_message_id=sns_id,
                        recipient=recipient,
                        occurred_at=at,
                        raw=raw,
                        created_at=received,
                    )
                )
        await asyncio.to_thread(_migrate, fresh_database_url, "0014")

        async with engine.begin() as connection:
            payloads = (await connection.execute(select(EventPayload))).all()
            events = (
                await connection.execute(
                    select(Result.id, Result.sns_message_id, Result.recipient).order_by(Result.id)
                )
            ).all()
            # Pruned before the way down: its rows get the old schema's empty payload.
            await connection.execute(
                delete(EventPayload).where(EventPayload.sns_message_id == "sns-2")
            )
        await asyncio.to_thread(_migrate, fresh_database_url, "0012", down=True)

        async with engine.begin() as connection:
            given_back = (
                await connection.execute(select(OLD_RESULTS.c.id, OLD_RESULTS.c.raw))
            ).all()
    finally:
        await engine.dispose()

    assert sorted(payloads) == [("sns-1", bounce, at), ("sns-2", delivery, later)]
    assert events == [(number, sns_id, to) for number, (sns_id, to, _r, _at) in enumerate(rows, 1)]
    assert dict(given_back) == {1: bounce, 2: bounce, 3: bounce, 4: "{}", 5: "{}"}


async def test_0015_gives_the_counters_key_their_value_and_keeps_the_counts_both_ways(
    fresh_database_url: str,
) -> None:
    await asyncio.to_thread(_migrate, fresh_database_url, "0014")
    engine = create_engine(to_async_url(fresh_database_url))
    sessionmaker = create_sessionmaker(engine)
    sent = (CounterScope.TOPIC, "news", "", 0, counters.SENT)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                insert(StatCounter).values(
                    scope=sent[0],
                    topic_id="news",
                    domain="",
                    grain_s=0,
                    bucket=0,
                    metric=counters.SENT,
                    value=5,
                )
            )
        await asyncio.to_thread(_migrate, fresh_database_url, "0015")
        upgraded = await _counters_key(engine)
        # The fold adds to a counter through the key (ON CONFLICT), value carried or not.
        async with sessionmaker() as session, session.begin():
            await stats_repository.insert_deltas(session, {sent: 2})
            await stats.fold(session)
        async with engine.connect() as connection:
            folded = (await connection.execute(select(StatCounter.value))).scalars().all()
        await asyncio.to_thread(_migrate, fresh_database_url, "0014", down=True)
        downgraded = await _counters_key(engine)
        async with engine.connect() as connection:
            kept = (await connection.execute(select(StatCounter.value))).scalars().all()
    finally:
        await engine.dispose()

    assert folded == [7]
    assert kept == [7]
    if engine.dialect.name == "postgresql":
        assert upgraded.endswith(
            "(scope, topic_id, domain, grain_s, bucket, metric) INCLUDE (value)"
        )
        assert downgraded.endswith("(scope, topic_id, domain, grain_s, bucket, metric)")


async def _counters_key(engine: AsyncEngine) -> str:
    """The definition of the counters' primary key index (PostgreSQL; "" on SQLite)."""
    if engine.dialect.name != "postgresql":
        return ""
    async with engine.connect() as connection:
        found = await connection.scalar(
            text("SELECT pg_get_indexdef('pk_stat_counters'::regclass)")
        )
    return str(found)


async def test_0016_and_0017_build_the_links_people_and_machines_counters_of_the_clicks(
    fresh_database_url: str,
) -> None:
    await asyncio.to_thread(_migrate, fresh_database_url, "0015")
    engine = create_engine(to_async_url(fresh_database_url))
    at = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
    # Two URLs longer than a counter's key that differ only past the cut: one link.
    long_url = "https://shop.example/" + "é" * 800
    clicks = [  # (request, url: None for the honeypot, a machine's)
        (1, "https://shop.example/sale", False),
        (1, "https://shop.example/sale", False),  # the same person again
        (1, "https://shop.example/faq", True),
        (2, "https://shop.example/sale", True),
        (2, None, True),
        (3, "https://shop.example/sale", False),
        (3, long_url + "a", False),
        (3, long_url + "b", True),
        (4, "https://shop.example/sale", False),  # another topic's
    ]
    try:
        async with engine.begin() as connection:
            await connection.execute(
                insert(Content).values(id=1, subject="s", content="c", created_at=at)
            )
            for number in range(1, 5):
                address = f"u{number}@gmail.com"
                await connection.execute(
                    insert(Request).values(
                        id=number,
                        topic_id="sale" if number < 4 else "news",
                        to=address,
                        recipient_key=address,
                        content_id=1,
                        scheduled_at=at,
                        due_at=at,
                        status=RequestStatus.SENT,
                        sent_at=at,
                        created_at=at,
                        updated_at=at,
                    )
                )
            for minute, (request_id, url, machine) in enumerate(clicks):
                await connection.execute(
                    insert(Result).values(
                        request_id=request_id,
                        status="Click",
                        source="tracking",
                        recipient=f"u{request_id}@gmail.com",
                        occurred_at=at + timedelta(minutes=minute),
                        created_at=at,
                        url=url,
                        machine=machine,
                    )
                )
            # The counters as 0015 keeps them: exact for all but the links, which it has not.
            await connection.execute(build.backfill_statement())
            for statement in build.rebuild_statements(connection.dialect.name):
                await connection.execute(statement)
        sessionmaker = create_sessionmaker(engine)
        await asyncio.to_thread(_migrate, fresh_database_url, "0016")
        async with sessionmaker() as session:
            without_machines = await stats.verify(session, None)
        await asyncio.to_thread(_migrate, fresh_database_url, "0017")
        async with sessionmaker() as session:
            report = await stats.verify(session, None)
            sale = await stats.topic_links(session, "sale")
            domains = await stats.topic_domains(session, "sale")
            timeline = await stats.topic_timeline(
                session,
                "sale",
                stats.parse_time_range(None, None, "minute", now=at + timedelta(minutes=8)),
            )
        await asyncio.to_thread(_migrate, fresh_database_url, "0016", down=True)
        machines_left = await _count_counters(
            engine,
            StatCounter.scope.in_([CounterScope.TOPIC_TIME, CounterScope.ACCOUNT_TIME]),
            StatCounter.metric.in_([counters.MACHINE_OPENS, counters.MACHINE_CLICKS]),
        )
        people_by_domain_left = await _count_counters(
            engine,
            StatCounter.scope == CounterScope.DOMAIN,
            StatCounter.metric.in_([counters.HUMAN_OPENED, counters.HUMAN_CLICKED]),
        )
        await asyncio.to_thread(_migrate, fresh_database_url, "0015", down=True)
        links_left = await _count_counters(engine, StatCounter.scope == CounterScope.LINK)
    finally:
        await engine.dispose()

    # Before 0017 a machine's clicks by time were missing; after, nothing. (The rebuild above
    # counts people's clicks by domain already, by today's rules: 0017 replaces them, once.)
    assert {d.counter.split(" ")[-1] for d in without_machines.differences} == {
        counters.MACHINE_CLICKS
    }
    assert report.differences == []
    # Of sale's three emails (all at gmail.com) two were clicked by a person.
    assert [(d.domain, d.clicked, d.human_clicked) for d in domains.domains] == [
        ("gmail.com", 3, 2)
    ]
    # One click a minute, the last another topic's.
    assert [(b.clicked.total, b.clicked.machine) for b in timeline.buckets][-9:] == [
        (1, 0),
        (1, 0),
        (1, 1),
        (1, 1),
        (1, 1),
        (1, 0),
        (1, 0),
        (1, 1),
        (0, 0),
    ]
    assert [
        (link.url, link.total, link.unique, link.machine, link.unique_human, link.unique_machine)
        for link in sale.links
    ] == [
        ("https://shop.example/sale", 4, 3, 1, 2, 1),
        ("https://shop.example/" + "é" * 738 + "…", 2, 1, 1, 1, 1),
        ("https://shop.example/faq", 1, 1, 1, 0, 1),
    ]
    assert (machines_left, people_by_domain_left, links_left) == (0, 0, 0)
