"""SQL for accepting messages: contents, one request row per recipient, idempotency keys."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, func, insert, select, text, update
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from ses_sender.db.statements import insert_for
from ses_sender.models import Content, IdempotencyKey, Request, RequestStatus

if TYPE_CHECKING:
    from ses_sender.messages.service import ValidMessage


@dataclass(frozen=True, slots=True)
class StoredReply:
    request_hash: str
    status_code: int
    response: str


async def insert_content(session: AsyncSession, message: ValidMessage, *, now: datetime) -> int:
    content_id = await session.scalar(
        insert(Content)
        .values(
            topic_id=message.topic_id,
            subject=message.subject,
            content=message.content,
            created_at=now,
        )
        .returning(Content.id)
    )
    assert isinstance(content_id, int)
    return content_id


# One round trip for all the ids. MATERIALIZED looks the sequence up once: inlined, the lookup
# ran for every row and took ~3x as long (230 ms against 45 ms for 100,000 ids on the server).
_NEXT_REQUEST_IDS = text(
    "WITH sequence AS MATERIALIZED ("
    "SELECT pg_get_serial_sequence('email_requests', 'id')::regclass AS name) "
    "SELECT nextval(sequence.name) FROM sequence CROSS JOIN generate_series(1, :count)"
)


async def insert_requests(
    session: AsyncSession, message: ValidMessage, content_id: int, *, now: datetime
) -> list[int]:
    """Insert one row per recipient; the ids come back in the recipients' order.

    Both databases hand out the ids first, then take all the rows in one bulk statement.
    bench/ingest.py at 100,000 recipients, end to end (docs/benchmarks.md): the ORM's
    executemany with RETURNING sort_by_parameter_order did 32,000 rec/s on PostgreSQL and
    6,300 rec/s on SQLite; ids + COPY does 90,000 rec/s on PostgreSQL, ids + one driver-level
    executemany 139,000 rec/s on SQLite. Of the ~750 ms COPY still takes, about half is the
    foreign-key check on content_id and a quarter the six indexes.
    """
    if not message.recipients:
        return []
    connection = await session.connection()
    dialect = connection.dialect
    count = len(message.recipients)
    if dialect.name == "postgresql":
        # Sorted: ids ascend in the recipients' order, as RETURNING gave them before.
        ids = sorted((await connection.execute(_NEXT_REQUEST_IDS, {"count": count})).scalars())
    else:
        # Every transaction on SQLite starts with BEGIN IMMEDIATE (db/engine.py), so no other
        # writer can take these ids before we do; this is also how SQLite numbers a rowid
        # itself (the largest plus one). Were the lock missing, a clash fails the primary key.
        largest = await connection.scalar(select(func.max(Request.id)))
        first = (largest or 0) + 1
        ids = list(range(first, first + count))
    # Every value but the id and the address is the same on each row: run it through the
    # column's own bind processing once (UTC conversion, SQLite's datetime text). The other
    # columns (message_id, sent_at, delivered_at, ...) stay NULL.
    shared = {
        "topic_id": message.topic_id,
        "content_id": content_id,
        "scheduled_at": message.scheduled_at,
        "due_at": message.scheduled_at,
        "status": int(RequestStatus.CREATED),
        "attempts": 0,
        "open_count": 0,
        "click_count": 0,
        "created_at": now,
        "updated_at": now,
    }
    table = Request.__table__.c
    values = tuple(_bound(dialect, table[name], value) for name, value in shared.items())
    columns = ("id", "to", "recipient_key", *shared)
    rows = [
        (request_id, recipient.address, recipient.key, *values)
        for request_id, recipient in zip(ids, message.recipients, strict=True)
    ]
    if dialect.name == "postgresql":
        await _copy_rows(connection, columns, rows)
    else:
        await connection.exec_driver_sql(_insert_sql(dialect, columns), rows)
    return ids


def _bound(dialect: Dialect, column: ColumnElement[Any], value: Any) -> Any:
    process = column.type.dialect_impl(dialect).bind_processor(dialect)
    return value if process is None else process(value)


async def _copy_rows(
    connection: AsyncConnection, columns: tuple[str, ...], rows: list[tuple[Any, ...]]
) -> None:
    """COPY the rows in through asyncpg, inside the session's transaction."""
    raw = await connection.get_raw_connection()
    driver = raw.driver_connection
    # The SQLAlchemy adapter begins asyncpg's transaction with its first statement (the ids
    # above); outside it, COPY would commit on its own and break all-or-nothing.
    if driver is None or not driver.is_in_transaction():
        raise RuntimeError("COPY into email_requests outside the session's transaction")
    await driver.copy_records_to_table(Request.__tablename__, records=rows, columns=columns)


def _insert_sql(dialect: Dialect, columns: tuple[str, ...]) -> str:
    quote = dialect.identifier_preparer.quote
    names = ", ".join(quote(name) for name in columns)
    marks = ", ".join("?" for _ in columns)  # sqlite3's paramstyle
    table = quote(Request.__tablename__)
    return f"INSERT INTO {table} ({names}) VALUES ({marks})"  # noqa: S608 - the model's names


async def claim_idempotency_key(
    session: AsyncSession, key: str, request_hash: str, *, now: datetime
) -> bool:
    """Insert the key as "in progress"; False when it already exists."""
    statement = insert_for(session, IdempotencyKey)
    result = await session.execute(
        statement.values(
            key=key, request_hash=request_hash, status_code=0, response="", created_at=now
        )
        .on_conflict_do_nothing(index_elements=[IdempotencyKey.key])
        .returning(IdempotencyKey.key)
    )
    return result.scalar_one_or_none() is not None


async def record_idempotent_reply(
    session: AsyncSession, key: str, status_code: int, response: str
) -> None:
    await session.execute(
        update(IdempotencyKey)
        .where(IdempotencyKey.key == key)
        .values(status_code=status_code, response=response)
    )


async def find_idempotent_reply(session: AsyncSession, key: str) -> StoredReply | None:
    row = (
        await session.execute(
            select(
                IdempotencyKey.request_hash, IdempotencyKey.status_code, IdempotencyKey.response
            ).where(IdempotencyKey.key == key)
        )
    ).one_or_none()
    return None if row is None else StoredReply(*row)
