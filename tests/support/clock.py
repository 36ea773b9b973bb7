"""Clocks that move only when a test says so."""

from __future__ import annotations

from datetime import datetime, timedelta


class FakeClock:
    """Wall and monotonic time that only move when a test says so."""

    def __init__(self, start: datetime) -> None:
        self._now = start
        self._monotonic = 1_000.0

    def now(self) -> datetime:
        return self._now

    def monotonic(self) -> float:
        return self._monotonic

    def advance(self, seconds: float) -> None:
        self._now += timedelta(seconds=seconds)
        self._monotonic += seconds


class ManualClock:
    """A monotonic clock (seconds) that moves only when told to."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
