"""How many sends a worker keeps in flight: enough to reach the rate at SES's latency, no more.

A slot is held from a send's dispatch until its outcome is written, so in flight means: waiting
for the pacer (up to one reservation ahead), on the wire, and waiting to be recorded. What a
`kill -9` can leave sent but unrecorded, and so send twice, is at most the limit in force.
"""

from __future__ import annotations

import asyncio
import math

from ses_sender.delivery.pacer import HORIZON_S

# Time a slot is held besides the request itself: the pacer's lead plus the record interval
# (see worker.py), with room for scheduling delays.
HELD_BESIDES_SEND_S = HORIZON_S + 0.1 + 0.05
LATENCY_WEIGHT = 0.05  # of each new send in the moving average: smooths over a few hundred sends
MIN_IN_FLIGHT = 4


def in_flight_for(rate: float, latency_s: float, *, maximum: int) -> int:
    """In flight to sustain `rate` when a send takes `latency_s`: twice the latency, so a slow
    spell does not starve the pacer, within [MIN_IN_FLIGHT, maximum]."""
    wanted = math.ceil(rate * (2 * latency_s + HELD_BESIDES_SEND_S))
    return max(min(MIN_IN_FLIGHT, maximum), min(maximum, wanted))


class Latency:
    """Exponential moving average of how long sends take."""

    def __init__(self, initial_s: float) -> None:
        self.mean_s = initial_s

    def observe(self, seconds: float) -> None:
        self.mean_s += LATENCY_WEIGHT * (seconds - self.mean_s)


class InFlightLimit:
    """A semaphore whose size can change while it is held.

    Shrinking never takes back what is held: new acquisitions wait until the count is under
    the new limit. One task acquires (the worker's dispatch loop); any task releases.
    """

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._held = 0
        self._freed = asyncio.Event()

    @property
    def limit(self) -> int:
        return self._limit

    @property
    def held(self) -> int:
        return self._held

    def locked(self) -> bool:
        return self._held >= self._limit

    def resize(self, limit: int) -> None:
        self._limit = limit
        self._freed.set()

    async def acquire(self) -> None:
        while self.locked():
            self._freed.clear()
            await self._freed.wait()
        self._held += 1

    def release(self, count: int = 1) -> None:
        self._held -= count
        self._freed.set()
