"""Tells a worker in the same process that new email was committed, so it looks at once rather
than at its next poll (workers in other processes poll: within a second)."""

from __future__ import annotations

import asyncio


class Wakeup:
    def __init__(self) -> None:
        self.event = asyncio.Event()

    def notify(self) -> None:
        self.event.set()
