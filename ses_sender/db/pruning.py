"""The one pruning primitive: delete a few rows at a time.

`DELETE … WHERE key IN (SELECT key … WHERE … LIMIT n)`: each statement deletes at most n rows,
found by an index, so it holds row locks (never a table lock) on those rows only, and briefly;
the next housekeeping sweep takes the next few.
"""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import ColumnElement, CursorResult, delete, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute


async def delete_some(
    session: AsyncSession,
    key: InstrumentedAttribute[Any],
    *where: ColumnElement[bool],
    limit: int,
    first: InstrumentedAttribute[Any] | None = None,
) -> int:
    """Delete up to `limit` rows matching `where`, by their primary `key`, those lowest in
    `first` first if given; how many went."""
    doomed = select(key).where(*where).limit(limit)
    if first is not None:
        doomed = doomed.order_by(first)
    result = cast(
        CursorResult[tuple[()]],
        await session.execute(delete(key.class_).where(key.in_(doomed.scalar_subquery()))),
    )
    return result.rowcount
