"""Paused-topic benchmark: what a large paused backlog costs the claim, and what pausing costs.

    make bench-paused                  # or: .venv/bin/python -m bench.paused_claim --help

For each backend (SQLite in a temporary file, PostgreSQL in a temporary database created and
dropped here) the bench queues `--queued` emails, all due, in a topic "big", then 1,000 due
after them in a topic "small", and times, in process:

1. the claim of 500 rows once "big" is paused but before its rows are held (what the claim
   pays for rows that reach a paused topic between two sweeps: it skips them one by one);
2. the pause itself (`control.service.pause_topic`: record it, hold the topic's queued rows);
3. the claim of 500 rows right after the pause, while the held rows' old versions are still in
   the claim's index range (PostgreSQL), then on a vacuumed table, as autovacuum soon leaves it
   after an update that large;
4. the resume (`control.service.resume_topic`).

Claims are medians of 5; on PostgreSQL the table is vacuumed before each claim of steps 1 and
3b, since each rolled-back claim leaves old row versions behind as well.

Each claim is rolled back, so every one sees the same queue. Only loopback addresses are
contacted; the temporary file and database are removed even when a run fails.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import asyncpg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from ses_sender.config import to_async_url
from ses_sender.control import service
from ses_sender.db.engine import create_engine, create_sessionmaker
from ses_sender.db.migrate import upgrade_to_head_async
from ses_sender.delivery import repository

DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"
CLAIM = 500
ACTIVE = 1_000
REPEAT = 5

T = TypeVar("T")

# One statement per backend, so a million rows take seconds, not minutes.
_FILL = {
    "postgresql": """
        INSERT INTO email_requests (topic_id, "to", recipient_key, content_id, scheduled_at,
            status, due_at, attempts, open_count, click_count, created_at, updated_at)
        SELECT :topic, 'u' || g || '@example.com', 'u' || g || '@example.com', :content,
            CAST(:due AS timestamptz), 0, CAST(:due AS timestamptz), 0, 0, 0,
            CAST(:due AS timestamptz), CAST(:due AS timestamptz)
        FROM generate_series(1, :count) AS g
    """,
    "sqlite": """
        WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < :count)
        INSERT INTO email_requests (topic_id, "to", recipient_key, content_id, scheduled_at,
            status, due_at, attempts, open_count, click_count, created_at, updated_at)
        SELECT :topic, 'u' || n || '@example.com', 'u' || n || '@example.com', :content, :due,
            0, :due, 0, 0, 0, :due, :due
        FROM g
    """,
}


@asynccontextmanager
async def database(backend: str, postgres: str) -> AsyncIterator[str]:
    if backend == "sqlite":
        with tempfile.TemporaryDirectory() as folder:
            yield f"sqlite:///{Path(folder) / 'bench.db'}"
        return
    name = f"ses_sender_bench_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(postgres)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield f"{postgres.rsplit('/', 1)[0]}/{name}"
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def fill(
    engine: AsyncEngine,
    backend: str,
    topic: str,
    count: int,
    due: datetime,
) -> None:
    async with create_sessionmaker(engine)() as session, session.begin():
        content = await session.scalar(
            text(
                "INSERT INTO email_contents (topic_id, subject, content, created_at) "
                "VALUES (:topic, 'Hello', '<p>Hi</p>', :now) RETURNING id"
            ),
            {"topic": topic, "now": stamp(backend, due)},
        )
        await session.execute(
            text(_FILL[backend]),
            {"topic": topic, "content": content, "due": stamp(backend, due), "count": count},
        )
    await vacuum(engine)


async def vacuum(engine: AsyncEngine) -> None:
    """What autovacuum does soon after a large update on PostgreSQL (SQLite needs none)."""
    if engine.dialect.name != "postgresql":
        return
    async with engine.connect() as connection:
        autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
        await autocommit.execute(text("VACUUM ANALYZE email_requests"))


def stamp(backend: str, at: datetime) -> datetime | str:
    """A time as each backend stores it (SQLite: UTC text, as the models write it)."""
    return at.strftime("%Y-%m-%d %H:%M:%S.%f") if backend == "sqlite" else at


async def timed(action: Callable[[], Awaitable[T]]) -> tuple[T, float]:
    started = time.perf_counter()
    result = await action()
    return result, (time.perf_counter() - started) * 1000


async def claim_ms(sessionmaker: async_sessionmaker[AsyncSession], now: datetime) -> float:
    async with sessionmaker() as session, session.begin():
        batch, ms = await timed(
            lambda: repository.claim_due(
                session,
                now=now,
                lease_until=now + timedelta(minutes=2),
                lease_token=1,
                limit=CLAIM,
            )
        )
        assert len(batch) == CLAIM
        assert {queued.topic_id for queued in batch} == {"small"}
        await session.rollback()
    return ms


async def vacuumed_claim_ms(
    engine: AsyncEngine, sessionmaker: async_sessionmaker[AsyncSession], now: datetime
) -> float:
    """A claim on a vacuumed table: a rolled-back claim leaves old row versions behind too."""
    await vacuum(engine)
    return await claim_ms(sessionmaker, now)


async def in_transaction(
    sessionmaker: async_sessionmaker[AsyncSession],
    action: Callable[[AsyncSession], Awaitable[T]],
) -> float:
    async with sessionmaker() as session, session.begin():
        _result, ms = await timed(lambda: action(session))
    return ms


async def run(backend: str, queued: int, postgres: str) -> dict[str, float]:
    async with database(backend, postgres) as url:
        await upgrade_to_head_async(url)
        engine = create_engine(to_async_url(url))
        sessionmaker = create_sessionmaker(engine)
        try:
            now = datetime.now(UTC)
            await fill(engine, backend, "big", queued, now - timedelta(hours=1))
            await fill(engine, backend, "small", ACTIVE, now - timedelta(minutes=1))
            async with sessionmaker() as session, session.begin():
                await session.execute(
                    text("INSERT INTO topic_pauses (topic_id, paused_at) VALUES ('big', :at)"),
                    {"at": stamp(backend, now)},
                )
            skipping = [await vacuumed_claim_ms(engine, sessionmaker, now) for _ in range(REPEAT)]
            pause = await in_transaction(
                sessionmaker, lambda session: service.pause_topic(session, "big", now=now)
            )
            held = [await claim_ms(sessionmaker, now) for _ in range(REPEAT)]
            vacuumed = [await vacuumed_claim_ms(engine, sessionmaker, now) for _ in range(REPEAT)]
            resume = await in_transaction(
                sessionmaker, lambda session: service.resume_topic(session, "big", now=now)
            )
        finally:
            await engine.dispose()
    return {
        "claim_skipping_ms": statistics.median(skipping),
        "pause_ms": pause,
        "claim_held_ms": statistics.median(held),
        "claim_vacuumed_ms": statistics.median(vacuumed),
        "resume_ms": resume,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", nargs="+", default=["sqlite", "postgresql"])
    parser.add_argument("--queued", type=int, default=1_000_000, help="emails in the paused topic")
    parser.add_argument("--postgres", default=DEFAULT_POSTGRES, help="an admin DSN")
    args = parser.parse_args()
    print(f"claim of {CLAIM} with {args.queued:,} queued in a paused topic ahead of {ACTIVE:,}")
    print("backend     claim: skipping    pause   claim: held   after vacuum   resume")
    for backend in args.backends:
        figures = asyncio.run(run(backend, args.queued, args.postgres))
        print(
            f"{backend:<11} {figures['claim_skipping_ms']:>12.1f} ms"
            f" {figures['pause_ms'] / 1000:>6.1f} s {figures['claim_held_ms']:>10.1f} ms"
            f" {figures['claim_vacuumed_ms']:>11.1f} ms {figures['resume_ms'] / 1000:>6.1f} s"
        )


if __name__ == "__main__":
    main()
