"""Statement builders that differ by dialect."""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession


def insert_for(session: AsyncSession, model: Any) -> postgresql.Insert | sqlite.Insert:
    """An INSERT that knows ON CONFLICT DO NOTHING on either database."""
    return insert_for_dialect(session.get_bind().dialect.name, model)


def insert_for_dialect(dialect: str, model: Any) -> postgresql.Insert | sqlite.Insert:
    """`insert_for` by dialect name, for statements built once and kept."""
    if dialect == "postgresql":
        return postgresql.insert(model)
    return sqlite.insert(model)
