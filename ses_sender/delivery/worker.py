"""The delivery loop: claim due rows, pace, send, record; stop cleanly on request."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections import OrderedDict
from collections.abc import Awaitable, Sequence
from datetime import timedelta
from functools import partial
from typing import Any, TypeVar

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ses_sender.clock import Clock
from ses_sender.control.service import hold_paused_topics
from ses_sender.delivery import repository
from ses_sender.delivery.compose import Composer, ContentParts, QueuedEmail
from ses_sender.delivery.concurrency import InFlightLimit, Latency, in_flight_for
from ses_sender.delivery.pacer import Pacer, Slot
from ses_sender.delivery.repository import Failed, Outcome, Requeued, Sent
from ses_sender.delivery.retry import GiveUp, RetryPolicy
from ses_sender.sending.service import ACCOUNT, active_pauses, pause_sending
from ses_sender.ses_events.service import (
    adopt_stranded_events,
    adopt_waiting_events,
    waiting_message_ids,
)
from ses_sender.suppression.service import SoftBounceRule
from ses_sender.transports.base import (
    AccountPausedError,
    OutgoingEmail,
    SendError,
    ThrottledError,
    TransientError,
    Transport,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

POLL_INTERVAL_S = 1.0  # newly due rows are seen within this, even from another process
PAUSE_CHECK_INTERVAL_S = 1.0
ACCOUNT_PAUSE_S = 60.0  # after an account-level stop (paused, suspended, quota), try again
# This worker stops at once on an account-level error; the pause recorded in the database then
# holds it (and every other worker) until it ends or is lifted, which this must not outlast.
LOCAL_ACCOUNT_PAUSE_S = 2 * PAUSE_CHECK_INTERVAL_S
RECORD_INTERVAL_S = 0.1  # the window in which a crash can lose an outcome (and resend)
RECORD_BATCH = 500
RECORD_RETRY_S = 1.0
FINAL_RECORD_TRIES = 10
SWEEP_INTERVAL_S = 15.0  # expired leases, stranded events
CLAIM_HORIZON_S = 0.5  # claim about this much sending at a time, never a backlog
MAX_CLAIM = 1_000
CONTENT_CACHE_SIZE = 256
INITIAL_LATENCY_S = 0.05  # until sends are measured: SES's usual answer time


class Worker:
    def __init__(
        self,
        *,
        sessionmaker: async_sessionmaker[AsyncSession],
        transport: Transport,
        composer: Composer,
        pacer: Pacer,
        retry: RetryPolicy,
        clock: Clock,
        concurrency: int,
        lease_s: float,
        send_timeout_s: float,
        shutdown_grace_s: float,
        work_available: asyncio.Event,
        soft_bounces: SoftBounceRule,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._transport = transport
        self._composer = composer
        self._pacer = pacer
        self._retry = retry
        self._clock = clock
        # A slot is held from the claim's dispatch until the outcome is written, not only
        # while the send is on the wire: what a kill can leave sent but unrecorded (and so
        # send twice) is bounded by the limit in force (at most `concurrency`), not by the
        # rate times the record interval. The limit follows the rate and SES's latency.
        self._max_in_flight = concurrency
        self._latency = Latency(INITIAL_LATENCY_S)
        self._slots = InFlightLimit(self._in_flight_wanted())
        self._record_batch = max(1, min(RECORD_BATCH, concurrency // 2))
        self._lease = timedelta(seconds=lease_s)
        self._send_timeout_s = send_timeout_s
        self._shutdown_grace_s = shutdown_grace_s
        self._work_available = work_available
        self._soft_bounces = soft_bounces
        self._stopping = asyncio.Event()
        self._in_flight: set[asyncio.Task[None]] = set()
        self._waiting_for_grant: set[asyncio.Task[Any]] = set()
        self._never_tried: list[int] = []
        self._outcomes: list[Outcome] = []
        self._outcomes_ready = asyncio.Event()
        self._sends_finished = asyncio.Event()
        self._contents: OrderedDict[int, ContentParts] = OrderedDict()
        self._paused_until = -math.inf
        self._pauses_checked_until = -math.inf
        self._pauses_in_force = False
        self._account_stop: str | None = None
        self._last_sweep = -math.inf

    def stop(self) -> None:
        """Stop claiming; `run` then drains what is in flight and returns."""
        self._stopping.set()

    async def run(self) -> None:
        recorder = asyncio.create_task(self._record_continuously(), name="record-outcomes")
        try:
            while not self._stopping.is_set():
                try:
                    await self._step()
                except (DBAPIError, OSError):
                    # A database outage pauses the worker; it does not end it.
                    log.exception("database unavailable; trying again in %s s", POLL_INTERVAL_S)
                    await self._until_stopping(asyncio.sleep(POLL_INTERVAL_S))
                if recorder.done():
                    recorder.result()  # a crashed recorder stops the worker, loudly
        finally:
            await self._drain()
            # Let the recorder finish its current write rather than cancel it mid-transaction.
            self._sends_finished.set()
            self._outcomes_ready.set()
            (recorder_error,) = await asyncio.gather(recorder, return_exceptions=True)
            await self._flush_before_exit()
            log.info("pacing: %s", self._pacer.stats)
        if isinstance(recorder_error, BaseException):
            raise recorder_error

    async def _step(self) -> None:
        await self._sweep()
        held = self._paused() or await self._sending_paused()
        batch = [] if held else await self._claim()
        if batch:
            await self._dispatch(batch)
        else:
            await self._wait_for_work()

    # -- claiming --------------------------------------------------------------------------

    def _claim_size(self) -> int:
        return max(1, min(MAX_CLAIM, math.ceil(self._pacer.rate * CLAIM_HORIZON_S)))

    async def _claim(self) -> list[tuple[QueuedEmail, ContentParts]]:
        """Claimed rows, each with its content (one campaign shares one: cached)."""
        now = self._clock.now()
        async with self._sessionmaker() as session, session.begin():
            batch = await repository.claim_due(
                session, now=now, lease_until=now + self._lease, limit=self._claim_size()
            )
            needed = {queued.content_id for queued in batch}
            contents = {i: self._contents[i] for i in needed if i in self._contents}
            if missing := needed - contents.keys():
                contents.update(await repository.contents(session, missing))
        self._remember(contents)
        return [(queued, contents[queued.content_id]) for queued in batch]

    def _remember(self, contents: dict[int, ContentParts]) -> None:
        for content_id, parts in contents.items():
            self._contents[content_id] = parts
            self._contents.move_to_end(content_id)
        while len(self._contents) > CONTENT_CACHE_SIZE:
            self._contents.popitem(last=False)

    async def _sweep(self) -> None:
        if self._clock.monotonic() - self._last_sweep < SWEEP_INTERVAL_S:
            return
        self._last_sweep = self._clock.monotonic()
        async with self._sessionmaker() as session, session.begin():
            recovered = await repository.release_expired_leases(session, now=self._clock.now())
            # Normally adopted when the send is recorded; this catches an event whose insert
            # and the send's record crossed in flight (concurrent transactions on PostgreSQL).
            await adopt_stranded_events(
                session, soft_bounces=self._soft_bounces, now=self._clock.now()
            )
            await hold_paused_topics(session, now=self._clock.now())
        if recovered.reconciled:
            log.warning(
                "%d emails whose worker stopped mid-send were reported by SES: recorded as sent",
                recovered.reconciled,
            )
        if recovered.released:
            log.warning(
                "%d emails whose worker stopped mid-send are queued again", recovered.released
            )

    async def _wait_for_work(self) -> None:
        self._work_available.clear()
        wait = POLL_INTERVAL_S
        if self._paused():
            wait = max(0.0, min(wait, self._paused_until - self._clock.monotonic()))
        await self._until_stopping(self._work_available.wait(), give_up_after=wait)

    def _paused(self) -> bool:
        return self._clock.monotonic() < self._paused_until

    async def _sending_paused(self) -> bool:
        """Whether a pause of all sending (guardrail, operator, account) is in force.

        Looked up at most once a second: every worker honours a pause within a second.
        """
        if self._clock.monotonic() < self._pauses_checked_until:
            return self._pauses_in_force
        async with self._sessionmaker() as session, session.begin():
            pauses = await active_pauses(session, now=self._clock.now())
        self._pauses_checked_until = self._clock.monotonic() + PAUSE_CHECK_INTERVAL_S
        self._pauses_in_force = bool(pauses)
        return self._pauses_in_force

    # -- sending ---------------------------------------------------------------------------

    async def _dispatch(self, batch: Sequence[tuple[QueuedEmail, ContentParts]]) -> None:
        for position, (queued, content) in enumerate(batch):
            ready = not self._stopping.is_set() and not self._paused()
            if not (ready and await self._take_slot()):
                await self._release([q.request_id for q, _content in batch[position:]])
                return
            task = asyncio.create_task(
                self._send(queued, content), name=f"send-{queued.request_id}"
            )
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)

    async def _take_slot(self) -> bool:
        """A free slot is taken at once; only waiting for one watches for a stop.

        Watching costs two tasks and an `asyncio.wait`, which measured 7% of the worker's CPU
        when paid for every email (bench/throughput.py, docs/benchmarks.md).
        """
        if not self._slots.locked():
            await self._slots.acquire()  # a free slot: returns without suspending
            return True
        return await self._until_stopping(self._slots.acquire())

    async def _send(self, queued: QueuedEmail, content: ContentParts) -> None:
        awaiting_record = False
        try:
            email = self._composer.compose(queued, content)
            # Not `self._outcomes.append(await ...)`: that binds the list before the send, and
            # the recorder may swap it out meanwhile, losing this outcome with the old list.
            if (slot := await self._wait_for_grant(queued)) is not None:
                outcome = await self._attempt(queued, email, slot)
            else:
                outcome = Requeued(queued.request_id, self._clock.now(), None, False)
            self._outcomes.append(outcome)
            awaiting_record = True  # the recorder frees the slot once it is written
            if len(self._outcomes) >= self._record_batch:
                self._outcomes_ready.set()
        finally:
            if not awaiting_record:
                self._slots.release()

    async def _wait_for_grant(self, queued: QueuedEmail) -> Slot | None:
        """Paced in the task that sends, after composing, so only the request is left to write
        at the slot: the rate holds at the provider, not only in our bookkeeping.

        None if no slot could be reserved (the database is unavailable): nothing was sent.
        """
        task = asyncio.current_task()
        assert task is not None
        self._waiting_for_grant.add(task)
        try:
            return await self._pacer.acquire()
        except asyncio.CancelledError:
            self._never_tried.append(queued.request_id)  # stopping: nothing was sent
            raise
        except (DBAPIError, OSError):
            log.exception("reserving a send slot failed; request %s waits", queued.request_id)
            return None
        finally:
            self._waiting_for_grant.discard(task)

    async def _attempt(self, queued: QueuedEmail, email: OutgoingEmail, slot: Slot) -> Outcome:
        started = self._clock.monotonic()
        try:
            async with asyncio.timeout(self._send_timeout_s):
                message_id = await self._transport.send(
                    email, on_sent=partial(self._pacer.sent, slot)
                )
        except SendError as error:
            return self._after_failure(queued, error)
        except TimeoutError:
            return self._after_failure(queued, TransientError("timed out"))
        except Exception as error:
            log.exception("unexpected error sending request %s", queued.request_id)
            return self._after_failure(queued, TransientError(f"{type(error).__name__}: {error}"))
        finally:
            self._latency.observe(self._clock.monotonic() - started)
            self._slots.resize(self._in_flight_wanted())
        return Sent(queued.request_id, message_id, self._clock.now())

    def _in_flight_wanted(self) -> int:
        return in_flight_for(self._pacer.rate, self._latency.mean_s, maximum=self._max_in_flight)

    def _after_failure(self, queued: QueuedEmail, error: SendError) -> Outcome:
        if isinstance(error, ThrottledError):
            self._pacer.throttled()
        if isinstance(error, AccountPausedError):
            # This worker stops at once; the recorder pauses every worker through the database
            # (and /health says why). Sending is tried again when the pause ends.
            self._paused_until = self._clock.monotonic() + LOCAL_ACCOUNT_PAUSE_S
            self._account_stop = error.reason
        decision = self._retry.decide(error, attempts=queued.attempts, now=self._clock.now())
        if isinstance(decision, GiveUp):
            return Failed(queued.request_id, decision.reason)
        return Requeued(
            queued.request_id, decision.due_at, error.reason, decision.counts_as_attempt
        )

    # -- recording -------------------------------------------------------------------------

    async def _record_continuously(self) -> None:
        while not self._sends_finished.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(RECORD_INTERVAL_S):
                    await self._outcomes_ready.wait()
            self._outcomes_ready.clear()
            if not (await self._flush_outcomes() and await self._settle_pacing()):
                await asyncio.sleep(RECORD_RETRY_S)

    async def _settle_pacing(self) -> bool:
        """Share this worker's lateness and back-off with the others; False on a database error."""
        try:
            await self._pacer.settle()
        except (DBAPIError, OSError):
            log.exception("sharing pacing state failed; retrying")
            return False
        return True

    async def _flush_outcomes(self) -> bool:
        """Write what the sends returned; on a database error keep it for the next try."""
        if not self._outcomes:
            return True
        outcomes, self._outcomes = self._outcomes, []
        try:
            async with self._sessionmaker() as session, session.begin():
                await repository.record_outcomes(session, outcomes, now=self._clock.now())
                await self._adopt_waiting_events(session, outcomes)
                await self._pause_for_the_account(session)
        except (DBAPIError, OSError):
            # Their leases keep other workers off these rows meanwhile.
            self._outcomes[:0] = outcomes
            log.exception("recording %d outcomes failed; retrying", len(outcomes))
            return False
        except BaseException:
            # Cancelled mid-write: keep them. Recording twice is harmless, since only rows
            # still PROCESSING change.
            self._outcomes[:0] = outcomes
            raise
        for _ in outcomes:
            self._slots.release()
        return True

    async def _pause_for_the_account(self, session: AsyncSession) -> None:
        if self._account_stop is None:
            return
        now = self._clock.now()
        until = now + timedelta(seconds=ACCOUNT_PAUSE_S)
        await pause_sending(session, ACCOUNT, self._account_stop, now=now, until=until)
        self._account_stop = None

    async def _adopt_waiting_events(self, session: AsyncSession, outcomes: list[Outcome]) -> None:
        sent = {o.message_id: o.request_id for o in outcomes if isinstance(o, Sent)}
        for message_id in await waiting_message_ids(session, sent.keys()):
            await adopt_waiting_events(
                session,
                sent[message_id],
                message_id,
                soft_bounces=self._soft_bounces,
                now=self._clock.now(),
            )

    async def _flush_before_exit(self) -> None:
        for _ in range(FINAL_RECORD_TRIES):
            if await self._flush_outcomes():
                return
            await asyncio.sleep(RECORD_RETRY_S)
        log.error(
            "%d outcomes could not be recorded; their emails will be sent again after the "
            "lease expires",
            len(self._outcomes),
        )

    async def _release(self, request_ids: list[int]) -> None:
        async with self._sessionmaker() as session, session.begin():
            await repository.release_unsent(session, request_ids, now=self._clock.now())

    async def _drain(self) -> None:
        """Sends under way finish and are recorded; sends still waiting for the pacer go back."""
        for task in self._waiting_for_grant:
            task.cancel()
        if self._in_flight:
            log.info("waiting for %d sends in flight", len(self._in_flight))
            _done, pending = await asyncio.wait(self._in_flight, timeout=self._shutdown_grace_s)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if self._never_tried:
            await self._release(self._never_tried)
            self._never_tried = []

    # -- helpers ---------------------------------------------------------------------------

    async def _until_stopping(
        self, awaitable: Awaitable[T], *, give_up_after: float | None = None
    ) -> bool:
        """Await `awaitable` unless the worker is told to stop (or time runs out) first.

        True if it completed.
        """
        task = asyncio.ensure_future(awaitable)
        stopping = asyncio.ensure_future(self._stopping.wait())
        done, _ = await asyncio.wait(
            {task, stopping}, timeout=give_up_after, return_when=asyncio.FIRST_COMPLETED
        )
        stopping.cancel()
        if task in done:
            task.result()
            return True
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return False
