"""SES unreachable, timing out or answering 5xx to everyone: an outage of the provider, not a
fault of the emails that meet it. Told apart here, and waited out without using their attempts
(docs/decisions/0031-ses-outage-pauses-sending.md).

One failure alone cannot say whose it is; a run can. `failures_to_pause` different emails
failing transiently one after another, with no other answer from the provider between them, is
an outage:

* The first failure of a run counts an attempt, as the email's own failure would: an email
  that fails alone, while others go out, is retried with backoff and given up after its last
  attempt. The next ones in the run go back to the queue due at once, no attempt used.
* A failure that would give its email up is checked first: if nothing has been answered since
  this worker's last outage began, or the provider does not answer a probe now, the email goes
  back to the queue instead.
* At `failures_to_pause` the worker pauses all sending through the database (the outage pause):
  every worker stops claiming. Every process that sends through the provider probes it while
  the pause is in force, with back-off, and lifts the pause once it answers. Only this pause:
  the guardrail's, an operator's and the account's are not the probe's to lift.
"""

from __future__ import annotations

import asyncio
import logging
import math
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ses_sender.clock import Clock
from ses_sender.db import errors as database
from ses_sender.delivery.emails import Failed, QueuedEmail, Requeued, SendResult
from ses_sender.delivery.pause_gate import CHECK_INTERVAL_S, PauseGate
from ses_sender.delivery.ports import PauseSource
from ses_sender.tasks import TRANSIENT_ERRORS, Sleep, unless_set, wait_any
from ses_sender.transports.base import LimitsSource, SendError, TransientError

log = logging.getLogger(__name__)


class OutageWatch(Protocol):
    """What the worker tells of each send's answer, and what becomes of a transient failure."""

    def answered(self) -> None:
        """The provider answered a send: accepted, refused or throttled it."""
        ...

    async def failed(
        self, queued: QueuedEmail, error: TransientError, judged: SendResult
    ) -> SendResult:
        """What to record for a send that failed transiently; `judged`: as its own failure."""
        ...


class NoOutageWatch:
    """For a transport with nothing to probe: every failure is the email's own."""

    def answered(self) -> None:
        pass

    async def failed(
        self, queued: QueuedEmail, error: TransientError, judged: SendResult
    ) -> SendResult:
        return judged


class ProviderOutage:
    """The outage watch of one process, and its probe (a side task: `run`, `stop`)."""

    def __init__(
        self,
        *,
        source: LimitsSource,
        pauses: PauseSource,
        gate: PauseGate,
        sessionmaker: async_sessionmaker[AsyncSession],
        clock: Clock,
        failures_to_pause: int,
        probe_first_s: float,
        probe_max_s: float,
        timeout_s: float,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._source = source
        self._pauses = pauses
        self._gate = gate
        self._sessionmaker = sessionmaker
        self._clock = clock
        self._failures_to_pause = failures_to_pause
        self._probe_first_s = probe_first_s
        self._probe_max_s = probe_max_s
        self._probe_wait_s = probe_first_s
        self._timeout_s = timeout_s
        self._sleep = sleep
        self._run: set[int] = set()  # the emails that failed one after another, by request id
        # Whether the provider answered a send since this worker last found it out: until it
        # does, a probe that answers may be its API and not its sending coming back.
        self._answered_since_outage = True
        self._answered_at = -math.inf  # monotonic
        self._pause_seen = False
        self._pause_last_seen_at = -math.inf  # monotonic
        self._stopping = asyncio.Event()
        self._outage_log = database.OutageLog(log)

    def answered(self) -> None:
        self._run.clear()
        self._answered_since_outage = True
        self._answered_at = self._clock.monotonic()

    async def failed(
        self, queued: QueuedEmail, error: TransientError, judged: SendResult
    ) -> SendResult:
        self._run.add(queued.request_id)
        if len(self._run) == self._failures_to_pause:
            self._answered_since_outage = False
            self._gate.provider_unreachable(
                f"{len(self._run)} emails in a row failed with no answer from SES (the last: "
                f"{error.reason}); sending resumes once SES answers again"
            )
        if len(self._run) > 1 or (isinstance(judged, Failed) and not await self._own_failure()):
            return Requeued(
                queued.request_id, self._clock.now(), error.reason, False, queued.lease_token
            )
        return judged

    async def _own_failure(self) -> bool:
        """Whether a failure that would give its email up was the email's own."""
        return self._answered_since_outage and await self._provider_answers()

    async def _provider_answers(self) -> bool:
        try:
            async with asyncio.timeout(self._timeout_s):
                await self._source.sending_limits()
        except (TransientError, TimeoutError):
            return False
        except SendError:
            pass  # refused, throttled: it answered
        return True

    # -- the probe ---------------------------------------------------------------------------

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        """While the outage pause is in force, ask the provider, waiting longer after each
        silence (`probe_first_s`, doubled up to `probe_max_s`), and lift the pause once it
        answers."""
        while not self._stopping.is_set():
            try:
                await self._probe_if_paused()
            except TRANSIENT_ERRORS as error:
                # The worker logs the outage itself: one line here, no traceback.
                self._outage_log.log(
                    logging.WARNING,
                    "probe",
                    "the SES outage probe cannot read the pause: %s",
                    database.describe(error),
                )
                await wait_any(self._stopping, timeout_s=CHECK_INTERVAL_S, sleep=self._sleep)

    async def _probe_if_paused(self) -> None:
        async with self._sessionmaker() as session, session.begin():
            paused = await self._pauses.outage_paused(session, now=self._clock.now())
        if not paused:
            if self._pause_seen:  # lifted by another process
                self._lifted()
            await wait_any(self._stopping, timeout_s=CHECK_INTERVAL_S, sleep=self._sleep)
            return
        if not self._pause_seen:
            self._pause_seen = True
            # Paused again with no send answered since the last pause: the provider's API
            # answered the last probe, its sending did not. Waiting longer each time keeps such
            # an outage from pausing and resuming every few seconds.
            self._probe_wait_s = (
                min(2 * self._probe_wait_s, self._probe_max_s)
                if self._answered_at < self._pause_last_seen_at
                else self._probe_first_s
            )
        self._pause_last_seen_at = self._clock.monotonic()
        await wait_any(self._stopping, timeout_s=self._probe_wait_s, sleep=self._sleep)
        # A probe of an SES that does not answer takes up to its timeout: not the stop's.
        probe = await unless_set(self._stopping, self._provider_answers())
        if probe is None:
            return
        if probe.result():
            async with self._sessionmaker() as session, session.begin():
                await self._pauses.resume_after_outage(session)
            # Known here and now: a pause found at the next look is a new one, however soon.
            self._lifted()
        else:
            self._probe_wait_s = min(2 * self._probe_wait_s, self._probe_max_s)

    def _lifted(self) -> None:
        """The pause is over: a new run of failures starts."""
        self._pause_seen = False
        self._run.clear()
