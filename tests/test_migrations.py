from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import func, insert, select
from sqlalchemy.engine import Connection

from ses_sender.config import to_async_url
from ses_sender.db.base import Base
from ses_sender.db.engine import create_engine
from ses_sender.db.migrate import alembic_config, is_at_head, upgrade_to_head_async
from ses_sender.models import Content, Outcome, Request, Result
from ses_sender.runtime import Runtime
from tests.support.databases import postgres_database


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
                insert(Result).values(
                    request_id=1,
                    status="Complaint",
                    source="ses",
                    sns_message_id="sns-1",
                    recipient="u1@example.com",
                    occurred_at=at,
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
