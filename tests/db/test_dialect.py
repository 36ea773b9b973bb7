"""What differs between the databases, below the features: SQLite's statements in one trip."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import (
    Boolean,
    Column,
    Integer,
    MetaData,
    String,
    Table,
    bindparam,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from ses_sender.db.base import UtcDateTime
from ses_sender.db.dialect import OneTrip, insert_rows_in_one_trip
from ses_sender.db.engine import create_engine

_ROWS = Table(
    "rows",
    MetaData(),
    Column("number", Integer, nullable=False),
    Column("name", String),
    Column("at", UtcDateTime),
    Column("flag", Boolean),
)
_NOON = datetime(2026, 12, 4, 12, 0, 0, 123_456, tzinfo=UTC)


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


async def test_a_statement_in_one_trip_binds_and_reads_values_as_sqlalchemy_does(
    engine: AsyncEngine,
) -> None:
    rows: list[dict[str, object]] = [
        {"number": 1, "name": "one", "at": _NOON, "flag": True},
        {"number": 2, "name": None, "at": None, "flag": False},
    ]
    since = OneTrip(
        select(_ROWS.c.number, _ROWS.c.name, _ROWS.c.at, _ROWS.c.flag)
        .where(_ROWS.c.at >= bindparam("since", type_=UtcDateTime()), _ROWS.c.flag.is_(True))
        .order_by(_ROWS.c.number)
    )
    rename = OneTrip(update(_ROWS).where(_ROWS.c.number == 2).values(name=bindparam("name")))
    async with engine.begin() as connection:
        await connection.execute(insert(_ROWS), rows)
        assert await rename.run(connection, {"name": "two"}) == []
        found = await since.run(connection, {"since": _NOON})
        names = await OneTrip(select(_ROWS.c.name).order_by(_ROWS.c.number)).run(connection)

    assert found == [(1, "one", _NOON, True)]
    assert names == [("one",), ("two",)]


async def test_one_trip_refuses_a_statement_with_an_expanding_parameter(
    engine: AsyncEngine,
) -> None:
    async with engine.connect() as connection:
        with pytest.raises(TypeError):
            await OneTrip(select(_ROWS.c.name).where(_ROWS.c.number.in_([1, 2]))).run(connection)
