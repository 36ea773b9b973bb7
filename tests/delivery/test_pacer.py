"""The pacer in virtual time: several pacers (workers) sharing one schedule, late wake-ups,
throttles. The schedule here keeps its state in memory with the same arithmetic as the database
row; `test_schedule.py` checks that row on both databases, and the acceptance tests run the
whole of it in real worker processes."""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import math
import random
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from ses_sender.delivery.pacer import (
    BACKOFF_FACTOR,
    MIN_RATE,
    STORM_WITHIN_S,
    TRIM_FACTOR,
    WINDOW_S,
    Backoff,
    Pacer,
    Reservation,
    slot_interval,
)
from tests.support.pacing import max_in_any_window


class VirtualTime:
    """A clock and a sleep for many tasks: time jumps to the next wake-up once every task waits.

    `lateness()` is added to every wake-up, as a busy machine adds it.
    """

    def __init__(self, lateness: Callable[[], float] = lambda: 0.0) -> None:
        self.now = 0.0
        self._lateness = lateness
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        wake = self.now + max(0.0, seconds) + self._lateness()
        future = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (wake, next(self._order), future))
        await future

    async def run(self, *coroutines: Coroutine[Any, Any, None], until: float) -> None:
        """Run the coroutines until each has returned or virtual time reaches `until`."""
        tasks = [asyncio.create_task(coroutine) for coroutine in coroutines]
        try:
            while not all(task.done() for task in tasks):
                await _until_every_task_waits()
                if all(task.done() for task in tasks) or not self._sleepers:
                    break
                wake, _, future = heapq.heappop(self._sleepers)
                if wake > until:
                    break
                self.now = max(self.now, wake)
                future.set_result(None)
        finally:
            for task in tasks:
                task.cancel()
            results = await asyncio.gather(*tasks, return_exceptions=True)
        for result in results:
            if isinstance(result, Exception):
                raise result


MAX_YIELDS = 50  # a task that needs more to reach its next sleep is left to the next round


async def _until_every_task_waits() -> None:
    """Yield to the event loop until no task can run (each waits for a sleep, or on another
    task), at most `MAX_YIELDS` times: time may then jump to the next wake-up.

    Nothing can run once the loop's queue of ready callbacks is empty when this task resumes
    (this asyncio event loop keeps it in `_ready`); without one to look at, all the yields.
    Either way the tasks run exactly as far: a yield with nothing ready changes nothing.
    """
    ready = getattr(asyncio.get_running_loop(), "_ready", None)
    for _ in range(MAX_YIELDS):
        await asyncio.sleep(0)
        if ready is not None and not ready:
            return


class MemorySchedule:
    """The `rate_limits` row's arithmetic (repository.reserve_slots, set_backoff) in memory."""

    def __init__(self, time: VirtualTime, *, round_trip_s: float = 0.0) -> None:
        self._time = time
        self._round_trip_s = round_trip_s
        self.next_free_at = -math.inf
        self.shifted = 0.0
        self.backoff = Backoff()
        self.reservations = 0

    def now(self) -> float:
        return self._time.now

    async def reserve(
        self, *, now: float, count: int, interval: float, shift_to: float
    ) -> Reservation:
        await self._time.sleep(self._round_trip_s / 2)
        self.reservations += 1
        first = max(self.next_free_at + max(0.0, shift_to - self.shifted), now)
        self.shifted = max(self.shifted, shift_to)
        self.next_free_at = first + count * interval
        await self._time.sleep(self._round_trip_s / 2)
        return Reservation(first, self.shifted, self.backoff)

    async def back_off(self, *, seen: Backoff, to: Backoff) -> Backoff:
        if self.backoff.since == seen.since:
            self.backoff = to
        return self.backoff


def achieved_rate(times: list[float]) -> float:
    times = sorted(times)
    return (len(times) - 1) / (times[-1] - times[0])


def never_held_up() -> float:
    return 0.0


async def send(
    pacer: Pacer, time: VirtualTime, held_up: Callable[[], float] = never_held_up
) -> float:
    """One send as the worker makes it: its slot, then (after `held_up()` seconds, the event
    loop busy or no CPU free) its request written; when that was."""
    slot = await pacer.acquire()
    if (delay := held_up()) > 0:
        await time.sleep(delay)
    pacer.sent(slot)
    return time.now


async def send_forever(
    pacer: Pacer, time: VirtualTime, sent: list[float], held_up: Callable[[], float]
) -> None:
    while True:
        sent.append(await send(pacer, time, held_up))


async def settle_every(pacer: Pacer, time: VirtualTime, seconds: float) -> None:
    """What the worker's recorder does every record interval."""
    while True:
        await time.sleep(seconds)
        await pacer.settle()


