"""The engine's periodic chores, run by every worker process (`SWEEP_INTERVAL_S` apart), each in
a transaction of its own: recovering emails whose worker stopped mid-send, then the jobs the
features gave the engine (`ports.HousekeepingJob`).

A row whose lease expired was claimed by a worker that died (or lost the database) before
recording what became of it. If the provider reported it sent (`ports.SendEvidence`), it is
recorded Sent with that message; otherwise it goes back to the queue, and is sent again: the
one window for a duplicate.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ses_sender.clock import Clock
from ses_sender.delivery import repository
from ses_sender.delivery.ports import ChangeCounter, HousekeepingJob, SendEvidence

log = logging.getLogger(__name__)

SWEEP_INTERVAL_S = 15.0


class Housekeeping:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        evidence: SendEvidence,
        counter: ChangeCounter,
        jobs: Sequence[HousekeepingJob],
        clock: Clock,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._evidence = evidence
        self._counter = counter
        self._jobs = jobs
        self._clock = clock

    async def sweep(self) -> None:
        await self.recover_expired_leases()
        for job in self._jobs:
            async with self._sessionmaker() as session, session.begin():
                await job.run(session, now=self._clock.now())

    async def recover_expired_leases(self) -> tuple[int, int]:
        """(recorded Sent on the provider's word, queued again)."""
        now = self._clock.now()
        async with self._sessionmaker() as session, session.begin():
            expired = await repository.expired_leases(session, now=now)
            sent = await self._evidence.provider_sends(session, expired, now=now) if expired else {}
            requeued = [request_id for request_id in expired if request_id not in sent]
            async with self._counter.counting(session, expired):
                await repository.record_provider_sends(session, sent)
                await repository.requeue(session, requeued, now=now)
        if sent:
            log.warning(
                "%d emails whose worker stopped mid-send were reported by SES: recorded as sent",
                len(sent),
            )
        if requeued:
            log.warning("%d emails whose worker stopped mid-send are queued again", len(requeued))
        return len(sent), len(requeued)
