from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from ses_sender.delivery.retry import BACKOFF_CAP_S, GiveUp, RetryAt, RetryPolicy
from ses_sender.transports.base import (
    AccountPausedError,
    PermanentError,
    ThrottledError,
    TransientError,
)

NOW = datetime(2026, 1, 5, tzinfo=UTC)


def policy(max_attempts: int = 5) -> RetryPolicy:
    return RetryPolicy(max_attempts, jitter=random.Random(7))


def test_permanent_errors_fail_at_once() -> None:
    decision = policy().decide(PermanentError("MessageRejected: bad"), attempts=1, now=NOW)

    assert decision == GiveUp("MessageRejected: bad")


def test_throttles_requeue_without_using_an_attempt() -> None:
    decision = policy(max_attempts=1).decide(ThrottledError("slow down"), attempts=9, now=NOW)

    assert isinstance(decision, RetryAt)
    assert not decision.counts_as_attempt
    assert NOW < decision.due_at <= NOW + timedelta(seconds=5)


def test_account_pauses_requeue_without_using_an_attempt() -> None:
    decision = policy().decide(AccountPausedError("paused"), attempts=9, now=NOW)

    assert isinstance(decision, RetryAt)
    assert not decision.counts_as_attempt


def test_transient_errors_back_off_exponentially_with_jitter() -> None:
    retry = policy(max_attempts=20)
    delays = []
    for attempts in range(1, 8):
        decision = retry.decide(TransientError("503"), attempts=attempts, now=NOW)
        assert isinstance(decision, RetryAt)
        assert decision.counts_as_attempt
        delays.append((decision.due_at - NOW).total_seconds())

    for attempts, delay in enumerate(delays, start=1):
        ceiling = min(BACKOFF_CAP_S, 2.0 * 2 ** (attempts - 1))
        assert ceiling / 2 <= delay <= ceiling
    assert delays[-1] > delays[0] * 10


def test_backoff_is_capped() -> None:
    assert policy().backoff_s(60) <= BACKOFF_CAP_S


@pytest.mark.parametrize("max_attempts", [1, 3])
def test_transient_errors_give_up_after_the_last_attempt(max_attempts: int) -> None:
    decision = policy(max_attempts).decide(
        TransientError("timed out"), attempts=max_attempts, now=NOW
    )

    assert decision == GiveUp(f"timed out (after {max_attempts} attempts)")
