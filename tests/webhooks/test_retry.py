from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from ses_sender.webhooks.retry import GIVE_UP_AFTER, WebhookRetryPolicy

CREATED = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("attempts", "ceiling"),
    [(1, 10.0), (2, 20.0), (3, 40.0), (9, 2_560.0), (10, 3_600.0), (500, 3_600.0)],
)
def test_backoff_doubles_up_to_an_hour_with_jitter(attempts: int, ceiling: float) -> None:
    policy = WebhookRetryPolicy(jitter=random.Random(1))
    delays = [policy.backoff_s(attempts) for _ in range(200)]
    assert all(ceiling / 2 <= delay <= ceiling for delay in delays)
    assert len(set(delays)) > 100  # spread out, not one instant for every receiver


def test_retries_while_the_next_try_is_within_a_day_of_the_first() -> None:
    policy = WebhookRetryPolicy(jitter=random.Random(2))
    early = policy.next_attempt(3, created_at=CREATED, now=CREATED + timedelta(minutes=2))
    assert early is not None
    assert timedelta(minutes=2, seconds=20) <= early - CREATED <= timedelta(minutes=2, seconds=40)

    late = CREATED + GIVE_UP_AFTER - timedelta(seconds=1)
    assert policy.next_attempt(30, created_at=CREATED, now=late) is None


def test_a_day_of_retries_is_about_forty_tries() -> None:
    policy = WebhookRetryPolicy(jitter=random.Random(3))
    now, attempts = CREATED, 1
    while (due := policy.next_attempt(attempts, created_at=CREATED, now=now)) is not None:
        now, attempts = due, attempts + 1
    assert CREATED + GIVE_UP_AFTER - timedelta(hours=1) <= now <= CREATED + GIVE_UP_AFTER
    assert 30 <= attempts <= 50
