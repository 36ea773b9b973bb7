"""The databases tests run against: SQLite files and PostgreSQL databases of their own.

PostgreSQL tests skip when no server answers at `POSTGRES_ADMIN_DSN`, except where
SES_SENDER_REQUIRE_POSTGRES=1 (CI), where that is a failure.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import NoReturn

import asyncpg
import pytest
from sqlalchemy import text

from ses_sender.composition import Runtime
from ses_sender.db.base import Base

POSTGRES_ADMIN_DSN = os.environ.get(
    "SES_SENDER_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REQUIRE_POSTGRES_ENV = "SES_SENDER_REQUIRE_POSTGRES"
BACKENDS = ("sqlite", "postgresql")
BACKENDS_ENV = "SES_SENDER_TEST_BACKENDS"  # e.g. "sqlite": which backends the db tests run on

# A db test that is about what only PostgreSQL offers (several processes over one database):
# it runs on PostgreSQL alone, and under --backend sqlite it is deselected.
postgresql_only = pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
# And one about what only SQLite has (its database a file on a disk that can fill up).
sqlite_only = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


def skip_without_postgres() -> NoReturn:
    """Skip a PostgreSQL test when no server answers; in CI that is a failure instead."""
    if os.environ.get(REQUIRE_POSTGRES_ENV) == "1":
        pytest.fail(f"PostgreSQL is required but {POSTGRES_ADMIN_DSN} does not answer")
    pytest.skip(f"no PostgreSQL at {POSTGRES_ADMIN_DSN}")


async def postgres_reachable() -> bool:
    try:
        connection = await asyncpg.connect(POSTGRES_ADMIN_DSN, timeout=3)
    except (OSError, asyncpg.PostgresError):
        return False
    await connection.close()
    return True


@asynccontextmanager
async def postgres_database(prefix: str) -> AsyncIterator[str]:
    """A new, empty PostgreSQL database, dropped afterwards; its URL.

    Named `<prefix>_<xdist worker>_<random>`: unique whoever else uses the server, and the
    worker that made it is in its name.
    """
    if not await postgres_reachable():
        skip_without_postgres()
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    name = f"{prefix}_{worker}_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(POSTGRES_ADMIN_DSN)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield f"{POSTGRES_ADMIN_DSN.rsplit('/', 1)[0]}/{name}"
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def empty_tables(runtime: Runtime) -> None:
    """Each test starts from empty tables (faster than a database per test). Opens and clicks
    still being written first: written after, they would land in the next test's tables (and
    on PostgreSQL a write under way deadlocks with TRUNCATE)."""
    await runtime.hits.settle()
    async with runtime.engine.begin() as connection:
        names = [table.name for table in reversed(Base.metadata.sorted_tables)]
        if connection.dialect.name == "postgresql":
            await connection.execute(text(f"TRUNCATE {', '.join(names)} RESTART IDENTITY CASCADE"))
        else:
            for name in names:
                await connection.execute(text(f"DELETE FROM {name}"))  # noqa: S608 - our names
