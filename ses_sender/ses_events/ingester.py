"""Group commit for SES events: the notifications that arrive together are stored together.

SNS posts each notification on its own, and a busy account posts many at once. One transaction
per notification spends more on the transaction (checkout, BEGIN, COMMIT and its flush) than on
the event. Here every request hands its verified message to the `Ingester` and waits; one
writer at a time takes whatever is waiting, up to `MAX_BATCH`, applies them together with
`service.ingest_notifications` in a single transaction, commits, and only then answers every
request in the batch. Under light load a batch is one message, so nothing waits on a timer.

Each message still answers for itself: if a batch fails, its messages are written again one per
transaction, so a message that cannot be stored (or is not an SES event) fails alone, with the
error it would have had on its own, and the others succeed. Storing is idempotent (keyed on the
SNS message id), so writing a message again after a rolled-back batch is safe.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ses_sender.db import errors as database
from ses_sender.ses_events import service
from ses_sender.ses_events.service import Ingested, Received
from ses_sender.ses_events.sns import SnsMessage
from ses_sender.suppression.service import SoftBounceRule

log = logging.getLogger(__name__)

MAX_BATCH = 64  # notifications per transaction
# Transactions at once: while one waits on the database, the next is built. Each transaction
# costs the same few round trips whatever its size, so more writers, each with a smaller batch,
# cost more; one writer cannot build while it waits (docs/decisions/0013-sns-group-commit.md).
MAX_WRITERS = 2


@dataclass(slots=True)
class _Waiting:
    received: Received
    answer: asyncio.Future[Ingested] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class Ingester:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        soft_bounces: SoftBounceRule,
        max_batch: int = MAX_BATCH,
        max_writers: int = MAX_WRITERS,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._soft_bounces = soft_bounces
        self._max_batch = max_batch
        self._max_writers = max_writers
        self._waiting: deque[_Waiting] = deque()
        self._writers: set[asyncio.Task[None]] = set()

    async def ingest(self, message: SnsMessage, *, now: datetime) -> Ingested:
        """Store and apply `message`; returns once it is committed (or raises as alone)."""
        waiting = _Waiting(Received(message, now))
        self._waiting.append(waiting)
        if len(self._writers) < self._max_writers:
            writer = asyncio.create_task(self._write_all(), name="store SES events")
            self._writers.add(writer)
            writer.add_done_callback(self._writers.discard)
        return await waiting.answer

    async def close(self) -> None:
        """Wait for the messages already handed over to be written."""
        await asyncio.gather(*self._writers)

    async def _write_all(self) -> None:
        while self._waiting:
            # All that waits: handing the other writers a share of it made smaller batches, which
            # cost more per notification (docs/decisions/0013-sns-group-commit.md).
            count = min(len(self._waiting), self._max_batch)
            batch = [self._waiting.popleft() for _ in range(count)]
            try:
                await self._write(batch)
            except BaseException:
                # Cancelled (shutdown): nobody is left to answer these requests, so say so.
                for waiting in (*batch, *self._waiting):
                    waiting.answer.cancel()
                self._waiting.clear()
                raise

    async def _write(self, batch: list[_Waiting]) -> None:
        try:
            async with self._sessionmaker() as session, session.begin():
                outcomes = await service.ingest_notifications(
                    session, [item.received for item in batch], soft_bounces=self._soft_bounces
                )
        except Exception as error:
            if len(batch) == 1:
                _settle(batch[0], error=error)
                return
            log.info(
                "a batch of %d SES events failed (%s); writing them one by one",
                len(batch),
                database.describe(error),
            )
            for item in batch:
                await self._write([item])
            return
        for item, outcome in zip(batch, outcomes, strict=True):
            _settle(item, outcome=outcome)


def _settle(
    waiting: _Waiting, *, outcome: Ingested | None = None, error: Exception | None = None
) -> None:
    # A request that went away (client disconnect) cancelled its future; its event is stored.
    if waiting.answer.done():
        return
    if error is not None:
        waiting.answer.set_exception(error)
    else:
        assert outcome is not None
        waiting.answer.set_result(outcome)
