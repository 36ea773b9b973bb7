from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Connection

from ses_sender.db.base import Base
from ses_sender.db.engine import create_engine
from ses_sender.db.migrate import is_at_head, upgrade_to_head_async
from ses_sender.runtime import Runtime


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