def worker(
    rate: float,
    schedule: MemorySchedule,
    time: VirtualTime,
    sent: list[float],
    *,
    senders: int,
    held_up: Callable[[], float] = never_held_up,
) -> list[Coroutine[Any, Any, None]]:
    """One worker process: a pacer, `senders` concurrent sends, the recorder's settling."""
    pacer = Pacer(rate, schedule=schedule, sleep=time.sleep)
    return [send_forever(pacer, time, sent, held_up) for _ in range(senders)] + [
        settle_every(pacer, time, 0.1)
    ]


@pytest.mark.parametrize("rate", [0.5, 1.0, 14.0, 14.9, 100.0, 2_000.0])
async def test_slots_are_evenly_spaced_and_no_second_holds_more_than_the_rate(
    rate: float,
) -> None:
    time = VirtualTime()
    sent: list[float] = []

    await time.run(*worker(rate, MemorySchedule(time), time, sent, senders=1), until=8)

    gaps = [b - a for a, b in itertools.pairwise(sent)]
    assert min(gaps) == pytest.approx(slot_interval(rate))
    assert max(gaps) == pytest.approx(slot_interval(rate))
    assert max_in_any_window(sent) <= max(1, math.floor(rate))
    assert slot_interval(rate) <= WINDOW_S / math.floor(rate) if rate >= 1 else 1 / rate


@pytest.mark.parametrize("workers", [1, 2, 4])
@pytest.mark.parametrize("rate", [14.0, 100.0, 1_000.0])
async def test_workers_sharing_the_schedule_reach_the_rate_and_never_exceed_it(
    workers: int, rate: float
) -> None:
    time = VirtualTime()
    schedule = MemorySchedule(time)
    sent: list[float] = []

    await time.run(
        *itertools.chain.from_iterable(
            worker(rate, schedule, time, sent, senders=20) for _ in range(workers)
        ),
        until=10,
    )

    assert max_in_any_window(sent) <= rate
    assert achieved_rate(sent) >= 0.99 * rate


async def test_slots_are_reserved_in_blocks_not_one_by_one() -> None:
    time = VirtualTime()
    schedule = MemorySchedule(time)
    sent: list[float] = []

    await time.run(*worker(1_000, schedule, time, sent, senders=200), until=5)

    # 100 ms of sending per reservation: about ten a second, not a thousand.
    assert len(sent) >= 4_900
    assert schedule.reservations <= 5 * 12


def busy_machine(seed: int, *, spikes: float, worst_s: float) -> Callable[[], float]:
    """Lateness as a busy machine adds it: under a millisecond on every wake-up, and on a
    share `spikes` of them a stall of up to `worst_s`."""
    jitter = random.Random(seed)

    def lateness() -> float:
        stall = jitter.uniform(0, worst_s) if jitter.random() < spikes else 0.0
        return jitter.uniform(0, 0.001) + stall

    return lateness


async def run_late(workers: int, lateness: Callable[[], float]) -> list[float]:
    time = VirtualTime(lateness=lateness)
    schedule = MemorySchedule(time)
    sent: list[float] = []
    await time.run(
        *itertools.chain.from_iterable(
            worker(100, schedule, time, sent, senders=20) for _ in range(workers)
        ),
        until=10,
    )
    return sent


@pytest.mark.parametrize("workers", [1, 2, 4])
@pytest.mark.parametrize("worst_s", [0.005, 0.05])
async def test_stalls_are_paid_back_so_no_second_holds_more_than_the_rate(
    workers: int, worst_s: float
) -> None:
    sent = await run_late(workers, busy_machine(7, spikes=0.02, worst_s=worst_s))

    assert max_in_any_window(sent) <= 100
    # Paying a stall back costs only the stall: nearly all of the rate is still reached.
    assert achieved_rate(sent) >= 0.9 * 100


@pytest.mark.parametrize("workers", [1, 4])
async def test_sends_held_up_after_their_slot_are_paid_back_too(workers: int) -> None:
    """Woken on time, then held up before the request is written: the send reaches SES as
    late as if it had woken late, and is paid back the same way."""
    stall = busy_machine(5, spikes=0.05, worst_s=0.02)
    time = VirtualTime()
    schedule = MemorySchedule(time)
    sent: list[float] = []

    await time.run(
        *itertools.chain.from_iterable(
            worker(100, schedule, time, sent, senders=20, held_up=stall) for _ in range(workers)
        ),
        until=10,
    )

    assert max_in_any_window(sent) <= 100
    assert achieved_rate(sent) >= 0.9 * 100


@pytest.mark.parametrize("workers", [1, 4])
async def test_even_late_every_time_no_second_holds_more_than_the_rate(workers: int) -> None:
    sent = await run_late(workers, busy_machine(11, spikes=1.0, worst_s=0.04))

    assert max_in_any_window(sent) <= 100
    # Much slower, as it must be (most slots are taken too late to use), but still sending.
    assert achieved_rate(sent) >= 0.25 * 100


