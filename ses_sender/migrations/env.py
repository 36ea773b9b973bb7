"""Alembic environment: runs migrations over our own async engine (SQLite or PostgreSQL)."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

import ses_sender.models  # noqa: F401 - registers every table on the metadata
from ses_sender.db.base import Base
from ses_sender.db.engine import create_engine

config = context.config
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite alters tables by copying them; batch mode does that for us.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_online() -> None:
    engine = create_engine(config.get_main_option("sqlalchemy.url") or "")
    try:
        async with engine.connect() as connection:
            if connection.dialect.name == "sqlite":
                await _without_foreign_keys(connection)
            await connection.run_sync(_run)
            await connection.commit()
    finally:
        await engine.dispose()


async def _without_foreign_keys(connection: AsyncConnection) -> None:
    """SQLite alters a table by copying it and dropping the original, and dropping a table with
    foreign keys enforced deletes, by its ON DELETE CASCADE, every row that refers to it (the
    whole event log, for email_requests). The pragma only takes effect outside a transaction,
    so it goes to the driver before SQLAlchemy begins one."""
    raw = await connection.get_raw_connection()
    assert raw.driver_connection is not None
    await raw.driver_connection.execute("PRAGMA foreign_keys=OFF")


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported; run them against a database")
existing = config.attributes.get("connection")
if existing is not None:
    _run(existing)
else:
    asyncio.run(_run_online())
