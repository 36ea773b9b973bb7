from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from ses_sender.db.dialect import insert_for
from ses_sender.models import HealthCheck


async def record_check(session: AsyncSession, name: str, *, now: datetime) -> None:
    statement = insert_for(session, HealthCheck).values(name=name, checked_at=now, checks=1)
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[HealthCheck.name],
            set_={"checked_at": statement.excluded.checked_at, "checks": HealthCheck.checks + 1},
        )
    )
