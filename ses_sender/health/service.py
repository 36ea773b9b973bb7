"""What `/health` reports: whether the database takes a write and SES answers (the status, for
anyone), and, for whoever has the API key, the transport, paused sending and the trusted SNS
topics.

SES not answering (the outage pause, see `delivery/outage.py`) makes the status "degraded" but
the answer stays 200: the process is fine, and a restart would not help. Only a database that
takes no write answers 503.

The check commits a write, not only a read: a full disk or a read-only database still answers
`SELECT 1`, and fails only when something must be written. A write rolled back would not do:
SQLite keeps an uncommitted change in memory, so a full disk goes unseen until the commit.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ses_sender import instruments
from ses_sender.clock import Clock
from ses_sender.db import errors as database
from ses_sender.health import repository
from ses_sender.models import SendingPause
from ses_sender.sending import service as sending
from ses_sender.ses_events.topics import TopicsUnavailable, TrustedTopics

log = logging.getLogger(__name__)

SERVICE_NAME = "aws-ses-sender"
CHECK_NAME = "health"
DATABASE_CHECK_TIMEOUT_S = 2.0
UNKNOWN_SENDING_STATE: dict[str, object] = {"paused": None, "reasons": []}


@dataclass(frozen=True, slots=True)
class Report:
    healthy: bool
    body: dict[str, Any]


class Health:
    def __init__(
        self,
        *,
        sessionmaker: async_sessionmaker[AsyncSession],
        clock: Clock,
        transport: dict[str, str],
        topics: TrustedTopics,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._clock = clock
        self._transport = transport
        self._topics = topics

    async def report(self, *, details: bool) -> Report:
        database = await self._database_state()
        healthy = database == "ok"
        pauses = await self._pauses() if healthy else None
        ses_reachable = None if pauses is None else _ses_reachable(pauses)
        body: dict[str, Any] = {
            "status": "ok" if healthy and ses_reachable is not False else "degraded",
            "service": SERVICE_NAME,
            "time": self._clock.now().strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        if details:
            body |= {
                "database": database,
                "transport": self._transport | {"reachable": ses_reachable},
                # Paused sending is reported, not unhealthy: the process is fine, and a restart
                # would not help.
                "sending": (
                    UNKNOWN_SENDING_STATE
                    if pauses is None
                    else sending.state_of(pauses).model_dump()
                ),
                "sns": await self._sns_state(),
            }
        return Report(healthy, body)

    async def _database_state(self) -> str:
        try:
            async with (
                asyncio.timeout(DATABASE_CHECK_TIMEOUT_S),
                self._sessionmaker() as session,
                session.begin(),
            ):
                await repository.record_check(session, CHECK_NAME, now=self._clock.now())
        except Exception as error:
            reason = database.describe(error)
            log.warning("health: the database does not take writes: %s", reason)
            instruments.DATABASE_UNAVAILABLE.labels("health").inc()
            return f"unavailable: {reason}"
        return "ok"

    async def _pauses(self) -> list[SendingPause] | None:
        try:
            async with asyncio.timeout(DATABASE_CHECK_TIMEOUT_S), self._sessionmaker() as session:
                return await sending.active_pauses(session, now=self._clock.now())
        except Exception as error:
            log.warning("health: reading the sending pauses failed: %s", database.describe(error))
            return None

    async def _sns_state(self) -> dict[str, object]:
        """Which topics' messages count; with none, every SES event is refused."""
        try:
            trusted = self._topics.configured | await self._topics.recorded()
        except TopicsUnavailable as error:
            log.warning("health: reading the trusted SNS topics failed: %s", error)
            return {"accepting": None, "trustedTopics": sorted(self._topics.configured)}
        return {"accepting": bool(trusted), "trustedTopics": sorted(trusted)}


def _ses_reachable(pauses: list[SendingPause]) -> bool:
    return all(pause.name != sending.SES_UNREACHABLE for pause in pauses)
