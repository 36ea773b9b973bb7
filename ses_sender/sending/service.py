"""Pausing and resuming all sending, account-wide: rows stay queued while any pause is in force.

A pause has a name (who paused: `ACCOUNT` when SES stops the account, `SES_UNREACHABLE` when SES
fails every send, "guardrail" for the reputation guardrail), a reason people read in /health and
the logs, and an optional end. Workers look before every claim. Other features pause and resume
through these three functions:

    await pause_sending(session, "guardrail", "bounce rate 6.1% > 5%", now=now)
    await active_pauses(session, now=now)
    await resume_sending(session, "guardrail")
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from ses_sender.models import SendingPause
from ses_sender.sending import repository
from ses_sender.sending.schemas import SendingState

ACCOUNT = "account"
SES_UNREACHABLE = "ses_unreachable"

log = logging.getLogger(__name__)


async def pause_sending(
    session: AsyncSession,
    name: str,
    reason: str,
    *,
    now: datetime,
    until: datetime | None = None,
) -> None:
    """Pause all sending under `name` until `until` (None: until resumed).

    Calling it again while paused updates the reason and the end. The call that begins a pause
    logs it at error level, which also reports it to Sentry; repeats are quiet.
    """
    began = await repository.upsert_pause(session, name, reason, now=now, until=until)
    if began == now:
        log.error("sending paused (%s): %s", name, reason)


async def active_pauses(session: AsyncSession, *, now: datetime) -> list[SendingPause]:
    return await repository.active_pauses(session, now=now)


async def resume_sending(session: AsyncSession, name: str | None = None) -> list[str]:
    """Lift the pause `name`, or every pause; returns the names lifted (none if none was)."""
    names = await repository.delete_pauses(session, name)
    if names:
        log.warning("sending resumed (%s)", ", ".join(names))
    return names


async def sending_state(session: AsyncSession, *, now: datetime) -> SendingState:
    return state_of(await active_pauses(session, now=now))


def state_of(pauses: Sequence[SendingPause]) -> SendingState:
    return SendingState(
        paused=bool(pauses), reasons=[f"{pause.name}: {pause.reason}" for pause in pauses]
    )


class SendingPauses:
    """The pauses of all sending as the delivery engine sees them (its `PauseSource` port)."""

    async def sending_paused(self, session: AsyncSession, *, now: datetime) -> bool:
        return bool(await active_pauses(session, now=now))

    async def pause_for_account(
        self, session: AsyncSession, reason: str, *, now: datetime, until: datetime | None
    ) -> None:
        await pause_sending(session, ACCOUNT, reason, now=now, until=until)

    async def resume_for_account(self, session: AsyncSession) -> None:
        await resume_sending(session, ACCOUNT)

    async def pause_for_outage(self, session: AsyncSession, reason: str, *, now: datetime) -> None:
        await pause_sending(session, SES_UNREACHABLE, reason, now=now)

    async def outage_paused(self, session: AsyncSession, *, now: datetime) -> bool:
        return any(pause.name == SES_UNREACHABLE for pause in await active_pauses(session, now=now))

    async def resume_after_outage(self, session: AsyncSession) -> None:
        await resume_sending(session, SES_UNREACHABLE)
