"""When to try a failed delivery again: a pure decision, tested without a clock or a network."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from ses_sender.backoff import backoff_s

RETRY_BASE_S = 10.0
RETRY_CAP_S = 60 * 60.0
GIVE_UP_AFTER = timedelta(days=1)


class WebhookRetryPolicy:
    """Exponential backoff with jitter (10 s doubling, at most an hour apart), for a day."""

    def __init__(self, *, jitter: random.Random | None = None) -> None:
        self._random = jitter or random.Random()

    def next_attempt(
        self, attempts: int, *, created_at: datetime, now: datetime
    ) -> datetime | None:
        """When to try again after `attempts` failed tries, or None: give up."""
        due_at = now + timedelta(seconds=self.backoff_s(attempts))
        return due_at if due_at <= created_at + GIVE_UP_AFTER else None

    def backoff_s(self, attempts: int) -> float:
        return backoff_s(attempts, base_s=RETRY_BASE_S, cap_s=RETRY_CAP_S, rng=self._random)
