"""The topic policy statement that lets SES publish a configuration set's events."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ses_sender.aws_setup.topic_policy import (
    configuration_set_arn,
    ses_may_publish,
    ses_statement,
    with_ses_statement,
)

TOPIC_ARN = "arn:aws:sns:us-east-1:123456789012:marketing-ses-events"
SOURCE_ARN = "arn:aws:ses:us-east-1:123456789012:configuration-set/marketing"
DEFAULT_STATEMENT = {
    "Sid": "__default_statement_ID",
    "Effect": "Allow",
    "Principal": {"AWS": "*"},
    "Action": ["SNS:GetTopicAttributes", "SNS:Subscribe", "SNS:Publish"],
    "Resource": TOPIC_ARN,
    "Condition": {"StringEquals": {"AWS:SourceOwner": "123456789012"}},
}


def policy(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2008-10-17", "Statement": list(statements)})


def test_the_configuration_set_arn_follows_the_topic() -> None:
    assert configuration_set_arn(TOPIC_ARN, "marketing") == SOURCE_ARN
    china = "arn:aws-cn:sns:cn-north-1:123456789012:t"
    assert configuration_set_arn(china, "m") == (
        "arn:aws-cn:ses:cn-north-1:123456789012:configuration-set/m"
    )


@pytest.mark.parametrize(
    ("document", "allowed"),
    [
        (None, False),
        ("not json", False),
        (policy(DEFAULT_STATEMENT), False),
        (policy(DEFAULT_STATEMENT, ses_statement(TOPIC_ARN, "marketing")), True),
        (policy(ses_statement(TOPIC_ARN, "another")), False),
        (
            policy(
                {
                    "Effect": "Allow",
                    "Principal": {"Service": ["sns.amazonaws.com", "ses.amazonaws.com"]},
                    "Action": ["sns:publish"],
                    "Resource": "*",
                    "Condition": {"ArnEquals": {"aws:sourcearn": [SOURCE_ARN]}},
                }
            ),
            True,
        ),
        (
            policy(
                {"Effect": "Allow", "Principal": {"Service": "ses.amazonaws.com"}, "Action": "*"}
            ),
            True,
        ),
        (
            policy(
                {
                    "Effect": "Deny",
                    "Principal": {"Service": "ses.amazonaws.com"},
                    "Action": "SNS:Publish",
                }
            ),
            False,
        ),
        (
            json.dumps(
                {
                    "Statement": {
                        "Effect": "Allow",
                        "Principal": {"Service": "ses.amazonaws.com"},
                        "Action": "SNS:Publish",
                    }
                }
            ),
            True,
        ),
    ],
    ids=[
        "none",
        "not json",
        "default only",
        "ours",
        "another configuration set",
        "lists and other spellings",
        "any action, no condition",
        "deny",
        "single statement object",
    ],
)
def test_ses_may_publish(document: str | None, allowed: bool) -> None:
    assert ses_may_publish(document, TOPIC_ARN, "marketing") is allowed


def test_our_statement_is_added_once_and_the_rest_kept() -> None:
    first = with_ses_statement(policy(DEFAULT_STATEMENT), TOPIC_ARN, "marketing")
    again = with_ses_statement(first, TOPIC_ARN, "marketing")

    statements = json.loads(again)["Statement"]
    assert statements == [DEFAULT_STATEMENT, ses_statement(TOPIC_ARN, "marketing")]
    assert ses_may_publish(again, TOPIC_ARN, "marketing")


def test_a_topic_without_a_policy_gets_one() -> None:
    document = json.loads(with_ses_statement(None, TOPIC_ARN, "marketing"))

    assert document["Statement"] == [ses_statement(TOPIC_ARN, "marketing")]
