"""What the counters give the delivery engine through its ports (`delivery/ports.py`): they
follow every change the engine makes to requests (`changed`, `counting`), and every sweep folds
the deltas written since into the counters (`run`)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from ses_sender.models import RequestChange
from ses_sender.stats import service


class StatsHooks:
    name = "fold counter deltas"

    async def changed(self, session: AsyncSession, changes: Sequence[RequestChange]) -> None:
        await service.count_changes(session, changes)

    def counting(
        self, session: AsyncSession, request_ids: Collection[int]
    ) -> AbstractAsyncContextManager[service.Counted]:
        return service.counting(session, request_ids)

    async def run(self, session: AsyncSession, *, now: datetime) -> None:
        while await service.fold(session) == service.FOLD_BATCH:
            pass
