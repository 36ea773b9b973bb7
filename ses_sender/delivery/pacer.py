"""Pacing shared by every worker: slots taken from one schedule, each waited for exactly.

All workers reserve their send slots from one GCRA schedule (a row in the database, see
`schedule.py`), a few at a time, so together they never put more than the rate in any one-second
window. Each send then leaves at a slot of its own, taken as the slot falls due: sends are
spread evenly, never bunched.

A send that goes out late moves closer to the sends a second after it. Its lateness, measured once
its request is written (waking late and being held up after waking count alike), is put back on
the shared schedule, which shifts every later slot, of every worker, by as much. The schedule
counts the shift it has made in all, and a late send asks for a total (the shift when its slot
was reserved plus its lateness), so late sends of several workers at once cost the most of
them, not their sum. A throttle from SES trims the shared rate, throttles that keep coming
halve it (at most once a second), and the rate recovers a tenth of its target each second:
additive increase, multiplicative decrease, seen by every worker.

Pure apart from the `Schedule` it is given: time comes from the schedule's clock and waiting
from the injected `sleep`, so tests drive it in virtual time.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Protocol

from ses_sender import instruments

log = logging.getLogger(__name__)

# The window the rate is counted in, plus room for jitter we cannot pay back: the lateness we
# let pass (LATE_ALLOWANCE_S) and the time from writing the request to the provider receiving
# it, which we never see. Each millisecond costs 0.1% of the rate; how 4 ms was reached:
# docs/decisions/0004-pacing-window-margin.md.
WINDOW_S = 1.0 + 0.004
# A reservation covers about this much sending: one database round trip per block of slots.
HORIZON_S = 0.1
# Going out this late is normal scheduling jitter (an event loop wakes a little after its
# timer); only what goes beyond it is put back on the schedule
# (docs/decisions/0004-pacing-window-margin.md).
LATE_ALLOWANCE_S = 0.0025
# How far ahead of now a worker reserves. Lateness paid back shifts only the slots reserved
# after it, so every slot must be reserved well under a second before its time.
MAX_LEAD_S = 0.2
# A send later than the allowance either puts its lateness back on the schedule or, where that
# costs more than the slot itself (late by more than the slot interval: a worker with slots
# denser than it can send them, or a stall), drops the slot and takes the next: an unused slot
# is always safe. Never later than this: it bounds what lateness can owe, so the debt is paid
# long before the slots it must shift.
STALE_SLOT_S = 0.05
RECOVERY_PER_S = 0.1  # of the target rate, after a throttle
# A lone throttle, with the rate paced at the account's own, is a send that reached SES later
# than its slot (a network or scheduling delay) and met the next second's sends there: a trim
# is enough. Throttles that keep coming mean something else is sending on the account too: then
# each halves the rate (docs/decisions/0006-throttle-backoff.md).
TRIM_FACTOR = 0.9
BACKOFF_FACTOR = 0.5
# A throttle this soon after the last back-off is part of a storm: one that comes back as the
# trimmed rate recovers (a tenth a second). Lone throttles on a loaded machine come further
# apart, and must not halve the rate.
STORM_WITHIN_S = 2.0
BACKOFF_EVERY_S = 1.0  # one burst of throttles backs off once, not once per throttled send
MIN_RATE = 1.0  # backing off never goes below this (or below the target, if that is lower)


def slot_interval(rate: float) -> float:
    """The gap between two slots: ⌊rate⌋ per window, so no window can hold rate + 1."""
    return WINDOW_S / (math.floor(rate) if rate >= 1 else rate)


@dataclass(frozen=True, slots=True)
class Backoff:
    """The shared rate's state after throttles: `level` of the target, set at `since`."""

    level: float = 1.0
    since: float = 0.0

    def level_at(self, now: float) -> float:
        return min(1.0, self.level + RECOVERY_PER_S * max(0.0, now - self.since))

    def after_throttle(self, now: float, *, floor: float) -> Backoff | None:
        """The state a throttle at `now` leads to; None if the rate was just backed off."""
        since_last = now - self.since
        if since_last < BACKOFF_EVERY_S:
            return None
        factor = BACKOFF_FACTOR if since_last < STORM_WITHIN_S else TRIM_FACTOR
        return Backoff(max(floor, self.level_at(now) * factor), now)


