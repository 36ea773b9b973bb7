"""Engines: SQLite pragmas on every connection, a sized pool on PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection, make_url
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
# The execution option of a transaction that only reads (`begin_read_only`), on SQLite.
_SQLITE_READ_ONLY = "ses_sender_sqlite_read_only"
# Whether an SQLite connection refuses writes now (PRAGMA query_only), in its `info`: the
# pragma stays set on the connection from one transaction to the next.
_QUERY_ONLY = "ses_sender_query_only"


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
        event.listen(engine.sync_engine, "begin", _sqlite_begin)
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


def _sqlite_begin(connection: Connection) -> None:
    # A transaction that may write takes the write lock at BEGIN, where busy_timeout applies. A
    # deferred transaction that reads and then writes fails at once with SQLITE_BUSY instead of
    # waiting. One that only reads (`begin_read_only`) begins deferred: under WAL it reads the
    # last commit beside a writer instead of waiting for the lock. query_only makes a write in
    # it fail every time, not only when another writer happens to hold the lock; it refuses
    # BEGIN IMMEDIATE too, so it is set before BEGIN.
    read_only = bool(connection.get_execution_options().get(_SQLITE_READ_ONLY, False))
    if connection.info.get(_QUERY_ONLY, False) != read_only:
        connection.exec_driver_sql(f"PRAGMA query_only={int(read_only)}")
        connection.info[_QUERY_ONLY] = read_only
    connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


async def begin_read_only(session: AsyncSession) -> None:
    """Begin the session's transaction as one that only reads; before its first statement.

    On SQLite it reads beside a writer instead of waiting for the write lock, which the click
    recorder or the worker may hold for tens of milliseconds; on PostgreSQL, where reads never
    wait, it begins READ ONLY. Either way a write in it fails at once, on SQLite with
    "attempt to write a readonly database"."""
    if session.get_bind().dialect.name == "postgresql":
        options: dict[str, Any] = {"postgresql_readonly": True}
    else:
        options = {_SQLITE_READ_ONLY: True}
    await session.connection(execution_options=options)


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)
