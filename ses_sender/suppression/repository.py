"""SQL for the suppression list: add without duplicates, look up, page through, remove."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from ses_sender.db.dialect import insert_for
from ses_sender.models import Suppression

# Rows per INSERT: four parameters each stays far below either driver's 32,767 per statement.
INSERT_CHUNK = 1_000


async def add(
    session: AsyncSession,
    emails: Sequence[str],
    *,
    reason: str,
    detail: str | None,
    now: datetime,
) -> int:
    """Suppress each address not suppressed yet (the first reason stays); how many were new."""
    added = 0
    for start in range(0, len(emails), INSERT_CHUNK):
        rows = [
            {"email": email, "reason": reason, "detail": detail, "created_at": now}
            for email in emails[start : start + INSERT_CHUNK]
        ]
        inserted = await session.execute(
            insert_for(session, Suppression)
            .values(rows)
            .on_conflict_do_nothing(index_elements=[Suppression.email])
            .returning(Suppression.email)
        )
        added += len(inserted.all())
    return added


async def reasons(session: AsyncSession, emails: Collection[str]) -> dict[str, str]:
    """Of these recipient keys, those suppressed, with the reason."""
    if not emails:
        return {}
    rows = await session.execute(
        select(Suppression.email, Suppression.reason).where(Suppression.email.in_(emails))
    )
    return dict(rows.all())


async def page(
    session: AsyncSession,
    *,
    email: str | None,
    reason: str | None,
    after: str | None,
    limit: int,
    containing: str | None = None,
) -> Sequence[Suppression]:
    """Up to `limit` entries in address order, after the address `after` (keyset paging).

    `containing`: addresses with this text in them, in any case (a scan in address order that
    stops once the page is full).
    """
    query = select(Suppression).order_by(Suppression.email).limit(limit)
    if email is not None:
        query = query.where(Suppression.email == email)
    if containing is not None:
        query = query.where(Suppression.email.icontains(containing, autoescape=True))
    if reason is not None:
        query = query.where(Suppression.reason == reason)
    if after is not None:
        query = query.where(Suppression.email > after)
    return (await session.scalars(query)).all()


async def remove(session: AsyncSession, email: str) -> bool:
    removed = await session.execute(
        delete(Suppression).where(Suppression.email == email).returning(Suppression.email)
    )
    return removed.scalar_one_or_none() is not None
