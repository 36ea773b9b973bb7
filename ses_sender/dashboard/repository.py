"""SQL of the dashboard's own: which topics to list, and a topic's sends over time."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from ses_sender.models import Request


async def newest_topics(session: AsyncSession, limit: int) -> Sequence[str]:
    """Topic ids, the one with the newest request first."""
    rows = await session.scalars(
        select(Request.topic_id)
        .group_by(Request.topic_id)
        .order_by(func.max(Request.id).desc())
        .limit(limit)
    )
    return rows.all()


async def sent_times(session: AsyncSession, topic_id: str) -> Sequence[datetime]:
    rows = await session.scalars(
        select(Request.sent_at).where(Request.topic_id == topic_id, Request.sent_at.is_not(None))
    )
    return [sent_at for sent_at in rows.all() if sent_at is not None]
