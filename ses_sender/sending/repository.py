"""SQL for the account-wide sending pauses."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import case, delete, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from ses_sender.db.dialect import insert_for
from ses_sender.models import SendingPause


async def upsert_pause(
    session: AsyncSession, name: str, reason: str, *, now: datetime, until: datetime | None
) -> datetime:
    """Pause `name` with the latest reason and end; returns when this pause began.

    A pause already in force keeps the time it began; one that had ended begins again now.
    """
    insert = insert_for(session, SendingPause).values(
        name=name, reason=reason, paused_at=now, until=until
    )
    still_in_force = or_(
        SendingPause.until.is_(None), SendingPause.until > insert.excluded.paused_at
    )
    statement = insert.on_conflict_do_update(
        index_elements=[SendingPause.name],
        set_={
            "reason": insert.excluded.reason,
            "until": insert.excluded.until,
            "paused_at": case(
                (still_in_force, SendingPause.paused_at), else_=insert.excluded.paused_at
            ),
        },
    ).returning(SendingPause.paused_at)
    began: datetime = (await session.execute(statement)).scalar_one()
    return began


async def active_pauses(session: AsyncSession, *, now: datetime) -> list[SendingPause]:
    rows = await session.scalars(
        select(SendingPause)
        .where(or_(SendingPause.until.is_(None), SendingPause.until > now))
        .order_by(SendingPause.paused_at, SendingPause.name)
    )
    return list(rows)


async def delete_pauses(session: AsyncSession, name: str | None) -> list[str]:
    statement = delete(SendingPause).returning(SendingPause.name)
    if name is not None:
        statement = statement.where(SendingPause.name == name)
    names = await session.scalars(statement)
    return sorted(names)
