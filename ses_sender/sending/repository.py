"""SQL for the account-wide sending state: the shared rate schedule and the sending pauses."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Double, case, cast, delete, extract, func, literal, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from ses_sender.db.statements import insert_for
from ses_sender.models import RateLimit, SendingPause


@dataclass(frozen=True, slots=True)
class Reservation:
    """A stretch of the shared schedule, in epoch seconds of the schedule's clock."""

    starts_at: float
    now: float  # the schedule's clock when the reservation was made


async def reserve_slots(
    session: AsyncSession,
    name: str,
    *,
    span_s: float,
    lead_s: float,
    clock: Callable[[], datetime],
) -> Reservation:
    """Reserve the next `span_s` seconds of the schedule `name` in one statement (GCRA).

    The row holds the first free moment; a reservation starts there, or `lead_s` from now when
    the schedule has fallen behind (an idle schedule buys no burst), and moves it `span_s` on.
    On PostgreSQL the row lock serialises workers and the database's clock is the one clock of
    every process; on SQLite the write lock serialises them and the host's clock is that clock
    (all processes share one host), read once the lock is held. `Reservation.now` is that
    clock read as late as possible: when the answer left PostgreSQL, when it came from SQLite.
    """
    postgres = session.get_bind().dialect.name == "postgresql"
    if postgres:
        now: Any = cast(extract("epoch", func.clock_timestamp()), Double)
        later_of: Callable[..., Any] = func.greatest
    else:
        await session.connection()  # BEGIN IMMEDIATE: wait for the lock before reading the clock
        now = literal(clock().timestamp(), Double)
        later_of = func.max
    statement = (
        insert_for(session, RateLimit)
        .values(name=name, next_free_at=now + lead_s + span_s, updated_at=clock())
        .on_conflict_do_update(
            index_elements=[RateLimit.name],
            set_={
                "next_free_at": later_of(RateLimit.next_free_at, now + lead_s) + span_s,
                "updated_at": clock(),
            },
        )
        .returning(RateLimit.next_free_at, now)
    )
    next_free_at, answered_at = (await session.execute(statement)).one()
    if not postgres:
        answered_at = clock().timestamp()
    return Reservation(starts_at=next_free_at - span_s, now=answered_at)


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
