"""Opens and clicks are answered first and recorded after, together.

The pixel and the redirect hand their hit to the `HitRecorder` and answer at once; one writer
gathers what arrives for `GATHER_WINDOW` after the first hit (or until `MAX_BATCH` have), and
records it in one transaction (`service.record_hits`). A transaction costs the process far more
than a hit does, so the window keeps their number low whatever the rate: without it a batch was
one or two hits under light load and recording cost the most CPU per click there. `settle`
writes at once, without waiting for the window.

A hit is already answered, so a batch that cannot be written is written again one hit per
transaction, and a hit that still fails is logged and lost, never retried for ever.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from contextlib import suppress

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ses_sender import instruments
from ses_sender.clock import Clock
from ses_sender.db import errors as database
from ses_sender.models import EventType
from ses_sender.tracking import service
from ses_sender.tracking.service import Hit, Judge

log = logging.getLogger(__name__)

MAX_BATCH = 64  # hits per transaction
GATHER_WINDOW_S = 0.05  # at most 20 transactions a second; a hit is written within this of it
# Hits waiting beyond this are dropped (and logged): a flood of clicks must not grow the
# process without bound while the database is away.
MAX_WAITING = 100_000


class HitRecorder:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        judge: Judge,
        clock: Clock,
        max_batch: int = MAX_BATCH,
        max_waiting: int = MAX_WAITING,
        gather_window_s: float = GATHER_WINDOW_S,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._judge = judge
        self._clock = clock
        self._max_batch = max_batch
        self._max_waiting = max_waiting
        self._gather_window_s = gather_window_s
        self._waiting: deque[Hit] = deque()
        self._writer: asyncio.Task[None] | None = None
        self._hurry = asyncio.Event()  # set: write what has arrived, gather no longer
        self._settling = 0  # callers of `settle` waiting
        self._outage_log = database.OutageLog(log)

    def add(self, hit: Hit) -> None:
        """Record `hit` soon; returns at once."""
        if len(self._waiting) >= self._max_waiting:
            log.warning("%d hits wait to be recorded; one dropped", len(self._waiting))
            return
        self._waiting.append(hit)
        if len(self._waiting) >= self._max_batch:
            self._hurry.set()
        if self._writer is None:
            self._writer = asyncio.create_task(self._write_all(), name="record opens and clicks")

    async def settle(self) -> None:
        """Wait until every hit handed over so far is recorded (or given up), without waiting
        for the gathering window."""
        self._settling += 1
        self._hurry.set()
        try:
            while self._writer is not None:
                await asyncio.shield(self._writer)
        finally:
            self._settling -= 1

    async def _write_all(self) -> None:
        try:
            while self._waiting:
                await self._gather()
                count = min(len(self._waiting), self._max_batch)
                await self._write([self._waiting.popleft() for _ in range(count)])
        finally:
            self._writer = None

    async def _gather(self) -> None:
        """Let the batch fill for the window, unless it is full or someone settles."""
        if self._settling or len(self._waiting) >= self._max_batch:
            return
        self._hurry.clear()
        with suppress(TimeoutError):
            await asyncio.wait_for(self._hurry.wait(), self._gather_window_s)

    async def _write(self, batch: list[Hit]) -> None:
        try:
            async with self._sessionmaker() as session, session.begin():
                await service.record_hits(session, batch, judge=self._judge, now=self._clock.now())
        except Exception as error:
            if database.is_outage(error):
                # One by one would fail alike: one line for the batch, not one per hit.
                self._lost_to_outage(batch, error)
            elif len(batch) == 1:
                log.exception(
                    "recording a %s of request %s failed", batch[0].kind, batch[0].request_id
                )
            else:
                log.info(
                    "a batch of %d hits failed (%r); recording them one by one", len(batch), error
                )
                for hit in batch:
                    await self._write([hit])

    def _lost_to_outage(self, batch: list[Hit], error: Exception) -> None:
        opens = sum(hit.kind is EventType.OPEN for hit in batch)
        clicks = len(batch) - opens
        lost = [("an open" if opens == 1 else f"{opens} opens", opens, "open")] if opens else []
        lost += (
            [("a click" if clicks == 1 else f"{clicks} clicks", clicks, "click")] if clicks else []
        )
        what = " and ".join(words for words, _count, _label in lost)
        verb = "was" if len(batch) == 1 else "were"
        # The counts of every batch lost are on /metrics; the log says it once a minute.
        self._outage_log.log(
            logging.WARNING,
            "lost",
            "%s %s not recorded: database unavailable: %s",
            what,
            verb,
            database.describe(error),
        )
        for _words, count, label in lost:
            instruments.DATABASE_UNAVAILABLE.labels(label).inc(count)
