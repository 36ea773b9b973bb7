"""Database outages, without touching the database server.

- In-process workers: `SwitchableSessionmaker`, whose database goes away and comes back when
  a test says so.
- Worker processes: `database_outage` takes the database away from them. On PostgreSQL they
  connect through a TCP proxy that drops and refuses their connections; on SQLite the test
  holds the database's write lock, so every transaction of theirs waits (up to their busy
  timeout) and then fails.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ses_sender.db.engine import create_engine, create_sessionmaker
from tests.support.tcp_proxy import TcpProxy

# Nothing listens on port 1: every connection is refused, as from a database that is down.
UNREACHABLE_URL = "postgresql+asyncpg://postgres@127.0.0.1:1/unreachable"


class SwitchableSessionmaker:
    """Sessions on the working database, or, while `down`, on one that refuses connections."""

    def __init__(self, working: async_sessionmaker[AsyncSession]) -> None:
        self._working = working
        self._engine = create_engine(UNREACHABLE_URL)
        self._unreachable = create_sessionmaker(self._engine)
        self.down = False

    def __call__(self) -> AsyncSession:
        return (self._unreachable if self.down else self._working)()

    async def close(self) -> None:
        await self._engine.dispose()


class DatabaseOutage:
    """`url`: what the workers are given. `begin()` and `end()` the outage."""

    def __init__(self, database_url: str, proxy: TcpProxy | None) -> None:
        self._database_url = database_url
        self._proxy = proxy
        self._lock: sqlite3.Connection | None = None
        parsed = make_url(database_url)
        self.url = (
            database_url
            if proxy is None
            else parsed.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
        )

    def begin(self) -> None:
        if self._proxy is not None:
            self._proxy.cut()
            return
        database = make_url(self._database_url).database
        assert database is not None
        self._lock = sqlite3.connect(database, isolation_level=None)
        self._lock.execute("BEGIN EXCLUSIVE")

    def end(self) -> None:
        if self._proxy is not None:
            self._proxy.restore()
            return
        if self._lock is not None:
            self._lock.execute("ROLLBACK")
            self._lock.close()
            self._lock = None


@asynccontextmanager
async def database_outage(database_url: str) -> AsyncIterator[DatabaseOutage]:
    proxy: TcpProxy | None = None
    if make_url(database_url).get_backend_name() == "postgresql":
        parsed = make_url(database_url)
        proxy = TcpProxy(parsed.host or "127.0.0.1", parsed.port or 5432)
        await proxy.start()
    outage = DatabaseOutage(database_url, proxy)
    try:
        yield outage
    finally:
        outage.end()
        if proxy is not None:
            await proxy.stop()
