"""The delivery loop: claim due emails, pace them, send them while their lease is surely ours,
hand the results to the recorder; on stop, drain what is in flight.

Before its first claim, the worker writes the outcomes a stopped worker left in the journal.
While it runs, it renews the leases of everything it has claimed and not recorded
(`leases.py`). Sends still on the wire when the shutdown grace ends are recorded as sent,
unconfirmed: at most once, never sent again. Transient failures go through the outage watch
(`outage.py`): the provider failing every send pauses all sending and uses no email's attempts.

The engine around it is wired from ports (`ports.py`): it imports no feature. The loop waits
with an injected `sleep`, as the pacer does, so tests can run it in virtual time.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Sequence

from ses_sender import instruments
from ses_sender.clock import Clock
from ses_sender.db import errors as database
from ses_sender.delivery.claimer import Claimer
from ses_sender.delivery.concurrency import InFlightLimit, Latency, in_flight_for
from ses_sender.delivery.emails import (
    ContentParts,
    Failed,
    QueuedEmail,
    Requeued,
    SendResult,
    Sent,
    Unconfirmed,
)
from ses_sender.delivery.leases import Leases
from ses_sender.delivery.outage import OutageWatch
from ses_sender.delivery.pacer import Pacer, Slot
from ses_sender.delivery.pause_gate import PauseGate
from ses_sender.delivery.ports import Composer
from ses_sender.delivery.recorder import OutcomesNotRecorded, Recorder, Unrecorded
from ses_sender.delivery.retry import GiveUp, RetryPolicy
from ses_sender.delivery.wakeup import Wakeup
from ses_sender.tasks import TRANSIENT_ERRORS, Periodic, Sleep, unless_set, wait_any
from ses_sender.transports.base import (
    AccountPausedError,
    OutgoingEmail,
    PermanentError,
    SendError,
    ThrottledError,
    TransientError,
    Transport,
)

log = logging.getLogger(__name__)

POLL_INTERVAL_S = 1.0  # newly due rows are seen within this, even from another process
CLAIM_HORIZON_S = 0.5  # claim about this much sending at a time, never a backlog
MAX_CLAIM = 1_000
INITIAL_LATENCY_S = 0.05  # until sends are measured: SES's usual answer time


class Worker:
    def __init__(
        self,
        *,
        claimer: Claimer,
        leases: Leases,
        composer: Composer,
        transport: Transport,
        pacer: Pacer,
        recorder: Recorder,
        pauses: PauseGate,
        retry: RetryPolicy,
        clock: Clock,
        in_flight: InFlightLimit,
        max_in_flight: int,
        send_timeout_s: float,
        shutdown_grace_s: float,
        wakeup: Wakeup,
        outage: OutageWatch,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._claimer = claimer
        self._leases = leases
        self._renewal = Periodic("lease renewal", leases.renew, leases.renew_every_s, sleep=sleep)
        self._composer = composer
        self._transport = transport
        self._pacer = pacer
        self._recorder = recorder
        self._pauses = pauses
        self._retry = retry
        self._clock = clock
        # An email holds a place from its dispatch until the recorder has written its result,
        # not only while it is on the wire: what a kill leaves sent but unrecorded (and so sends
        # twice) is at most the limit in force, which follows the rate and SES's latency.
        self._max_in_flight = max_in_flight
        self._latency = Latency(INITIAL_LATENCY_S)
        self._in_flight_limit = in_flight
        in_flight.resize(self._in_flight_wanted())
        self._send_timeout_s = send_timeout_s
        self._shutdown_grace_s = shutdown_grace_s
        self._wakeup = wakeup
        self._outage = outage
        self._sleep = sleep
        self._outage_log = database.OutageLog(log)
        self._stopping = asyncio.Event()
        self._in_flight: set[asyncio.Task[None]] = set()
        self._pacing: set[asyncio.Task[object]] = set()
        self._never_tried: list[QueuedEmail] = []
        self._lease_unsure = 0  # emails not sent since the last look: their lease was in doubt
        self._cut_off = 0  # sends on the wire when the shutdown grace ended

    def stop(self) -> None:
        """Stop claiming; `run` then drains what is in flight and returns."""
        self._stopping.set()

    async def run(self) -> None:
        """Raises `OutcomesNotRecorded` if it stops with results the database never got."""
        self._recorder.open_journal()
        try:
            if await self._replay_journals():
                await self._run_loop()
        except BaseException:
            if unrecorded := await self._finish():
                log.error("%s", self._unrecorded_message(unrecorded))
            raise
        if unrecorded := await self._finish():
            raise OutcomesNotRecorded(self._unrecorded_message(unrecorded))

    async def _finish(self) -> Unrecorded | None:
        """The last write; what is left unwritten, if anything."""
        unrecorded = await self._recorder.flush_before_exit()
        self._recorder.close_journal()
        log.info("pacing: %s", self._pacer.stats)
        return unrecorded if unrecorded.journaled or unrecorded.lost else None

    async def _replay_journals(self) -> bool:
        """Whether every journal left behind is written (False: told to stop first)."""
        while not self._stopping.is_set():
            try:
                await self._recorder.replay_journals()
            except TRANSIENT_ERRORS as error:
                self._outage_log.failed(
                    "replay",
                    error,
                    "writing journaled outcomes failed; trying again in %s s: %s",
                    POLL_INTERVAL_S,
                )
                await wait_any(self._stopping, timeout_s=POLL_INTERVAL_S, sleep=self._sleep)
            else:
                return True
        return False

    async def _run_loop(self) -> None:
        recording = asyncio.create_task(self._recorder.run(), name="record-outcomes")
        renewing = asyncio.create_task(self._renewal.run(), name="renew-leases")
        try:
            while not self._stopping.is_set():
                try:
                    await self._step()
                except TRANSIENT_ERRORS as error:
                    # A database outage pauses the worker; it does not end it.
                    self._outage_log.log(
                        logging.ERROR,
                        "step",
                        "database unavailable: %s; trying again every %s s",
                        database.describe(error),
                        POLL_INTERVAL_S,
                    )
                    await wait_any(self._stopping, timeout_s=POLL_INTERVAL_S, sleep=self._sleep)
                for task in (recording, renewing):
                    if task.done():
                        task.result()  # a crashed recorder or renewal stops the worker, loudly
        finally:
            await self._drain()
            self._recorder.finish()
            self._renewal.stop()
            (recorder_error, renewal_error) = await asyncio.gather(
                recording, renewing, return_exceptions=True
            )
        for crash in (recorder_error, renewal_error):
            if isinstance(crash, BaseException):
                raise crash

    def _unrecorded_message(self, unrecorded: Unrecorded) -> str:
        where = self._recorder.journal_path
        return (
            f"{unrecorded.journaled + unrecorded.lost} outcomes could not be recorded in the "
            f"database: {unrecorded.journaled} kept in the outcome journal {where}, written by "
            f"the next worker to start; {unrecorded.lost} lost (the journal could not be "
            "written): their emails are sent again after the lease expires"
        )

    async def _step(self) -> None:
        if self._lease_unsure:
            log.warning(
                "%d claimed emails not sent: this worker could not renew their lease (the "
                "database is unreachable) and another may claim them; they go back to the queue",
                self._lease_unsure,
            )
            self._lease_unsure = 0
        if self._recorder.behind:
            # After an outage the sweep may have put back rows whose sends this worker has not
            # recorded yet: claimed again before that, they would be sent twice.
            await wait_any(self._stopping, timeout_s=POLL_INTERVAL_S, sleep=self._sleep)
            return
        held = await self._pauses.holding()
        batch = [] if held else await self._claimer.claim(self._claim_size())
        if batch:
            await self._dispatch(batch)
        else:
            await self._wait_for_work()

    def _claim_size(self) -> int:
        return max(1, min(MAX_CLAIM, math.ceil(self._pacer.rate * CLAIM_HORIZON_S)))

    async def _wait_for_work(self) -> None:
        self._wakeup.event.clear()
        wait = POLL_INTERVAL_S
        if self._pauses.stopped_here:
            wait = min(wait, self._pauses.seconds_stopped_here())
        await wait_any(self._wakeup.event, self._stopping, timeout_s=wait, sleep=self._sleep)

    # -- sending ---------------------------------------------------------------------------

    async def _dispatch(self, batch: Sequence[tuple[QueuedEmail, ContentParts]]) -> None:
        for position, (queued, content) in enumerate(batch):
            ready = not self._stopping.is_set() and not self._pauses.stopped_here
            if not (ready and await self._take_place()):
                await self._claimer.release([queued for queued, _content in batch[position:]])
                return
            task = asyncio.create_task(
                self._send(queued, content), name=f"send-{queued.request_id}"
            )
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)

    async def _take_place(self) -> bool:
        """A free place is taken at once; only waiting for one watches for a stop: watching costs
        two tasks and an `asyncio.wait`, too much to pay for every email
        (docs/decisions/0011-worker-hot-path.md)."""
        if not self._in_flight_limit.locked():
            await self._in_flight_limit.acquire()  # a free place: returns without suspending
            return True
        return await self._unless_stopping(self._in_flight_limit.acquire())

    async def _send(self, queued: QueuedEmail, content: ContentParts) -> None:
        handed_over = False
        try:
            result: SendResult
            try:
                email = self._composer.compose(queued, content)
            except SendError as error:
                result = self._given_up_counted(self._after_failure(queued, error), error)
            else:
                slot = await self._wait_for_slot(queued)
                if slot is None:
                    result = self._not_tried(queued)
                elif not self._leases.may_send(queued.request_id):
                    self._lease_unsure += 1
                    result = self._not_tried(queued)
                else:
                    handover = _Handover(self._pacer, slot)
                    try:
                        result = await self._attempt(queued, email, handover)
                    except asyncio.CancelledError:
                        if handover.done:  # on the wire, its answer never heard: at most once
                            self._cut_off += 1
                            self._recorder.add(
                                Unconfirmed(
                                    queued.request_id, self._clock.now(), queued.lease_token
                                )
                            )
                            handed_over = True
                        else:
                            self._never_tried.append(queued)
                        raise
            self._recorder.add(result)
            handed_over = True  # the recorder frees the place once it is written
        finally:
            if not handed_over:
                self._in_flight_limit.release()

    def _not_tried(self, queued: QueuedEmail) -> Requeued:
        return Requeued(queued.request_id, self._clock.now(), None, False, queued.lease_token)

    async def _wait_for_slot(self, queued: QueuedEmail) -> Slot | None:
        """Paced in the task that sends, after composing, so only the request is left to write
        at the slot: the rate holds at the provider, not only in our bookkeeping.

        None if no slot could be reserved (the database is unavailable): nothing was sent.
        """
        task = asyncio.current_task()
        assert task is not None
        self._pacing.add(task)
        try:
            return await self._pacer.acquire()
        except asyncio.CancelledError:
            self._never_tried.append(queued)  # stopping: nothing was sent
            raise
        except TRANSIENT_ERRORS as error:
            self._outage_log.failed(
                "reserve",
                error,
                "reserving a send slot failed; request %s waits: %s",
                queued.request_id,
            )
            return None
        finally:
            self._pacing.discard(task)

    async def _attempt(
        self, queued: QueuedEmail, email: OutgoingEmail, handover: _Handover
    ) -> SendResult:
        started = self._clock.monotonic()
        try:
            async with asyncio.timeout(self._send_timeout_s):
                message_id = await self._transport.send(email, on_sent=handover)
        except SendError as error:
            failure = error
        except TimeoutError:
            failure = TransientError("timed out")
        except Exception as error:
            log.exception("unexpected error sending request %s", queued.request_id)
            failure = TransientError(f"{type(error).__name__}: {error}")
        else:
            self._outage.answered()
            instruments.EMAILS_SENT.inc()
            return Sent(queued.request_id, message_id, self._clock.now(), queued.lease_token)
        finally:
            took_s = self._clock.monotonic() - started
            self._latency.observe(took_s)
            instruments.SEND_DURATION.observe(took_s)
            self._in_flight_limit.resize(self._in_flight_wanted())
        result = self._after_failure(queued, failure)
        if isinstance(failure, TransientError):
            result = await self._outage.failed(queued, failure, result)
        else:
            self._outage.answered()
        return self._given_up_counted(result, failure)

    def _in_flight_wanted(self) -> int:
        return in_flight_for(self._pacer.rate, self._latency.mean_s, maximum=self._max_in_flight)

    def _after_failure(self, queued: QueuedEmail, error: SendError) -> SendResult:
        if isinstance(error, ThrottledError):
            instruments.THROTTLES.inc()
            self._pacer.throttled()
        elif isinstance(error, AccountPausedError):
            instruments.SEND_FAILURES.labels("account_paused").inc()
            self._pauses.account_refused(error.reason)
        elif isinstance(error, PermanentError):
            instruments.SEND_FAILURES.labels("permanent").inc()
        else:
            instruments.SEND_FAILURES.labels("transient").inc()
        decision = self._retry.decide(error, attempts=queued.attempts, now=self._clock.now())
        if isinstance(decision, GiveUp):
            return Failed(queued.request_id, decision.reason, queued.lease_token)
        return Requeued(
            queued.request_id,
            decision.due_at,
            error.reason,
            decision.counts_as_attempt,
            queued.lease_token,
        )

    @staticmethod
    def _given_up_counted(result: SendResult, error: SendError) -> SendResult:
        """Counted once the outage watch has had its say: it may put a give-up back."""
        if isinstance(result, Failed):
            if isinstance(error, PermanentError):
                instruments.EMAILS_FAILED_PERMANENT.inc()
            else:
                instruments.EMAILS_FAILED_ATTEMPTS.inc()
        return result

    # -- stopping --------------------------------------------------------------------------

    async def _drain(self) -> None:
        """Sends under way finish and are recorded; sends still waiting for the pacer go back."""
        for task in self._pacing:
            task.cancel()
        if self._in_flight:
            log.info("waiting for %d sends in flight", len(self._in_flight))
            _done, pending = await asyncio.wait(self._in_flight, timeout=self._shutdown_grace_s)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if self._cut_off:
            log.warning(
                "%d sends were still on the wire when the shutdown grace (%g s) ended: recorded "
                "as sent, unconfirmed, and never sent again",
                self._cut_off,
                self._shutdown_grace_s,
            )
        if self._never_tried:
            never_tried, self._never_tried = self._never_tried, []
            try:
                await self._claimer.release(never_tried)
            except TRANSIENT_ERRORS as error:
                # Their lease runs out and a sweep queues them again: nothing was sent.
                self._outage_log.failed(
                    "release", error, "giving back %d unsent emails failed: %s", len(never_tried)
                )

    async def _unless_stopping(self, awaitable: Awaitable[None]) -> bool:
        """Await `awaitable` unless the worker is told to stop first; whether it completed."""
        finished = await unless_set(self._stopping, awaitable)
        if finished is None:
            return False
        finished.result()
        return True


class _Handover:
    """Called by the transport as the email goes on the wire: the pacer learns of the send, and
    a send cut off after it is taken as sent."""

    __slots__ = ("_pacer", "_slot", "done")

    def __init__(self, pacer: Pacer, slot: Slot) -> None:
        self._pacer = pacer
        self._slot = slot
        self.done = False

    def __call__(self) -> None:
        self.done = True
        self._pacer.sent(self._slot)
