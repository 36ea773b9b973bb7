"""Waiting for a condition."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any


async def wait_until(
    predicate: Callable[[], Any],
    *,
    within_s: float = 10.0,
    worker: asyncio.Task[None] | None = None,
) -> None:
    """Poll `predicate`; fail early (with its error) if the worker task stops meanwhile."""
    deadline = asyncio.get_running_loop().time() + within_s
    while not await predicate():
        if worker is not None and worker.done():
            worker.result()
            raise AssertionError("the worker stopped before the condition was met")
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)
