"""Idempotency keys are kept `IDEMPOTENCY_KEY_TTL_HOURS`, then forgotten: a retry after that
is a new request. A housekeeping job of the delivery engine (`delivery/ports.py`)."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from ses_sender.messages import repository

# Per sweep (SWEEP_INTERVAL_S): a short delete, never a long lock.
BATCH = 1_000


class ExpireIdempotencyKeys:
    name = "idempotency key expiry"

    def __init__(self, ttl: timedelta) -> None:
        self._ttl = ttl

    async def run(self, session: AsyncSession, *, now: datetime) -> None:
        await repository.delete_answered_idempotency_keys(
            session, created_before=now - self._ttl, limit=BATCH
        )
