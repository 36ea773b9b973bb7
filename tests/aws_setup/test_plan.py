"""The plan: from what exists to what `setup-aws` wants, as few changes as it takes."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from ses_sender.aws_setup.plan import (
    DELIVERY_POLICY,
    DESTINATION_NAME,
    EVENT_TYPES,
    AllowSesPublish,
    CreateConfigurationSet,
    CreateTopic,
    Current,
    Desired,
    Destination,
    PutEventDestination,
    SetDeliveryPolicy,
    SetSignatureVersion,
    Subscribe,
    Subscription,
    Topic,
    TrustTopic,
    TurnOffRawDelivery,
    plan_changes,
    retries_for_an_hour,
)

DESIRED = Desired("marketing", "https://mail.example.com/v1/events/results")
TOPIC_ARN = "arn:aws:sns:us-east-1:123456789012:marketing-ses-events"
SUBSCRIPTION_ARN = f"{TOPIC_ARN}:0a04e200"
READY = Current(
    configuration_set_exists=True,
    destination=Destination(DESTINATION_NAME, True, EVENT_TYPES, TOPIC_ARN),
    topic=Topic(TOPIC_ARN, "2", ses_may_publish=True),
    subscription=Subscription(DESIRED.endpoint, SUBSCRIPTION_ARN, raw_message_delivery=False),
    topic_trusted=True,
)


def with_(**changes: Any) -> Current:
    return dataclasses.replace(READY, **changes)


def test_nothing_exists_so_everything_is_created_in_order() -> None:
    nothing = Current(False, None, None, None)

    assert plan_changes(DESIRED, nothing) == [
        CreateConfigurationSet("marketing"),
        CreateTopic("marketing-ses-events"),
        # None: the topic the plan creates, whose ARN is known only then.
        AllowSesPublish(None, "marketing-ses-events", "marketing"),
        PutEventDestination("marketing", None, "marketing-ses-events", exists=False),
        # Before the subscription: SNS posts its confirmation at once, and only a trusted
        # topic's confirmation is confirmed.
        TrustTopic(None, "marketing-ses-events"),
        Subscribe(None, "marketing-ses-events", DESIRED.endpoint),
    ]


def test_everything_in_place_means_no_changes() -> None:
    assert plan_changes(DESIRED, READY) == []


def test_a_pending_subscription_is_left_to_be_confirmed() -> None:
    pending = Subscription(DESIRED.endpoint, None, raw_message_delivery=False)

    assert plan_changes(DESIRED, with_(subscription=pending)) == []


@pytest.mark.parametrize(
    "destination",
    [
        Destination(DESTINATION_NAME, False, EVENT_TYPES, TOPIC_ARN),
        Destination(DESTINATION_NAME, True, EVENT_TYPES - {"OPEN"}, TOPIC_ARN),
        Destination(DESTINATION_NAME, True, EVENT_TYPES, f"{TOPIC_ARN}-old"),
        Destination(DESTINATION_NAME, True, EVENT_TYPES, None),
    ],
    ids=["disabled", "missing a type", "another topic", "not SNS"],
)
def test_our_destination_is_updated_when_it_differs(destination: Destination) -> None:
    assert plan_changes(DESIRED, with_(destination=destination)) == [
        PutEventDestination("marketing", TOPIC_ARN, "marketing-ses-events", exists=True)
    ]


def test_a_sha1_topic_is_switched_to_sha256() -> None:
    assert plan_changes(DESIRED, with_(topic=Topic(TOPIC_ARN, "1", ses_may_publish=True))) == [
        SetSignatureVersion(TOPIC_ARN, "1")
    ]


def test_a_topic_ses_may_not_publish_to_gets_a_policy_statement() -> None:
    current = with_(topic=Topic(TOPIC_ARN, "2", ses_may_publish=False))

    assert plan_changes(DESIRED, current) == [
        AllowSesPublish(TOPIC_ARN, "marketing-ses-events", "marketing")
    ]


def test_raw_delivery_is_turned_off() -> None:
    raw = Subscription(DESIRED.endpoint, SUBSCRIPTION_ARN, raw_message_delivery=True)

    assert plan_changes(DESIRED, with_(subscription=raw)) == [TurnOffRawDelivery(SUBSCRIPTION_ARN)]


def test_a_subscription_sns_gives_up_on_after_a_minute_gets_an_hour_of_retries() -> None:
    default = Subscription(
        DESIRED.endpoint, SUBSCRIPTION_ARN, raw_message_delivery=True, retries_for_an_hour=False
    )

    assert plan_changes(DESIRED, with_(subscription=default)) == [
        TurnOffRawDelivery(SUBSCRIPTION_ARN),
        SetDeliveryPolicy(SUBSCRIPTION_ARN),
    ]
    assert SetDeliveryPolicy(SUBSCRIPTION_ARN).describe() == (
        f"let SNS retry failed deliveries on {SUBSCRIPTION_ARN} every 35 s for an hour, not 3 "
        "times in a minute"
    )


@pytest.mark.parametrize(
    ("attribute", "expected"),
    [
        (DELIVERY_POLICY, True),
        (
            '{"healthyRetryPolicy": {"minDelayTarget": 35, "maxDelayTarget": 35, '
            '"numRetries": 100, "numNoDelayRetries": 0, "numMinDelayRetries": 0, '
            '"numMaxDelayRetries": 0, "backoffFunction": "linear"}, '
            '"throttlePolicy": {"maxReceivesPerSecond": 50}}',
            True,
        ),
        (None, False),
        ("", False),
        ("not json", False),
        ("[]", False),
        ('{"healthyRetryPolicy": {"numRetries": 3}}', False),
        (DELIVERY_POLICY.replace('"numRetries": 100', '"numRetries": 99'), False),
    ],
)
def test_the_retry_policy_is_recognised(attribute: str | None, expected: bool) -> None:
    assert retries_for_an_hour(attribute) is expected


def test_the_retry_policy_stays_within_what_sns_allows() -> None:
    retry = json.loads(DELIVERY_POLICY)["healthyRetryPolicy"]

    assert retry["numRetries"] <= 100
    assert 1 <= retry["minDelayTarget"] <= retry["maxDelayTarget"] <= 3_600
    # Every retry in the backoff phase waits maxDelayTarget at most: the hour SNS allows at most.
    assert retry["numRetries"] * retry["maxDelayTarget"] <= 3_600


def test_a_missing_topic_takes_the_destination_and_subscription_with_it() -> None:
    # The destination pointed at a topic that was deleted; there is no subscription without it.
    current = with_(topic=None, subscription=None)

    assert plan_changes(DESIRED, current) == [
        CreateTopic("marketing-ses-events"),
        AllowSesPublish(None, "marketing-ses-events", "marketing"),
        PutEventDestination("marketing", None, "marketing-ses-events", exists=True),
        TrustTopic(None, "marketing-ses-events"),
        Subscribe(None, "marketing-ses-events", DESIRED.endpoint),
    ]


def test_a_topic_this_service_does_not_trust_yet_is_recorded() -> None:
    assert plan_changes(DESIRED, with_(topic_trusted=False)) == [
        TrustTopic(TOPIC_ARN, "marketing-ses-events")
    ]


def test_every_change_says_what_it_does() -> None:
    nothing = Current(False, None, None, None)

    described = [change.describe() for change in plan_changes(DESIRED, nothing)]

    assert described[3] == (
        f"add the event destination {DESTINATION_NAME} of marketing: all 10 event types to the "
        "topic marketing-ses-events"
    )
