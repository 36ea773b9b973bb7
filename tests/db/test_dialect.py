"""What differs between the databases, below the features: SQLite's inserts in one trip."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from ses_sender.db.dialect import insert_rows_in_one_trip
from ses_sender.db.engine import create_engine

_ROWS = Table("rows", MetaData(), Column("number", Integer, nullable=False), Column("name", String))


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/rows.db")
    async with engine.begin() as connection:
        await connection.run_sync(_ROWS.metadata.create_all)
    yield engine
    await engine.dispose()


async def test_rows_past_one_statements_parameters_are_all_written_in_the_transaction(
    engine: AsyncEngine,
) -> None:
    rows = [(number, f"n{number}") for number in range(40_000)]  # 80,000 values: 3 statements
    async with engine.begin() as connection:
        await insert_rows_in_one_trip(connection, _ROWS, ("number", "name"), rows)
    async with engine.begin() as connection:
        await insert_rows_in_one_trip(connection, _ROWS, ("number", "name"), [(-1, "gone")])
        await connection.rollback()
    async with engine.connect() as connection:
        found = (
            await connection.execute(
                select(func.count(), func.sum(_ROWS.c.number), func.min(_ROWS.c.number))
            )
        ).one()

    assert tuple(found) == (40_000, sum(range(40_000)), 0)


async def test_a_refused_row_fails_as_sqlalchemys_error_without_the_values(
    engine: AsyncEngine,
) -> None:
    async with engine.connect() as connection:
        with pytest.raises(IntegrityError) as failed:
            await insert_rows_in_one_trip(
                connection, _ROWS, ("number", "name"), [(1, "jane@example.net"), (None, "x")]
            )

    assert "NOT NULL" in str(failed.value)
    assert "jane@example.net" not in str(failed.value)
