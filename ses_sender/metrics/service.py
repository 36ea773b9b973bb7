"""The gauges read from the database (queue depth, sending pauses, webhook backlog): refreshed
when `/metrics` is scraped, at most once per `REFRESH_INTERVAL_S` per process, in one short
read-only transaction. Everything else on `/metrics` comes from counters in memory."""

from __future__ import annotations

import asyncio
import logging
import math

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ses_sender import instruments
from ses_sender.clock import Clock
from ses_sender.db import errors as database
from ses_sender.metrics import repository
from ses_sender.models import RequestStatus
from ses_sender.sending import service as sending
from ses_sender.tasks import TRANSIENT_ERRORS

log = logging.getLogger(__name__)

# Scrapes come every 15 to 60 s; several Prometheus servers, or a person with curl, scraping
# more often share one refresh. The counts read a range of an index each: at ten million queued
# emails that is about a second of PostgreSQL's time, so not on every scrape.
REFRESH_INTERVAL_S = 10.0


class DatabaseGauges:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        clock: Clock,
        refresh_interval_s: float = REFRESH_INTERVAL_S,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._clock = clock
        self._refresh_interval_s = refresh_interval_s
        self._refreshed_at = -math.inf
        self._lock = asyncio.Lock()
        self._pause_reasons_seen: set[str] = set()

    async def refresh_if_stale(self) -> None:
        """Read the database if the last read is older than the interval; a database that does
        not answer leaves the last values in place (and the scrape still answers)."""
        async with self._lock:
            if self._clock.monotonic() - self._refreshed_at < self._refresh_interval_s:
                return
            self._refreshed_at = self._clock.monotonic()
            try:
                await self._refresh()
            except TRANSIENT_ERRORS as error:
                log.warning(
                    "metrics: the database did not answer (%s); serving the last values",
                    database.describe(error),
                )

    async def _refresh(self) -> None:
        async with self._sessionmaker() as session, session.begin():
            unsent = await repository.unsent_counts(session)
            pauses = await sending.active_pauses(session, now=self._clock.now())
            backlog = await repository.pending_webhook_deliveries(session)
        queued, processing = RequestStatus.CREATED, RequestStatus.PROCESSING
        instruments.QUEUE_DEPTH.labels("queued").set(unsent.get((queued, False), 0))
        instruments.QUEUE_DEPTH.labels("held").set(unsent.get((queued, True), 0))
        instruments.QUEUE_DEPTH.labels("processing").set(
            unsent.get((processing, False), 0) + unsent.get((processing, True), 0)
        )
        active = {pause.name for pause in pauses}
        self._pause_reasons_seen |= active
        for reason in self._pause_reasons_seen:
            instruments.SENDING_PAUSED.labels(reason).set(1 if reason in active else 0)
        instruments.WEBHOOK_BACKLOG.set(backlog)
