"""SQL for sending pauses: one row per reason all sending is held back."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from ses_sender.db.statements import insert_for
from ses_sender.models import SendingPause


async def upsert_pause(
    session: AsyncSession, name: str, reason: str, *, paused_at: datetime, until: datetime | None
) -> None:
    statement = insert_for(session, SendingPause)
    await session.execute(
        statement.values(
            name=name, reason=reason, paused_at=paused_at, until=until
        ).on_conflict_do_update(
            index_elements=[SendingPause.name],
            set_={"reason": reason, "paused_at": paused_at, "until": until},
        )
    )


async def active_pauses(session: AsyncSession, *, now: datetime) -> Sequence[SendingPause]:
    found = await session.scalars(
        select(SendingPause)
        .where(or_(SendingPause.until.is_(None), SendingPause.until > now))
        .order_by(SendingPause.paused_at, SendingPause.name)
    )
    return found.all()


async def delete_pauses(session: AsyncSession, name: str | None) -> list[str]:
    statement = delete(SendingPause)
    if name is not None:
        statement = statement.where(SendingPause.name == name)
    deleted = await session.scalars(statement.returning(SendingPause.name))
    return sorted(deleted)