@dataclass(frozen=True, slots=True)
class Reservation:
    first_slot: float  # on the schedule's clock; the others follow at the interval asked for
    shifted: float  # the schedule's shift in all, these slots included
    backoff: Backoff  # the shared state, as the reservation found it


@dataclass(frozen=True, slots=True)
class Slot:
    """One send's time on the schedule: `Pacer.acquire` returns at it, `Pacer.sent` takes it
    back once the request is out."""

    at: float
    shifted: float  # the schedule's shift in all when the slot was reserved
    # How late it may be used, paying the lateness back: beyond this, taking the next slot
    # costs the schedule less.
    usable_for: float


@dataclass(slots=True)
class _Block:
    """Slots reserved together at `reserved_at`, `interval` apart from `first`, handed out in
    order; `used` counts those handed out.

    Kept as arithmetic, not a list: where the rate is far above what this worker sends, most of
    a block's slots pass unused, and one object per slot was a large share of the worker's CPU
    (docs/decisions/0011-worker-hot-path.md).
    """

    first: float
    interval: float
    count: int
    shifted: float
    usable_for: float
    reserved_at: float
    taken: int = 0  # the index after the last slot handed out or passed over as stale
    used: int = 0

    @property
    def end(self) -> float:
        return self.first + self.count * self.interval

    def take_due(self, now: float) -> Slot | None:
        """The earliest slot not taken, still usable and due at `now`; None if there is none."""
        index = self._earliest(now)
        if index >= self.count or self.first + index * self.interval > now:
            return None
        self.taken = index + 1
        self.used += 1
        return Slot(self.first + index * self.interval, self.shifted, self.usable_for)

    def next_at(self, now: float) -> float | None:
        """When the earliest slot not taken and still usable at `now` is due; None once the
        block has none left."""
        index = self._earliest(now)
        return self.first + index * self.interval if index < self.count else None

    def due(self, now: float) -> int:
        """How many slots `take_due` would hand out at `now`."""
        earliest = self._earliest(now)
        last = min(self.count - 1, math.floor((now - self.first) / self.interval))
        # The division may round either way; a slot's own time decides, as in `take_due`.
        if last + 1 < self.count and self.first + (last + 1) * self.interval <= now:
            last += 1
        elif last >= 0 and self.first + last * self.interval > now:
            last -= 1
        return max(0, last - earliest + 1)

    def _earliest(self, now: float) -> int:
        if self.taken >= self.count:
            return self.count
        return max(self.taken, math.ceil((now - self.usable_for - self.first) / self.interval))


@dataclass(slots=True)
class PacingStats:
    """What became of one worker's slots: where a shortfall from the rate went."""

    sends: int = 0
    late: int = 0  # sends out later than the allowance: their lateness shifted the schedule
    latest_s: float = 0.0  # the latest of those
    slots_given_up: int = 0  # by sends that woke too late to use them
    slots_unused: int = 0  # reserved, and passed with no send waiting for them
    throttled: int = 0
    shifted_s: float = 0.0  # the shared schedule's shift for late sends, as last seen

    def __str__(self) -> str:
        return (
            f"{self.sends} sends, {self.late} late (at worst {self.latest_s * 1000:.1f} "
            f"ms), {self.slots_given_up} slots given up, {self.slots_unused} unused, "
            f"{self.throttled} throttled; the schedule shifted {self.shifted_s:.3f} s for "
            "late sends"
        )


class Schedule(Protocol):
    """The slot schedule all workers share, and the clock it keeps time by."""

    def now(self) -> float:
        """Seconds on the schedule's clock (the same for every worker)."""
        ...

    async def reserve(
        self, *, now: float, count: int, interval: float, shift_to: float
    ) -> Reservation:
        """Take `count` slots `interval` apart, the first no earlier than `now`, after moving
        the schedule on until it has been shifted by `shift_to` seconds in all (if it has not
        been already). `count` 0 only moves it on."""
        ...

    async def back_off(self, *, seen: Backoff, to: Backoff) -> Backoff:
        """Set the shared state to `to` unless another worker changed it since `seen`;
        return the state now in force."""
        ...


