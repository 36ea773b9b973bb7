"""Engines: SQLite pragmas on every connection, a sized pool on PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from ses_sender.config import POSTGRESQL_INTEGER_OPTIONS

SQLITE_BUSY_TIMEOUT_MS = 30_000
# SQLAlchemy's adapter turns its own, prepared_statement_cache_size, into a number.
ASYNCPG_INTEGER_OPTIONS = frozenset(POSTGRESQL_INTEGER_OPTIONS) - {"prepared_statement_cache_size"}
# A failed statement's error (logged, sent to Sentry) shows the SQL, not the values: those are
# addresses, subjects and contents.
HIDE_PARAMETERS = True


def is_sqlite(engine: AsyncEngine) -> bool:
    return engine.dialect.name == "sqlite"


def sqlite_file_missing(url: str) -> bool:
    """An SQLite URL whose file does not exist yet: connecting would create it."""
    parsed = make_url(url)
    database = parsed.database or ""
    return (
        parsed.get_backend_name() == "sqlite"
        and database not in ("", ":memory:")
        and not Path(database).exists()
    )


def create_engine(url: str, *, pool_size: int = 10) -> AsyncEngine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(
            url,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
            hide_parameters=HIDE_PARAMETERS,
        )
        # Pragmas are per connection: set them on every new one, not once through the pool (the
        # seed lost foreign keys and its busy timeout whenever a connection was recycled).
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        event.listen(engine.sync_engine, "begin", _sqlite_begin_immediate)
        return engine
    # SQLAlchemy would hand asyncpg its numeric options (config.STATEMENT_CACHES_OFF among them)
    # as text, and asyncpg wants numbers; the settings checked them.
    numbers = {
        name: (int if name in ASYNCPG_INTEGER_OPTIONS else float)(str(parsed.query[name]))
        for name in (*ASYNCPG_INTEGER_OPTIONS, "timeout", "command_timeout")
        if name in parsed.query
    }
    connect_args: dict[str, Any] = numbers
    parsed = parsed.difference_update_query(numbers)
    return create_async_engine(
        parsed,
        connect_args=connect_args,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        hide_parameters=HIDE_PARAMETERS,
    )


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # aiosqlite opens in the legacy transaction mode; take over BEGIN so that a write
    # transaction takes the lock up front (BEGIN IMMEDIATE) instead of failing to upgrade.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.close()


def _sqlite_begin_immediate(connection: Any) -> None:
    # Every transaction takes the write lock at BEGIN, where busy_timeout applies. A deferred
    # transaction that reads and then writes fails at once with SQLITE_BUSY instead of waiting.
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)
