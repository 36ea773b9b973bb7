"""Recording what sends returned: in batches, in short transactions of their own, with the
hooks the features gave the engine (`ports.SentHook`) in the same transaction.

An email counts against the worker's in-flight limit until its result is written, so a worker
killed with results unwritten has at most that many emails sent and not recorded; each batch
waits at most `RECORD_INTERVAL_S`. A database error keeps the results for the next try, and
puts them in the outcome journal (`journal.py`) first, so that a worker killed or stopped
before the database is back loses none of them: the next start writes them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ses_sender.clock import Clock
from ses_sender.db import errors as database
from ses_sender.delivery import repository
from ses_sender.delivery.emails import SendResult, Sent
from ses_sender.delivery.journal import OutcomeJournal
from ses_sender.delivery.leases import Leases
from ses_sender.delivery.ports import ChangeCounter, SentHook
from ses_sender.tasks import TRANSIENT_ERRORS, Sleep, wait_any

log = logging.getLogger(__name__)

RECORD_INTERVAL_S = 0.1
RECORD_BATCH = 500
RETRY_S = 1.0
# At exit, with every result journaled first, the database is tried for this long (a locked
# SQLite file holds each try for its busy timeout): an orchestrator's kill comes soon after.
FINAL_WRITE_S = 10.0


@dataclass(frozen=True, slots=True)
class Unrecorded:
    """What a worker leaves unwritten at exit: journaled (written at the next start), or lost
    (its email may be sent again: the journal could not be written either)."""

    journaled: int
    lost: int


class OutcomesNotRecorded(Exception):
    """The worker stopped with results the database never got."""


class Recorder:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        hooks: Sequence[SentHook],
        counter: ChangeCounter,
        clock: Clock,
        journal: OutcomeJournal,
        leases: Leases,
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
        self._journal = journal
        self._leases = leases
        self._batch_size = max(1, min(RECORD_BATCH, batch_size))
        self._recorded = recorded
        self._every_interval = every_interval
        self._outage_log = database.OutageLog(log)
        self._sleep = sleep
        self._results: list[SendResult] = []
        self._journaled: list[SendResult] = []  # in the journal, not yet in the database
        self._failing = False
        self._batch_ready = asyncio.Event()
        self._finished = asyncio.Event()

    @property
    def unrecorded(self) -> int:
        return len(self._results) + len(self._journaled)

    @property
    def behind(self) -> bool:
        """Whether the last write failed: results wait that the database has not taken."""
        return self._failing

    @property
    def journal_path(self) -> Path | None:
        return self._journal.path

    def open_journal(self) -> None:
        self._journal.open()

    def close_journal(self) -> None:
        self._journal.close()

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

    async def flush_before_exit(self) -> Unrecorded:
        """Journal what is left, then try the database for `FINAL_WRITE_S`."""
        if self._journaled:
            self._journal_pending()  # the database failed already: a kill must not lose these
        try:
            async with asyncio.timeout(FINAL_WRITE_S):
                while not await self._flush():
                    await self._sleep(RETRY_S)
        except TimeoutError:
            self._journal_pending()
        return Unrecorded(journaled=len(self._journaled), lost=len(self._results))

    async def replay_journals(self) -> int:
        """Write the results in journals left by workers gone (this is before any claim), then
        remove those journals; how many results. Raises on a database error."""
        written = 0
        with self._journal.left_behind() as journals:
            for path, results in journals:
                for start in range(0, len(results), RECORD_BATCH):
                    await self._write(results[start : start + RECORD_BATCH])
                path.unlink()
                written += len(results)
                log.warning(
                    "wrote %d outcomes a stopped worker had journaled in %s", len(results), path
                )
        return written

    async def _flush(self) -> bool:
        """Write what the sends returned; False on a database error (they are kept, and
        journaled)."""
        if not (self._results or self._journaled):
            return True
        fresh, self._results = self._results, []
        results = self._journaled + fresh
        try:
            await self._write(results)
        except TRANSIENT_ERRORS as error:
            self._results[:0] = fresh
            self._failing = True
            self._outage_log.failed(
                "record", error, "recording %d outcomes failed, retrying: %s", len(results)
            )
            self._journal_pending()
            return False
        except BaseException:
            # Cancelled mid-write: keep them. Recording twice is harmless (see
            # `repository.record_outcomes`).
            self._results[:0] = fresh
            raise
        self._failing = False
        if self._journaled:
            self._journaled = []
            self._journal.clear()
        self._leases.done(result.request_id for result in results)
        self._recorded(len(results))
        return True

    async def _write(self, results: Sequence[SendResult]) -> None:
        now = self._clock.now()
        async with self._sessionmaker() as session, session.begin():
            changes, rest = await repository.record_claimed(session, results, now=now)
            await self._counter.changed(session, changes)
            if rest:  # rows no longer claimed, or unconfirmed sends: rare
                async with self._counter.counting(session, {r.request_id for r in rest}):
                    await repository.record_outcomes(session, rest, now=now)
            sent = [result for result in results if isinstance(result, Sent)]
            if sent:
                for hook in self._hooks:
                    await hook.after_sent(session, sent, now=now)

    def _journal_pending(self) -> None:
        if not self._results:
            return
        try:
            self._journal.append(self._results)
        except OSError:
            log.exception("journaling %d outcomes failed", len(self._results))
            return
        self._journaled.extend(self._results)
        self._results = []

    async def _run_every_interval(self) -> bool:
        try:
            await self._every_interval()
        except TRANSIENT_ERRORS as error:
            self._outage_log.failed("share", error, "sharing pacing state failed, retrying: %s")
            return False
        return True