@pytest.mark.parametrize("round_trip_s", [0.005, 0.08])
async def test_a_slow_database_slows_nothing(round_trip_s: float) -> None:
    time = VirtualTime()
    schedule = MemorySchedule(time, round_trip_s=round_trip_s)
    sent: list[float] = []

    await time.run(
        *worker(100, schedule, time, sent, senders=20),
        *worker(100, schedule, time, sent, senders=20),
        until=10,
    )

    assert max_in_any_window(sent) <= 100
    assert achieved_rate(sent) >= 0.99 * 100


@pytest.mark.parametrize(
    ("lateness_s", "late", "given_up"),
    [(0.0, False, False), (0.005, True, False), (0.03, True, True)],
)
async def test_stats_tell_where_the_rate_went(
    lateness_s: float, late: bool, given_up: bool
) -> None:
    time = VirtualTime(lateness=lambda: lateness_s)
    pacer = Pacer(100, schedule=MemorySchedule(time), sleep=time.sleep)

    async def ten_sends() -> None:
        for _ in range(10):
            await send(pacer, time)

    async def five_senders_then_a_throttle() -> None:
        await asyncio.gather(*(ten_sends() for _ in range(5)))
        pacer.throttled()
        await pacer.settle()

    await time.run(five_senders_then_a_throttle(), until=10)

    stats = pacer.stats
    assert stats.sends == 50
    assert stats.throttled == 1
    assert (stats.late > 0) == late
    assert (stats.slots_given_up > 0) == given_up
    # Taking another slot passes over the ones that went stale meanwhile.
    assert (stats.slots_unused > 0) == given_up
    assert (stats.shifted_s > 0) == late
    # Of the sends that used their slot: one later than 12.5 ms takes another slot instead.
    assert stats.latest_s >= min(lateness_s, 0.01)


async def test_idle_time_buys_no_burst() -> None:
    time = VirtualTime()
    schedule = MemorySchedule(time)
    pacer = Pacer(10, schedule=schedule, sleep=time.sleep)
    sent: list[float] = []

    async def three_sends_an_idle_minute_and_three_more() -> None:
        for _ in range(3):
            sent.append(await send(pacer, time))
        await time.sleep(60)
        for _ in range(3):
            sent.append(await send(pacer, time))

    await time.run(three_sends_an_idle_minute_and_three_more(), until=100)

    after_idle = sent[3:]
    assert after_idle[0] >= 60
    assert [b - a for a, b in itertools.pairwise(after_idle)] == pytest.approx(
        [slot_interval(10)] * 2
    )


async def test_a_throttle_backs_off_every_worker_then_the_rate_recovers() -> None:
    time = VirtualTime()
    schedule = MemorySchedule(time)
    first = Pacer(100, schedule=schedule, sleep=time.sleep)
    second = Pacer(100, schedule=schedule, sleep=time.sleep)
    rates: dict[str, float] = {}

    async def throttled_twice_then_watched() -> None:
        await first.acquire()
        await second.acquire()
        await time.sleep(20)
        first.throttled()
        first.throttled()  # the same burst: backs off once
        rates["first, at once"] = first.rate
        await first.settle()
        await time.sleep(1.5)
        first.throttled()  # again, soon after: a storm
        rates["first, after the second throttle"] = first.rate
        await first.settle()
        await time.sleep(0.5)  # the second worker's next reservation brings the news
        await second.acquire()
        rates["second, 0.5 s later"] = second.rate
        await time.sleep(10)
        await second.acquire()
        rates["second, 10 s later"] = second.rate

    await time.run(throttled_twice_then_watched(), until=60)

    # A lone throttle trims the rate; one more within STORM_WITHIN_S halves it.
    assert rates["first, at once"] == pytest.approx(100 * TRIM_FACTOR)
    assert rates["first, after the second throttle"] == pytest.approx(100 * BACKOFF_FACTOR)
    # Recovering a tenth of the target a second: 50/s + 0.5 s x 10/s.
    assert rates["second, 0.5 s later"] == pytest.approx(55)
    assert rates["second, 10 s later"] == 100


async def test_throttles_without_end_never_stop_sending() -> None:
    time = VirtualTime()
    pacer = Pacer(100, schedule=MemorySchedule(time), sleep=time.sleep)

    async def throttled_every_second() -> None:
        for _ in range(30):
            pacer.throttled()
            await pacer.settle()
            await time.sleep(1.0)

    await time.run(throttled_every_second(), until=100)

    # Halved each second, recovering a tenth a second: it settles near a tenth of the target.
    assert MIN_RATE <= pacer.rate <= 25


