"""A database that goes away from worker processes, and comes back, without touching the
database server: on PostgreSQL the workers connect through a `FaultProxy` that is cut; on SQLite
the test holds the database's write lock, so every transaction of theirs waits (up to their
30 s busy timeout) and then fails."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.engine import make_url

from tests.support.fault_proxy import FaultProxy, fault_proxy
from tests.support.ports import HOST


class WorkerDatabaseOutage:
    """`url`: what the workers are given. `begin()` and `end()` the outage."""

    def __init__(self, database_url: str, proxy: FaultProxy | None) -> None:
        self._database_url = database_url
        self._proxy = proxy
        self._lock: sqlite3.Connection | None = None
        self.url = (
            database_url
            if proxy is None
            else make_url(database_url)
            .set(host=HOST, port=proxy.port)
            .render_as_string(hide_password=False)
        )

    async def begin(self) -> None:
        if self._proxy is not None:
            await self._proxy.cut()
            return
        database = make_url(self._database_url).database
        assert database is not None
        self._lock = sqlite3.connect(database, isolation_level=None)
        self._lock.execute("BEGIN EXCLUSIVE")

    async def end(self) -> None:
        if self._proxy is not None:
            await self._proxy.restore()
            return
        if self._lock is not None:
            self._lock.execute("ROLLBACK")
            self._lock.close()
            self._lock = None


@asynccontextmanager
async def worker_database_outage(database_url: str) -> AsyncIterator[WorkerDatabaseOutage]:
    parsed = make_url(database_url)
    if parsed.get_backend_name() != "postgresql":
        outage = WorkerDatabaseOutage(database_url, None)
        try:
            yield outage
        finally:
            await outage.end()
        return
    async with fault_proxy(parsed.host or HOST, parsed.port or 5432) as proxy:
        outage = WorkerDatabaseOutage(database_url, proxy)
        yield outage
