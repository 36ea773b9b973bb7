"""The SNS topics whose messages count: those `setup-aws` recorded and those in SNS_TOPIC_ARNS.

Amazon signs every customer's SNS messages with the same certificates, so a signature proves
only that a message came through SNS. Anyone can subscribe their own topic to our endpoint and
publish made-up SES events through it; the topic is what says a message is ours. With no topic
trusted, every message is refused.

The check runs before any certificate fetch or SubscribeURL GET, so a message from another topic
costs no outbound request. An unknown topic reads the recorded ones again, so a topic `setup-aws`
records while the service runs is trusted at its subscription confirmation, with no restart;
those reads are at least `READ_INTERVAL_S` apart, whatever arrives, and between them the last
read stands.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Iterable

READ_INTERVAL_S = 0.1

LoadRecorded = Callable[[], Awaitable[frozenset[str]]]


class TopicsUnavailable(Exception):
    """The recorded topics could not be read (the database did not answer): transient."""


class TrustedTopics:
    def __init__(
        self,
        configured: Iterable[str],
        load_recorded: LoadRecorded,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._configured = frozenset(configured)
        self._load_recorded = load_recorded
        self._monotonic = monotonic
        self._recorded: frozenset[str] = frozenset()
        self._read_at = -math.inf
        self._lock = asyncio.Lock()

    @property
    def configured(self) -> frozenset[str]:
        return self._configured

    async def recorded(self) -> frozenset[str]:
        """What `setup-aws` has recorded, read afresh; raises `TopicsUnavailable`."""
        async with self._lock:
            await self._read()
        return self._recorded

    async def trusts(self, topic_arn: str) -> bool:
        """Whether messages from `topic_arn` count; raises `TopicsUnavailable`."""
        if topic_arn in self._configured or topic_arn in self._recorded:
            return True
        async with self._lock:
            if self._monotonic() - self._read_at >= READ_INTERVAL_S:
                await self._read()
        return topic_arn in self._recorded

    async def _read(self) -> None:
        self._read_at = self._monotonic()
        try:
            self._recorded = await self._load_recorded()
        except Exception as error:
            raise TopicsUnavailable(f"the trusted topics could not be read: {error!r}") from error
