"""How doctor judges what AWS reports: the account, the destinations, the subscription."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from ses_sender.aws_setup.checks import (
    Status,
    judge_account,
    judge_destinations,
    judge_subscription,
)
from ses_sender.aws_setup.plan import EVENT_TYPES, Destination, Subscription
from ses_sender.aws_setup.resources import Account

HEALTHY = Account(
    production_access=True,
    sending_enabled=True,
    enforcement_status="HEALTHY",
    max_send_rate=14.0,
    max_24_hour_send=50_000.0,
    sent_last_24_hours=1_234.0,
)
TOPIC_ARN = "arn:aws:sns:us-east-1:123456789012:marketing-ses-events"
ENDPOINT = "https://mail.example.com/v1/events/results"


def account(**changes: Any) -> Account:
    return dataclasses.replace(HEALTHY, **changes)


def test_a_healthy_account_is_ok() -> None:
    sandbox, sending, quota = judge_account(HEALTHY, email_rate=14.0)

    assert [sandbox.status, sending.status, quota.status] == [Status.OK] * 3
    assert quota.line() == "ok   quota: 14/s, 50,000 per 24 h, 1,234 sent in the last 24 h"


@pytest.mark.parametrize(
    ("changes", "email_rate", "expected"),
    [
        ({"production_access": False}, 14.0, ("sandbox", Status.WARN, "in the SES sandbox")),
        ({"sending_enabled": False}, 14.0, ("sending", Status.FAIL, "sending is paused")),
        ({"enforcement_status": "SHUTDOWN"}, 14.0, ("sending", Status.FAIL, "shut down")),
        ({"enforcement_status": "PROBATION"}, 14.0, ("sending", Status.WARN, "on probation")),
        ({"sent_last_24_hours": 50_000.0}, 14.0, ("quota", Status.FAIL, "used up")),
        ({"sent_last_24_hours": 45_000.0}, 14.0, ("quota", Status.WARN, "over 80%")),
        ({}, 20.0, ("quota", Status.WARN, "EMAIL_RATE 20/s is above the account's rate")),
    ],
)
def test_account_problems(
    changes: dict[str, Any], email_rate: float, expected: tuple[str, Status, str]
) -> None:
    name, status, words = expected
    checks = {
        check.name: check for check in judge_account(account(**changes), email_rate=email_rate)
    }

    assert checks[name].status is status
    assert words in checks[name].detail
    others = [check.status for check in checks.values() if check.name != name]
    assert others == [Status.OK, Status.OK]


def test_an_unlimited_daily_quota_is_never_used_up() -> None:
    [_, _, quota] = judge_account(
        account(max_24_hour_send=-1.0, sent_last_24_hours=10**9), email_rate=14.0
    )

    assert quota.status is Status.OK
    assert "unlimited per 24 h" in quota.detail


def test_the_sns_destination_with_the_most_types_is_judged() -> None:
    destinations = [
        Destination("firehose", True, EVENT_TYPES, None),
        Destination("old", True, frozenset({"BOUNCE"}), f"{TOPIC_ARN}-old"),
        Destination("ours", True, EVENT_TYPES - {"OPEN", "CLICK"}, TOPIC_ARN),
        Destination("off", False, EVENT_TYPES, f"{TOPIC_ARN}-off"),
    ]

    check, chosen = judge_destinations(destinations)

    assert chosen is destinations[2]
    assert check.status is Status.WARN
    assert check.detail.startswith(f"ours publishes to {TOPIC_ARN} but not CLICK, OPEN")


def test_no_enabled_sns_destination_fails() -> None:
    check, chosen = judge_destinations([Destination("off", False, EVENT_TYPES, TOPIC_ARN)])

    assert (check.status, chosen) == (Status.FAIL, None)


@pytest.mark.parametrize(
    ("subscription", "status", "words"),
    [
        (Subscription(ENDPOINT, f"{TOPIC_ARN}:1", False), Status.OK, "is confirmed"),
        (Subscription(ENDPOINT, None, False), Status.FAIL, "has not confirmed"),
        (Subscription(ENDPOINT, f"{TOPIC_ARN}:1", True), Status.FAIL, "raw message delivery"),
        (
            Subscription(ENDPOINT, f"{TOPIC_ARN}:1", False, retries_for_an_hour=False),
            Status.WARN,
            "SNS gives up on a failed delivery after 3 retries in a minute",
        ),
    ],
    ids=["confirmed", "pending", "raw", "default retries"],
)
def test_the_subscription(subscription: Subscription, status: Status, words: str) -> None:
    check = judge_subscription(subscription)

    assert check.status is status
    assert words in check.detail
