"""Engines as `db/engine.py` builds them: the driver options a PostgreSQL URL may carry reach
asyncpg as the numbers it wants; a transaction that only reads does not wait for a writer,
and refuses to write."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import insert, select, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from ses_sender.composition import Runtime
from ses_sender.config import Settings
from ses_sender.db.engine import begin_read_only, create_engine, create_sessionmaker
from ses_sender.models import AppSecret
from tests.support.databases import postgresql_only

NUMERIC_OPTIONS = {
    "timeout": "5.5",
    "command_timeout": "30",
    "statement_cache_size": "0",
    "max_cached_statement_lifetime": "60",
    "max_cacheable_statement_size": "1024",
    "prepared_statement_cache_size": "10",
}
NOW = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
SECRET = "test "  # the start of the names of the secrets a test stores


@postgresql_only
async def test_numeric_options_of_the_url_connect(database_url: str) -> None:
    url = make_url(database_url).update_query_dict(NUMERIC_OPTIONS)
    rendered = url.render_as_string(hide_password=False)
    settings = Settings(_env_file=None, DATABASE_URL=rendered)  # the settings take them
    engine = create_engine(settings.sqlalchemy_url)
    try:
        async with engine.connect() as connection:
            assert await connection.scalar(text("SELECT 1")) == 1
    finally:
        await engine.dispose()


async def stored_secrets(runtime: Runtime) -> dict[str, str]:
    """The secrets the test stored (the runtime keeps its own beside them)."""
    async with runtime.sessionmaker() as session:
        rows = await session.execute(
            select(AppSecret.name, AppSecret.value).where(AppSecret.name.startswith(SECRET))
        )
        return dict(rows.all())


async def driver_connection(session: AsyncSession) -> int:
    raw = await (await session.connection()).get_raw_connection()
    return id(raw.driver_connection)


async def test_a_read_only_transaction_reads_the_last_commit_beside_a_writer(
    runtime: Runtime,
) -> None:
    """On SQLite the writer holds the database's write lock, as every transaction that may
    write does from its BEGIN; a reader that waited for it would fail after the busy timeout."""
    async with runtime.sessionmaker() as session, session.begin():
        session.add(AppSecret(name=f"{SECRET}kept", value="committed", created_at=NOW))

    async with runtime.engine.connect() as writer:
        await writer.execute(
            update(AppSecret).where(AppSecret.name == f"{SECRET}kept").values(value="not committed")
        )
        async with runtime.sessionmaker() as session:
            await begin_read_only(session)
            read = await session.scalar(
                select(AppSecret.value).where(AppSecret.name == f"{SECRET}kept")
            )

    assert read == "committed"


async def test_a_write_in_a_read_only_transaction_fails_and_writes_nothing(
    runtime: Runtime,
) -> None:
    async with runtime.sessionmaker() as session:
        await begin_read_only(session)
        with pytest.raises(DBAPIError) as refused:
            await session.execute(
                insert(AppSecret).values(
                    name=f"{SECRET}written", value="by a reader", created_at=NOW
                )
            )

    message = str(refused.value.orig).replace("-", "")
    assert "readonly" in message  # SQLite: "… readonly database"; PostgreSQL: "… read-only …"
    assert await stored_secrets(runtime) == {}


async def test_a_connection_read_only_in_one_transaction_writes_in_the_next(
    settings: Settings, runtime: Runtime
) -> None:
    """Read-only is the transaction's: the pooled connection writes again after it."""
    engine = create_engine(settings.sqlalchemy_url, pool_size=1)
    sessionmaker = create_sessionmaker(engine)
    connections = set()
    try:
        for turn in range(2):
            async with sessionmaker() as session:
                await begin_read_only(session)
                await session.scalar(select(AppSecret.value))
                connections.add(await driver_connection(session))
            async with sessionmaker() as session, session.begin():
                session.add(AppSecret(name=f"{SECRET}{turn}", value="written", created_at=NOW))
                connections.add(await driver_connection(session))
    finally:
        await engine.dispose()

    assert len(connections) == 1  # one connection took every turn
    assert await stored_secrets(runtime) == {f"{SECRET}0": "written", f"{SECRET}1": "written"}
