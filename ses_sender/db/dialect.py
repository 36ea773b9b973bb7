"""Everything that differs between PostgreSQL and SQLite, in one place, beside the engine
settings it relies on (`engine.py`): upserts, id allocation, bulk inserts, statements in one
call to SQLite's driver thread, the server's clock. Features write their SQL once and call
these where the two databases part ways."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import (
    ColumnElement,
    FromClause,
    Select,
    Table,
    bindparam,
    cast,
    func,
    select,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.dml import UpdateBase
from sqlalchemy.types import TypeEngine

# One round trip for all the ids. MATERIALIZED looks the sequence up once: inlined, the lookup
# ran for every row (docs/decisions/0014-intake-ids-then-bulk-insert.md).
_NEXT_IDS = (
    "WITH sequence AS MATERIALIZED ("
    "SELECT pg_get_serial_sequence(:table, 'id')::regclass AS name) "
    "SELECT nextval(sequence.name) FROM sequence CROSS JOIN generate_series(1, :count)"
)


def insert_for(session: AsyncSession, model: Any) -> postgresql.Insert | sqlite.Insert:
    """An INSERT that knows ON CONFLICT on either database."""
    return insert_for_dialect(session.get_bind().dialect.name, model)


def insert_for_dialect(dialect: str, model: Any) -> postgresql.Insert | sqlite.Insert:
    """`insert_for` by dialect name, for statements built once and kept."""
    if dialect == "postgresql":
        return postgresql.insert(model)
    return sqlite.insert(model)


async def allocate_ids(connection: AsyncConnection, table: Table, count: int) -> list[int]:
    """`count` new ids for `table`, ascending, before its rows are inserted in bulk."""
    if connection.dialect.name == "postgresql":
        parameters = {"table": table.name, "count": count}
        return sorted((await connection.execute(text(_NEXT_IDS), parameters)).scalars())
    # SQLite numbers a rowid the same way (the largest plus one). No other writer can take these
    # ids before the insert: every SQLite transaction that may write begins IMMEDIATE, holding
    # the write lock from its start (engine.py). Were that lock missing, a clash would fail the
    # primary key.
    largest = await connection.scalar(select(func.max(table.c.id)))
    first = (largest or 0) + 1
    return list(range(first, first + count))


def bound(dialect: Dialect, column: ColumnElement[Any], value: Any) -> Any:
    """`value` as the driver takes it for `column` (UTC conversion, SQLite's datetime text): for
    rows written below the ORM, where every row shares the value."""
    process = column.type.dialect_impl(dialect).bind_processor(dialect)
    return value if process is None else process(value)


async def bulk_insert(
    connection: AsyncConnection,
    table: Table,
    columns: Sequence[str],
    rows: Sequence[tuple[Any, ...]],
) -> None:
    """Insert many rows of driver-ready values (see `bound`) in the connection's transaction:
    COPY on PostgreSQL, one driver-level executemany on SQLite: both skip the ORM's per-row
    work, which was most of an ingest's time."""
    if connection.dialect.name == "postgresql":
        raw = await connection.get_raw_connection()
        driver = raw.driver_connection
        # The SQLAlchemy adapter begins asyncpg's transaction with the first statement; outside
        # it, COPY would commit on its own and break all-or-nothing.
        if driver is None or not driver.is_in_transaction():
            raise RuntimeError(f"COPY into {table.name} outside the session's transaction")
        await driver.copy_records_to_table(table.name, records=rows, columns=list(columns))
        return
    quote = connection.dialect.identifier_preparer.quote
    names = ", ".join(quote(name) for name in columns)
    marks = ", ".join("?" for _ in columns)  # sqlite3's paramstyle
    statement = f"INSERT INTO {quote(table.name)} ({names}) VALUES ({marks})"  # noqa: S608
    await connection.exec_driver_sql(statement, list(rows))


# SQLite allows 32,766 bound parameters a statement.
_SQLITE_PARAMETERS = 32_766


async def _in_driver_thread(
    connection: AsyncConnection, statement: str, values: Sequence[Any]
) -> list[Any]:
    """Run one SQL statement on SQLite and fetch its rows in ONE call to aiosqlite's thread.
    SQLAlchemy's aiosqlite adapter makes three or four calls to that thread a statement (a
    cursor, the statement, its rows, closing it), each a wait for the thread and a wake-up of
    the event loop; on the hot paths those waits were most of a statement's cost, measured
    (docs/decisions/0020-stats-counters-as-deltas.md, docs/benchmarks.md "Click redirect").
    Errors come as SQLAlchemy's, as from any statement."""
    raw = await connection.get_raw_connection()
    driver = raw.driver_connection
    assert driver is not None
    try:
        return list(await driver.execute_fetchall(statement, values))
    except sqlite3.Error as error:
        # Without its values, as the engine hides them (db/engine.py): logged, sent to Sentry.
        raise DBAPIError.instance(statement, None, error, sqlite3.Error) from error


async def insert_rows_in_one_trip(
    connection: AsyncConnection,
    table: Table,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
) -> None:
    """Insert a few rows of driver-ready values on SQLite in one call to the driver's thread
    a statement (`_in_driver_thread`): one multi-row INSERT per 32,766 values."""
    quote = connection.dialect.identifier_preparer.quote
    names = ", ".join(quote(name) for name in columns)
    marks = "(" + ", ".join("?" for _ in columns) + ")"  # sqlite3's paramstyle
    per_statement = _SQLITE_PARAMETERS // len(columns)
    for start in range(0, len(rows), per_statement):
        part = rows[start : start + per_statement]
        statement = f"INSERT INTO {quote(table.name)} ({names}) VALUES " + ", ".join(  # noqa: S608
            [marks] * len(part)
        )
        await _in_driver_thread(connection, statement, [value for row in part for value in row])


@dataclass(frozen=True, slots=True)
class _DriverStatement:
    """A statement compiled for SQLite, with what SQLAlchemy would do to its values and rows."""

    sql: str
    names: Sequence[str]  # of its parameters, in their places
    defaults: Mapping[str, Any]  # values bound in the statement itself
    binds: Mapping[str, Callable[[Any], Any]]  # bind processors, by parameter name
    results: Sequence[Callable[[Any], Any] | None]  # result processors, by column


class OneTrip:
    """A statement run in one call to SQLite's driver thread (`_in_driver_thread`), for the
    few a hot path runs in every transaction: compiled once, its parameters and rows processed
    as SQLAlchemy would. On PostgreSQL, where a statement is one round trip anyway, it runs as
    any statement. Its parameters are named and single (no executemany, no expanding IN): to
    pass many rows, join `rows_source`."""

    def __init__(self, statement: Select[*tuple[Any, ...]] | UpdateBase) -> None:
        self._statement = statement
        self._compiled: _DriverStatement | None = None

    async def run(
        self, connection: AsyncConnection, parameters: Mapping[str, Any] | None = None
    ) -> list[tuple[Any, ...]]:
        """The statement's rows (none for a write without RETURNING), as tuples."""
        if connection.dialect.name != "sqlite":
            result = await connection.execute(self._statement, parameters)
            return [tuple(row) for row in result] if result.returns_rows else []
        compiled = self._compiled or self._compile(connection.dialect)
        given = {**compiled.defaults, **(parameters or {})}
        values = []
        for name in compiled.names:
            process = compiled.binds.get(name)
            values.append(given[name] if process is None else process(given[name]))
        rows = await _in_driver_thread(connection, compiled.sql, values)
        if not any(compiled.results):
            return [tuple(row) for row in rows]
        return [
            tuple(
                value if process is None else process(value)
                for process, value in zip(compiled.results, row, strict=True)
            )
            for row in rows
        ]

    def _compile(self, dialect: Dialect) -> _DriverStatement:
        compiled = self._statement.compile(dialect=dialect)
        assert isinstance(compiled, SQLCompiler)
        if compiled.post_compile_params or compiled.positiontup is None:
            raise TypeError("OneTrip takes single named parameters (no expanding IN)")
        binds = {}
        for parameter, name in compiled.bind_names.items():
            process = parameter.type.dialect_impl(dialect).bind_processor(dialect)
            if process is not None:
                binds[name] = process
        self._compiled = _DriverStatement(
            compiled.string,
            list(compiled.positiontup),
            {
                name: parameter.effective_value
                for parameter, name in compiled.bind_names.items()
                if not parameter.required
            },
            binds,
            [
                column.type.dialect_impl(dialect).result_processor(dialect, None)
                for column in self._statement.exported_columns
            ],
        )
        return self._compiled


async def database_time(session: AsyncSession) -> float | None:
    """The database server's clock in epoch seconds; None for SQLite, whose clock is ours."""
    if session.get_bind().dialect.name != "postgresql":
        return None
    return float(await session.scalar(text("SELECT extract(epoch FROM clock_timestamp())")))


def locks_rows(session: AsyncSession) -> bool:
    """Whether `SELECT … FOR UPDATE` locks anything: PostgreSQL's does; an SQLite transaction
    that may write already holds the whole database (`BEGIN IMMEDIATE`, db/engine.py)."""
    return session.get_bind().dialect.name == "postgresql"


# -- many rows as one statement's parameters ---------------------------------------------------

_ROWS_JSON = "b_rows_json"


def rows_source(
    dialect: str, name: str, columns: Sequence[tuple[str, TypeEngine[Any]]]
) -> FromClause:
    """A table of rows passed as parameters (`rows_parameters`), to join in one statement where
    an executemany would run one per row, and which, unlike an executemany, can return rows
    (`UPDATE … FROM rows … RETURNING`). Its SQL is the same whatever the number of rows (one
    cached plan): arrays taken apart by `unnest` on PostgreSQL, a JSON array by `json_each` on
    SQLite."""
    names = [column for column, _type in columns]
    if dialect == "postgresql":
        arrays = (
            bindparam(f"b_rows_{column}", type_=postgresql.ARRAY(type_))
            for column, type_ in columns
        )
        return func.unnest(*arrays).table_valued(*names).render_derived(name=name)
    each = func.json_each(bindparam(_ROWS_JSON)).table_valued("value")
    return (
        select(
            *(
                func.json_extract(each.c.value, f"$[{index}]").label(column)
                for index, column in enumerate(names)
            )
        )
        .select_from(each)
        .subquery(name)
    )


def rows_parameters(
    dialect: Dialect, columns: Sequence[tuple[str, TypeEngine[Any]]], rows: Sequence[Sequence[Any]]
) -> dict[str, Any]:
    """The parameters of `rows_source` for these rows (each a value per column, in order)."""
    if dialect.name == "postgresql":
        return {
            f"b_rows_{column}": [row[index] for row in rows]
            for index, (column, _type) in enumerate(columns)
        }
    processors = [type_.dialect_impl(dialect).bind_processor(dialect) for _name, type_ in columns]
    return {
        _ROWS_JSON: orjson.dumps(
            [
                [
                    value if process is None else process(value)
                    for process, value in zip(processors, row, strict=True)
                ]
                for row in rows
            ]
        ).decode()
    }


def json_object_entries(dialect: str, column: Any) -> Any:
    """The entries of a JSON object column as rows (`key`, `value` as text), a table-valued
    function to put in a FROM beside the column's table (`jsonb_each_text` on PostgreSQL,
    `json_each` on SQLite: both read the row beside them)."""
    if dialect == "postgresql":
        return func.jsonb_each_text(cast(column, postgresql.JSONB)).table_valued("key", "value")
    return func.json_each(column).table_valued("key", "value")


def by_code_point(dialect: str, column: ColumnElement[str]) -> ColumnElement[str]:
    """The column compared character by character, as Python compares strings (SQLite's
    default; PostgreSQL's database collation may order by language rules)."""
    return column.collate("C") if dialect == "postgresql" else column
