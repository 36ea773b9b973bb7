"""The SES events SNS messages carried are kept `EVENT_RAW_RETENTION_DAYS`, then deleted; the
event log's rows, the request summaries and the counters stay. A housekeeping job of the
delivery engine (`delivery/ports.py`)."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from ses_sender.ses_events import repository

# Each delete is short, so no statement holds locks for long; a sweep takes a few, so a busy
# account's payloads (a few per email sent) go as fast as they come.
BATCH = 1_000
BATCHES_PER_SWEEP = 10


class PruneEventPayloads:
    name = "event payload pruning"

    def __init__(self, retention: timedelta, *, batch: int = BATCH) -> None:
        self._retention = retention
        self._batch = batch

    async def run(self, session: AsyncSession, *, now: datetime) -> None:
        for _ in range(BATCHES_PER_SWEEP):
            deleted = await repository.delete_payloads(
                session, received_before=now - self._retention, limit=self._batch
            )
            if deleted < self._batch:
                return
