"""What the counters give the delivery engine through its ports (`delivery/ports.py`): they
follow every change the engine makes to requests (`counting`, `claimed`), and every sweep folds
the deltas written since into the counters (`run`)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from ses_sender.delivery.emails import QueuedEmail
from ses_sender.models import RequestStatus
from ses_sender.stats import service


class StatsHooks:
    name = "fold counter deltas"

    def counting(
        self, session: AsyncSession, request_ids: Collection[int]
    ) -> AbstractAsyncContextManager[None]:
        return service.counting(session, request_ids)

    async def claimed(self, session: AsyncSession, claimed: Sequence[QueuedEmail]) -> None:
        await service.count_moves(
            session,
            [service.Moved(queued.topic_id, queued.recipient_key) for queued in claimed],
            before=RequestStatus.CREATED,
            after=RequestStatus.PROCESSING,
        )

    async def run(self, session: AsyncSession, *, now: datetime) -> None:
        while await service.fold(session) == service.FOLD_BATCH:
            pass
