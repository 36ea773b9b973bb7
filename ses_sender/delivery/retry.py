"""What to do with a send that failed: a pure decision, tested without a clock or a network."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from ses_sender.backoff import backoff_s
from ses_sender.transports.base import (
    AccountPausedError,
    PermanentError,
    SendError,
    ThrottledError,
)

BACKOFF_BASE_S = 2.0
BACKOFF_CAP_S = 15 * 60.0
THROTTLE_RETRY_S = 1.0
ACCOUNT_PAUSE_RETRY_S = 60.0


@dataclass(frozen=True, slots=True)
class RetryAt:
    due_at: datetime
    counts_as_attempt: bool  # a throttle or an account pause was not this email's fault


@dataclass(frozen=True, slots=True)
class GiveUp:
    reason: str


class RetryPolicy:
    def __init__(self, max_attempts: int, *, jitter: random.Random | None = None) -> None:
        self.max_attempts = max_attempts
        self._random = jitter or random.Random()

    def decide(self, error: SendError, *, attempts: int, now: datetime) -> RetryAt | GiveUp:
        """`attempts` counts this one."""
        if isinstance(error, PermanentError):
            return GiveUp(error.reason)
        if isinstance(error, ThrottledError):
            return RetryAt(now + timedelta(seconds=THROTTLE_RETRY_S), counts_as_attempt=False)
        if isinstance(error, AccountPausedError):
            return RetryAt(now + timedelta(seconds=ACCOUNT_PAUSE_RETRY_S), counts_as_attempt=False)
        if attempts >= self.max_attempts:
            return GiveUp(f"{error.reason} (after {attempts} attempts)")
        return RetryAt(now + timedelta(seconds=self.backoff_s(attempts)), counts_as_attempt=True)

    def backoff_s(self, attempts: int) -> float:
        return backoff_s(attempts, base_s=BACKOFF_BASE_S, cap_s=BACKOFF_CAP_S, rng=self._random)