class Pacer:
    """Hands each send its slot and waits for it."""

    def __init__(
        self,
        target_rate: float,
        *,
        schedule: Schedule,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._schedule = schedule
        self._sleep = sleep
        self._lock = asyncio.Lock()
        self._block = _Block(
            first=-math.inf,
            interval=1.0,
            count=0,
            shifted=0.0,
            usable_for=0.0,
            reserved_at=-math.inf,
        )
        # Sends waiting for a slot, in order (a cancelled one is dropped when it comes first),
        # and the task that hands the slots out as they fall due.
        self._line: deque[asyncio.Future[None]] = deque()
        self._handing_out: asyncio.Task[None] | None = None
        # Slots are asked for from now plus the usual reservation round trip, so they are not
        # already late when they arrive (and, from a slow database, stale).
        self._round_trip_s = 0.0
        self._shift_to = 0.0  # the total shift this worker's late sends need
        self._shifted = 0.0  # the total shift as the schedule last reported it
        self._owed_since = -math.inf  # when lateness no reservation has carried was first noted
        self._backoff = Backoff()
        self._unshared_backoff: tuple[Backoff, Backoff] | None = None
        self._stats = PacingStats()
        self.set_target(target_rate)

    @property
    def target(self) -> float:
        return self._target

    @property
    def stats(self) -> PacingStats:
        """The counters kept as sends go, plus what the current block and the schedule hold."""
        passed_in_this_block = self._block.taken - self._block.used
        return replace(
            self._stats,
            slots_unused=self._stats.slots_unused + passed_in_this_block,
            shifted_s=self._shifted,
        )

    @property
    def rate(self) -> float:
        """The rate in force: the target, less any back-off after throttles."""
        level = self._backoff.level_at(self._schedule.now())
        return max(min(self._target, MIN_RATE), self._target * level)

    def set_target(self, rate: float) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self._target = rate

    async def acquire(self) -> Slot:
        """Return at this send's slot: call it last, with only the request left to write, and
        hand the slot to `sent` once the request is written.

        A slot already due is taken at once. Otherwise the send waits in line, and one task
        sleeps until the next slot and then wakes as many sends as there are slots due, each
        taking its slot as it runs. Each send sleeping towards a slot of its own, taken on
        arrival, woke past it behind hundreds of others on a busy event loop, gave it up and
        took another, again and again: 5 to 9 wake-ups per email
        (docs/decisions/0011-worker-hot-path.md).
        """
        woken = False
        while True:
            may_take = woken or (not self._line and not self._lock.locked())
            if may_take and (slot := self._block.take_due(self._schedule.now())) is not None:
                self._stats.sends += 1
                return slot
            await self._wait_in_line(first=woken)
            woken = True

    async def _wait_in_line(self, *, first: bool) -> None:
        """Until a slot is due for this send (`first`: woken before, and beaten to its slot)."""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if first:
            self._line.appendleft(waiter)
        else:
            self._line.append(waiter)
        if self._handing_out is None:
            self._handing_out = asyncio.create_task(self._hand_out(), name="pacer")
        try:
            await waiter
        except asyncio.CancelledError:
            if not self._first_waiting() and self._handing_out is not None:
                self._handing_out.cancel()  # no one is left to wake
                self._handing_out = None
            raise

    async def _hand_out(self) -> None:
        try:
            while self._first_waiting():
                try:
                    at = await self._next_slot_at()
                except Exception as error:  # no slot could be reserved: the first send learns it
                    self._wake(error)
                    continue
                delay = at - self._schedule.now()
                if delay > 0:
                    await self._sleep(delay)
                due = self._block.due(self._schedule.now())
                if not due:
                    self._stats.slots_given_up += 1  # woken too late to use it
                for _ in range(due):
                    self._wake(None)
                await asyncio.sleep(0)  # the sends woken take their slots before more are due
        except BaseException as error:  # no send may be left waiting for a task that ended
            while self._first_waiting():
                self._wake(error if isinstance(error, Exception) else asyncio.CancelledError())
            raise
        finally:
            if self._handing_out is asyncio.current_task():
                self._handing_out = None

    def _first_waiting(self) -> bool:
        """Whether a send waits in line, the cancelled ones ahead of it dropped."""
        while self._line and self._line[0].cancelled():
            self._line.popleft()
        return bool(self._line)

    def _wake(self, failure: BaseException | None) -> None:
        """The first send in line still waiting, to take a slot due or to fail with `failure`
        (a CancelledError too: the send is stopped, its waiting is not cancelled)."""
        if not self._first_waiting():
            return
        waiter = self._line.popleft()
        if failure is None:
            waiter.set_result(None)
        else:
            waiter.set_exception(failure)

    def sent(self, slot: Slot) -> None:
        """The request for `slot` has just been written: its lateness, from waking late or from
        being held up after, beyond the allowance is put back on the schedule.

        Measured here, not on waking: between the two, a send waits for its turn on the event
        loop and, on a busy machine, for a CPU, and a send held up there for a few milliseconds
        met the sends of a second later at SES. Measured after the write, it can only overstate
        how late the request left.
        """
        late = self._schedule.now() - slot.at
        if late > LATE_ALLOWANCE_S:
            self._stats.late += 1
            self._stats.latest_s = max(self._stats.latest_s, late)
            if self._shift_to <= self._shifted:
                self._owed_since = self._schedule.now()
            self._shift_to = max(self._shift_to, slot.shifted + late - LATE_ALLOWANCE_S)

    def throttled(self) -> None:
        """SES said we are over its rate: back off now, for every worker at the next `settle`."""
        self._stats.throttled += 1
        now = self._schedule.now()
        floor = min(1.0, MIN_RATE / self._target)
        backed_off = self._backoff.after_throttle(now, floor=floor)
        if backed_off is None:
            return
        instruments.RATE_BACKOFFS.inc()
        seen = self._unshared_backoff[0] if self._unshared_backoff else self._backoff
        self._unshared_backoff = (seen, backed_off)
        self._backoff = backed_off
        log.warning("SES throttled a send: backing off to %.4g emails/s", self.rate)

    async def settle(self) -> None:
        """Share what this worker learned since its last reservation: a back-off, lateness.

        Called often (the worker does, every record interval): lateness left unshared while
        this worker is idle would not shift the slots other workers take a second later. What
        a reservation will carry soon anyway is left to it: a busy worker reserves every
        `HORIZON_S`, and writing each small lateness at once cost a database round trip per
        few sends.
        """
        owed_for = self._schedule.now() - self._owed_since
        must_shift = self._shift_to > self._shifted and owed_for >= HORIZON_S
        if self._unshared_backoff is None and not must_shift:
            return
        async with self._lock:
            if self._unshared_backoff is not None:
                seen, to = self._unshared_backoff
                self._backoff = await self._schedule.back_off(seen=seen, to=to)
                self._unshared_backoff = None
            if must_shift and self._shift_to > self._shifted:
                await self._reserve(count=0)

    async def _next_slot_at(self) -> float:
        """When the next slot is due, reserving a block first if none is left."""
        # The lock only when the block at hand is used up: `settle` may be reserving too.
        at = None if self._lock.locked() else self._block.next_at(self._schedule.now())
        if at is not None:
            return at
        async with self._lock:
            while (at := self._block.next_at(self._schedule.now())) is None:
                lead = self._block.end - self._schedule.now()
                if lead > MAX_LEAD_S:
                    await self._sleep(lead - MAX_LEAD_S)
                await self._reserve(count=self._block_size())
            return at

    def _block_size(self) -> int:
        """About `HORIZON_S` of this worker's sending: the sends waiting now, or as many as it
        has been using. So an idle worker holds no slots the others need, a worker that cannot
        send at the whole rate takes no more than it sends, and a busy one reserves a few times
        a second, not per send.
        """
        used = self._block.used
        elapsed = self._schedule.now() - self._block.reserved_at
        in_use = math.ceil(used * HORIZON_S / elapsed) if elapsed > 0 else used
        most = max(1, math.ceil(self.rate * HORIZON_S))
        return max(1, min(most, max(len(self._line), in_use)))

    async def _reserve(self, *, count: int) -> None:
        interval = slot_interval(self.rate)
        asked_at = self._schedule.now()
        reservation = await self._schedule.reserve(
            now=asked_at + self._round_trip_s,
            count=count,
            interval=interval,
            shift_to=self._shift_to,
        )
        self._shifted = reservation.shifted
        self._round_trip_s += 0.2 * (self._schedule.now() - asked_at - self._round_trip_s)
        if self._unshared_backoff is None:
            self._backoff = reservation.backoff
        usable_for = LATE_ALLOWANCE_S + min(interval, STALE_SLOT_S - LATE_ALLOWANCE_S)
        if count:
            self._stats.slots_unused += self._block.count - self._block.used
            self._block = _Block(
                reservation.first_slot,
                interval,
                count,
                reservation.shifted,
                usable_for,
                reserved_at=self._schedule.now(),
            )
