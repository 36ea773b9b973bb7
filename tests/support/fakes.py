"""In-memory stand-ins for what the service fetches over HTTPS: they record, never connect."""

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


class RecordingFetcher:
    """Stands in for `HttpsFetcher` (`get`, `close`): records GETs, never uses the network."""

    def __init__(self, body: bytes = b"<ConfirmSubscriptionResponse/>") -> None:
        self.body = body
        self.error: Exception | None = None
        self.calls: list[str] = []
        self.closed = False

    async def get(self, url: str) -> bytes:
        self.calls.append(url)
        if self.error is not None:
            raise self.error
        return self.body

    async def close(self) -> None:
        self.closed = True
