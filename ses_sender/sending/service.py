"""Pausing and resuming all sending: rows stay queued while any pause is active.

A pause is active from `paused_at` until `until`, or until resumed when `until` is None.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from ses_sender.models import SendingPause
from ses_sender.sending import repository


async def pause_sending(
    session: AsyncSession,
    name: str,
    reason: str,
    *,
    now: datetime,
    until: datetime | None = None,
) -> None:
    """Pause (or pause again, with a new reason) under `name`."""
    await repository.upsert_pause(session, name, reason, paused_at=now, until=until)


async def active_pauses(session: AsyncSession, *, now: datetime) -> list[SendingPause]:
    return list(await repository.active_pauses(session, now=now))


async def resume_sending(session: AsyncSession, name: str | None = None) -> list[str]:
    """End the pause called `name`, or every pause; the names that were ended."""
    return await repository.delete_pauses(session, name)
