"""The one queue primitive: claim due rows in one statement, under a lease.

`UPDATE … WHERE id IN (SELECT id … ORDER BY … LIMIT n FOR UPDATE SKIP LOCKED) RETURNING …`:
concurrent workers on PostgreSQL skip each other's rows instead of waiting for them; SQLite
drops the locking clause and runs it alone, under its database-wide write lock. Nothing is held
after the claim's short transaction; the lease in the claimed rows keeps other workers off.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import ColumnElement, Update, select, update
from sqlalchemy.orm import InstrumentedAttribute


def claim_statement(
    model: Any,
    *,
    due: Sequence[ColumnElement[bool]],
    order_by: Sequence[InstrumentedAttribute[Any]],
    limit: int,
    values: Mapping[str, Any],
    returning: Sequence[InstrumentedAttribute[Any]],
) -> Update:
    """Claim up to `limit` rows of `model` matching `due`, in `order_by` order: set `values` on
    them and return `returning` of each."""
    claimable = (
        select(model.id)
        .where(*due)
        .order_by(*order_by)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    return (
        update(model)
        .where(model.id.in_(claimable))
        .values(**values)
        .returning(*returning)
        .execution_options(synchronize_session=False)
    )