def test_back_off_state_recovers_linearly_and_backs_off_once_a_second() -> None:
    state = Backoff(level=0.25, since=100.0)

    assert state.level_at(100.0) == 0.25
    assert state.level_at(102.0) == pytest.approx(0.45)
    assert state.level_at(200.0) == 1.0
    assert state.after_throttle(100.5, floor=0.01) is None
    halved = state.after_throttle(101.5, floor=0.01)  # within STORM_WITHIN_S of the last
    assert halved is not None
    assert halved.level == pytest.approx(0.2)
    assert halved.since == 101.5
    assert state.after_throttle(101.5, floor=0.5) == Backoff(0.5, 101.5)
    lone = state.after_throttle(100.0 + STORM_WITHIN_S, floor=0.01)  # not yet recovered
    assert lone is not None
    assert lone.level == pytest.approx(state.level_at(100.0 + STORM_WITHIN_S) * TRIM_FACTOR)
    recovered = state.after_throttle(110.0, floor=0.01)
    assert recovered is not None
    assert recovered.level == pytest.approx(TRIM_FACTOR)


def test_rate_must_be_positive() -> None:
    time = VirtualTime()
    with pytest.raises(ValueError, match="positive"):
        Pacer(0, schedule=MemorySchedule(time))


async def test_a_busy_loop_wakes_the_pacer_once_a_send_not_once_a_stale_slot() -> None:
    """200 sends waiting at a rate far above what they can send, each send holding the event
    loop for 0.3 ms as a real one does: a send that held a timer of its own for a slot woke
    past it behind the others, gave it up and waited for another, again and again."""
    time = VirtualTime()
    timers = 0

    async def counted_sleep(seconds: float) -> None:
        nonlocal timers
        timers += 1
        await time.sleep(seconds)

    pacer = Pacer(100_000, schedule=MemorySchedule(time), sleep=counted_sleep)
    sent: list[float] = []

    async def sending_on_a_busy_loop() -> None:
        while True:
            time.now += 0.0002  # composing, holding the loop
            slot = await pacer.acquire()
            time.now += 0.0001  # the request written
            pacer.sent(slot)
            sent.append(time.now)
            await time.sleep(0.005)  # the answer

    await time.run(*(sending_on_a_busy_loop() for _ in range(200)), until=2)

    assert len(sent) >= 5_000
    assert timers <= len(sent) / 10
    assert max_in_any_window(sent) <= 100_000


class FailingOnce(MemorySchedule):
    """A schedule whose next reservation fails, as a database that went away does."""

    fail_next = False

    async def reserve(
        self, *, now: float, count: int, interval: float, shift_to: float
    ) -> Reservation:
        if self.fail_next:
            self.fail_next = False
            raise ConnectionError("the database went away")
        return await super().reserve(now=now, count=count, interval=interval, shift_to=shift_to)


async def test_a_failed_reservation_reaches_the_first_send_in_line_and_no_other() -> None:
    time = VirtualTime()
    schedule = FailingOnce(time)
    schedule.fail_next = True
    pacer = Pacer(10, schedule=schedule, sleep=time.sleep)
    outcomes: list[str] = []

    async def one_send() -> None:
        try:
            await send(pacer, time)
        except ConnectionError:
            outcomes.append("failed")
        else:
            outcomes.append("sent")

    await time.run(*(one_send() for _ in range(3)), until=10)

    assert outcomes == ["failed", "sent", "sent"]


async def test_sends_cancelled_in_line_hold_up_no_one_and_leave_nothing_running() -> None:
    time = VirtualTime()
    pacer = Pacer(10, schedule=MemorySchedule(time), sleep=time.sleep)
    sent: list[float] = []

    async def cancel_the_middle_ones_then_all() -> None:
        sends = [asyncio.create_task(send(pacer, time)) for _ in range(6)]
        await time.sleep(0)  # all six in line
        for task in sends[1:4]:
            task.cancel()
        for task in sends:
            with contextlib.suppress(asyncio.CancelledError):
                sent.append(await task)
        waiting = [asyncio.create_task(pacer.acquire()) for _ in range(3)]
        await time.sleep(0)
        for waiter in waiting:
            waiter.cancel()
        await asyncio.gather(*waiting, return_exceptions=True)

    await time.run(cancel_the_middle_ones_then_all(), until=10)

    assert sent == pytest.approx([slot_interval(10) * n for n in range(3)], abs=1e-9)
    # No send is left waiting: nothing is left to hand slots out, or asleep for one.
    handing_out = [task for task in asyncio.all_tasks() if task.get_name() == "pacer"]
    if handing_out:
        done, _ = await asyncio.wait(handing_out, timeout=1)
        assert done == set(handing_out)
