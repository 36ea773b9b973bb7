"""Recording what sends returned: in batches, in short transactions of their own, with the
hooks the features gave the engine (`ports.SentHook`) in the same transaction.

An email counts against the worker's in-flight limit until its result is written, so a worker
killed with results unwritten has at most that many emails sent and not recorded; each batch
waits at most `RECORD_INTERVAL_S`. A database error keeps the results for the next try: their
leases keep other workers off the rows meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ses_sender.clock import Clock
from ses_sender.delivery import repository
from ses_sender.delivery.emails import SendResult, Sent
from ses_sender.delivery.ports import ChangeCounter, SentHook
from ses_sender.tasks import TRANSIENT_ERRORS, Sleep, wait_any

log = logging.getLogger(__name__)

RECORD_INTERVAL_S = 0.1
RECORD_BATCH = 500
RETRY_S = 1.0
FINAL_TRIES = 10


class Recorder:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        hooks: Sequence[SentHook],
        counter: ChangeCounter,
        clock: Clock,
        batch_size: int,
        recorded: Callable[[int], None],
        every_interval: Callable[[], Awaitable[None]],
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        """`recorded(n)`: n results were written. `every_interval`: run after each flush (the
        pacer shares what it learned); a transient failure there is retried like a flush."""
        self._sessionmaker = sessionmaker
        self._hooks = hooks
        self._counter = counter
        self._clock = clock
        self._batch_size = max(1, min(RECORD_BATCH, batch_size))
        self._recorded = recorded
        self._every_interval = every_interval
        self._sleep = sleep
        self._results: list[SendResult] = []
        self._batch_ready = asyncio.Event()
        self._finished = asyncio.Event()

    @property
    def unrecorded(self) -> int:
        return len(self._results)

    def add(self, result: SendResult) -> None:
        self._results.append(result)
        if len(self._results) >= self._batch_size:
            self._batch_ready.set()

    def finish(self) -> None:
        """`run` returns after its current write; `flush_before_exit` writes what is left."""
        self._finished.set()

    async def run(self) -> None:
        while not self._finished.is_set():
            await wait_any(
                self._batch_ready, self._finished, timeout_s=RECORD_INTERVAL_S, sleep=self._sleep
            )
            self._batch_ready.clear()
            if not (await self._flush() and await self._run_every_interval()):
                await wait_any(self._finished, timeout_s=RETRY_S, sleep=self._sleep)

    async def flush_before_exit(self) -> int:
        """Try a few times; how many results are left unwritten."""
        for _ in range(FINAL_TRIES):
            if await self._flush():
                break
            await self._sleep(RETRY_S)
        return len(self._results)

    async def _flush(self) -> bool:
        """Write what the sends returned; False on a database error (they are kept)."""
        if not self._results:
            return True
        results, self._results = self._results, []
        now = self._clock.now()
        try:
            async with (
                self._sessionmaker() as session,
                session.begin(),
                self._counter.counting(session, {result.request_id for result in results}),
            ):
                await repository.record_outcomes(session, results, now=now)
                sent = [result for result in results if isinstance(result, Sent)]
                if sent:
                    for hook in self._hooks:
                        await hook.after_sent(session, sent, now=now)
        except TRANSIENT_ERRORS:
            self._results[:0] = results
            log.exception("recording %d outcomes failed; retrying", len(results))
            return False
        except BaseException:
            # Cancelled mid-write: keep them. Recording twice is harmless: a failure or a
            # requeue changes only rows still claimed, a send only rows not yet Sent.
            self._results[:0] = results
            raise
        self._recorded(len(results))
        return True

    async def _run_every_interval(self) -> bool:
        try:
            await self._every_interval()
        except TRANSIENT_ERRORS:
            log.exception("sharing pacing state failed; retrying")
            return False
        return True
