"""In-memory stand-ins for the network and the clocks."""

from __future__ import annotations

import asyncio


class FakeFetch:
    """An async `fetch(url) -> bytes` that records every call and never touches the network."""

    def __init__(self, body: bytes = b"", *, delay: float = 0.0) -> None:
        self.body = body
        self.delay = delay
        self.error: Exception | None = None
        self.calls: list[str] = []

    async def __call__(self, url: str) -> bytes:
        self.calls.append(url)
        await asyncio.sleep(self.delay)
        if self.error is not None:
            raise self.error
        return self.body


class ManualClock:
    """A monotonic clock (seconds) that moves only when told to."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
