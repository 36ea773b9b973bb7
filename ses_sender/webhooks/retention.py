"""Finished webhook deliveries (delivered or failed) are kept
`WEBHOOK_DELIVERY_RETENTION_DAYS`, then deleted. A housekeeping job of the delivery engine
(`delivery/ports.py`)."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from ses_sender.webhooks import repository

# Per sweep (SWEEP_INTERVAL_S): a short delete, never a long lock.
BATCH = 1_000


class PruneWebhookDeliveries:
    name = "webhook delivery pruning"

    def __init__(self, retention: timedelta) -> None:
        self._retention = retention

    async def run(self, session: AsyncSession, *, now: datetime) -> None:
        await repository.delete_finished_deliveries(
            session, created_before=now - self._retention, limit=BATCH
        )
