"""Even pacing that never puts more than `rate` sends in any one-second window."""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import Awaitable, Callable

# The window the rate is counted in, plus a little room for the jitter between our clock and
# the provider's: without it, two sends a hair under a second apart could meet in one window.
WINDOW_S = 1.0 + 0.002
CATCH_UP_S = 0.05


class Pacer:
    """Grants one send at a time, 1/rate apart, and never more than ⌊rate⌋ a second.

    Slots follow a schedule rather than the moment a grant is taken, so a late wake-up is caught
    up; the sliding window of the last ⌊rate⌋ grants is what stops a catch-up from bunching.
    Pure: time comes from the injected `monotonic` and waiting from the injected `sleep`.
    """

    def __init__(
        self,
        rate: float,
        *,
        monotonic: Callable[[], float],
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._monotonic = monotonic
        self._sleep = sleep
        self._lock = asyncio.Lock()
        self._next_slot = -math.inf
        self.set_rate(rate)

    @property
    def rate(self) -> float:
        return self._rate

    def set_rate(self, rate: float) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self._rate = rate
        self._interval = 1.0 / rate
        self._recent: deque[float] = deque(maxlen=max(1, math.floor(rate)))

    def delay(self, now: float) -> float:
        """How long a grant asked for at `now` would wait."""
        slot = max(self._next_slot, now)
        if len(self._recent) == self._recent.maxlen:
            slot = max(slot, self._recent[0] + WINDOW_S)
        return slot - now

    async def acquire(self) -> None:
        async with self._lock:
            wait = self.delay(self._monotonic())
            while wait > 0:
                await self._sleep(wait)
                wait = self.delay(self._monotonic())
            now = self._monotonic()
            # A grant a little late keeps the schedule (the next one catches up); after an idle
            # spell the schedule restarts from now, so idleness never buys a burst.
            on_schedule = now - self._next_slot < CATCH_UP_S
            self._next_slot = (self._next_slot if on_schedule else now) + self._interval
            self._recent.append(now)
