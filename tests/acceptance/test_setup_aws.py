"""`ses-sender setup-aws` as a user runs it, against moto (plus what moto lacks)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from ses_sender.aws_setup.plan import DELIVERY_POLICY
from tests.support.aws_setup import CONFIG_SET, ENDPOINT, TOPIC_NAME, Cli
from tests.support.moto_complement import EVENT_TYPES
from tests.support.ports import free_port

DESTINATION = "ses-sender-sns"


def aws_state(sesv2: Any, sns: Any) -> dict[str, Any]:
    """Everything setup-aws may create or change, as AWS reports it."""
    sets = sesv2.list_configuration_sets()["ConfigurationSets"]
    destinations = {
        name: sesv2.get_configuration_set_event_destinations(ConfigurationSetName=name)[
            "EventDestinations"
        ]
        for name in sets
    }
    topics = {}
    for entry in sns.list_topics()["Topics"]:
        arn = entry["TopicArn"]
        attributes = sns.get_topic_attributes(TopicArn=arn)["Attributes"]
        subscriptions = []
        for subscription in sns.list_subscriptions_by_topic(TopicArn=arn)["Subscriptions"]:
            details = sns.get_subscription_attributes(
                SubscriptionArn=subscription["SubscriptionArn"]
            )["Attributes"]
            subscriptions.append(
                {
                    "arn": subscription["SubscriptionArn"],
                    "protocol": subscription["Protocol"],
                    "endpoint": subscription["Endpoint"],
                    "raw": details["RawMessageDelivery"],
                    "delivery_policy": details.get("DeliveryPolicy"),
                }
            )
        topics[arn] = {
            "signature_version": attributes.get("SignatureVersion"),
            "policy": json.loads(attributes["Policy"]),
            "subscriptions": subscriptions,
        }
    return {"configuration_sets": sets, "destinations": destinations, "topics": topics}


def trusted_topics(database: Path) -> list[str]:
    with sqlite3.connect(database) as connection:
        return [arn for (arn,) in connection.execute("SELECT arn FROM sns_topics ORDER BY arn")]


@pytest.fixture
def database(cli_env: dict[str, str]) -> Path:
    """The SQLite file setup-aws records the topic in (created by its first real run)."""
    return Path(cli_env["DATABASE_URL"].removeprefix("sqlite:///"))


def plan_lines(stdout: str) -> list[str]:
    return [line.strip() for line in stdout.splitlines() if line.startswith("  + ")]


def test_setup_aws_wires_everything_then_finds_nothing_to_do(
    cli: Cli, sesv2: Any, sns: Any, database: Path
) -> None:
    first = cli("setup-aws", "--endpoint", ENDPOINT)

    assert first.returncode == 0, first.stderr
    assert plan_lines(first.stdout) == [
        f"+ create the configuration set {CONFIG_SET}",
        f"+ create the SNS topic {TOPIC_NAME} (SignatureVersion 2)",
        f"+ let SES publish the events of {CONFIG_SET} to the topic {TOPIC_NAME} (a statement in "
        "the topic's policy)",
        f"+ add the event destination {DESTINATION} of {CONFIG_SET}: all 10 event types to the "
        f"topic {TOPIC_NAME}",
        f"+ trust the topic {TOPIC_NAME}: record it in this service's database",
        f"+ subscribe {ENDPOINT} to the topic {TOPIC_NAME} (raw message delivery off, failed "
        "deliveries retried for an hour)",
    ]
    assert "Applied 6 changes." in first.stdout
    state = aws_state(sesv2, sns)
    assert state["configuration_sets"] == [CONFIG_SET]
    [topic_arn] = state["topics"]
    assert topic_arn.endswith(f":{TOPIC_NAME}")
    assert f"Topic: {topic_arn} (trusted: the service takes its messages)" in first.stdout
    assert trusted_topics(database) == [topic_arn]
    [destination] = state["destinations"][CONFIG_SET]
    assert destination["Name"] == DESTINATION
    assert destination["Enabled"] is True
    assert set(destination["MatchingEventTypes"]) == EVENT_TYPES
    assert destination["SnsDestination"] == {"TopicArn": topic_arn}
    topic = state["topics"][topic_arn]
    assert topic["signature_version"] == "2"
    default, ses = topic["policy"]["Statement"]
    assert default["Sid"] == "__default_statement_ID"
    assert ses == {
        "Sid": "AllowSesPublish",
        "Effect": "Allow",
        "Principal": {"Service": "ses.amazonaws.com"},
        "Action": "SNS:Publish",
        "Resource": topic_arn,
        "Condition": {
            "StringEquals": {
                "AWS:SourceAccount": "123456789012",
                "AWS:SourceArn": (
                    f"arn:aws:ses:us-east-1:123456789012:configuration-set/{CONFIG_SET}"
                ),
            }
        },
    }
    [subscription] = topic["subscriptions"]
    assert (subscription["protocol"], subscription["endpoint"], subscription["raw"]) == (
        "https",
        ENDPOINT,
        "false",
    )
    assert json.loads(subscription["delivery_policy"]) == json.loads(DELIVERY_POLICY)

    second = cli("setup-aws", "--endpoint", ENDPOINT)

    assert second.returncode == 0, second.stderr
    assert "Plan: no changes, everything is in place." in second.stdout
    assert plan_lines(second.stdout) == []
    assert aws_state(sesv2, sns) == state


def test_the_endpoint_defaults_to_server_host(cli: Cli, sns: Any) -> None:
    result = cli("setup-aws")

    assert result.returncode == 0, result.stderr
    [topic] = sns.list_topics()["Topics"]
    [subscription] = sns.list_subscriptions_by_topic(TopicArn=topic["TopicArn"])["Subscriptions"]
    assert subscription["Endpoint"] == ENDPOINT


def test_a_dry_run_prints_the_plan_and_changes_nothing(
    cli: Cli, sesv2: Any, sns: Any, database: Path
) -> None:
    before = aws_state(sesv2, sns)

    result = cli("setup-aws", "--endpoint", ENDPOINT, "--dry-run")

    assert result.returncode == 0, result.stderr
    assert len(plan_lines(result.stdout)) == 6
    assert "Dry run: nothing was changed." in result.stdout
    assert not database.exists()  # not even created
    assert (
        aws_state(sesv2, sns)
        == before
        == {
            "configuration_sets": [],
            "destinations": {},
            "topics": {},
        }
    )


def test_setup_aws_repairs_what_drifted_and_leaves_the_rest_alone(
    cli: Cli, sesv2: Any, sns: Any
) -> None:
    # Set up by hand, half right: the topic signs with SHA1 and does not let SES publish, our
    # destination misses most types, the subscription delivers raw (unsigned) messages.
    sesv2.create_configuration_set(ConfigurationSetName=CONFIG_SET)
    topic_arn = sns.create_topic(Name=TOPIC_NAME)["TopicArn"]
    sesv2.create_configuration_set_event_destination(
        ConfigurationSetName=CONFIG_SET,
        EventDestinationName=DESTINATION,
        EventDestination={
            "Enabled": True,
            "MatchingEventTypes": ["BOUNCE", "COMPLAINT"],
            "SnsDestination": {"TopicArn": topic_arn},
        },
    )
    sesv2.create_configuration_set_event_destination(
        ConfigurationSetName=CONFIG_SET,
        EventDestinationName="someone-elses",
        EventDestination={
            "Enabled": True,
            "MatchingEventTypes": ["SEND"],
            "SnsDestination": {"TopicArn": "arn:aws:sns:us-east-1:123456789012:other"},
        },
    )
    ours = sns.subscribe(
        TopicArn=topic_arn,
        Protocol="https",
        Endpoint=ENDPOINT,
        Attributes={"RawMessageDelivery": "true"},
        ReturnSubscriptionArn=True,
    )["SubscriptionArn"]
    sns.subscribe(TopicArn=topic_arn, Protocol="https", Endpoint="https://elsewhere.example/sns")

    result = cli("setup-aws", "--endpoint", ENDPOINT)

    assert result.returncode == 0, result.stderr
    assert plan_lines(result.stdout) == [
        f"+ set SignatureVersion 2 on {topic_arn} (was 1): notifications signed with SHA256",
        f"+ let SES publish the events of {CONFIG_SET} to the topic {TOPIC_NAME} (a statement in "
        "the topic's policy)",
        f"+ update the event destination {DESTINATION} of {CONFIG_SET}: all 10 event types to "
        f"the topic {TOPIC_NAME}",
        f"+ trust the topic {TOPIC_NAME}: record it in this service's database",
        f"+ turn raw message delivery off on {ours}: raw messages are unsigned and the service "
        "refuses them",
        f"+ let SNS retry failed deliveries on {ours} every 35 s for an hour, not 3 times in a "
        "minute",
    ]
    state = aws_state(sesv2, sns)
    destinations = {d["Name"]: d for d in state["destinations"][CONFIG_SET]}
    assert set(destinations[DESTINATION]["MatchingEventTypes"]) == EVENT_TYPES
    assert destinations["someone-elses"]["MatchingEventTypes"] == ["SEND"]
    topic = state["topics"][topic_arn]
    assert topic["signature_version"] == "2"
    assert [s["Sid"] for s in topic["policy"]["Statement"]] == [
        "__default_statement_ID",
        "AllowSesPublish",
    ]
    by_endpoint = {s["endpoint"]: s for s in topic["subscriptions"]}
    assert by_endpoint[ENDPOINT]["raw"] == "false"
    assert (
        json.loads(by_endpoint[ENDPOINT]["delivery_policy"])["healthyRetryPolicy"]["numRetries"]
        == 100
    )
    assert by_endpoint["https://elsewhere.example/sns"]["delivery_policy"] is None
    assert set(by_endpoint) == {ENDPOINT, "https://elsewhere.example/sns"}

    again = cli("setup-aws", "--endpoint", ENDPOINT)
    assert "Plan: no changes" in again.stdout


def test_a_disabled_destination_is_enabled_again(cli: Cli, sesv2: Any, sns: Any) -> None:
    assert cli("setup-aws").returncode == 0
    [topic] = sns.list_topics()["Topics"]
    sesv2.update_configuration_set_event_destination(
        ConfigurationSetName=CONFIG_SET,
        EventDestinationName=DESTINATION,
        EventDestination={
            "Enabled": False,
            "MatchingEventTypes": sorted(EVENT_TYPES),
            "SnsDestination": {"TopicArn": topic["TopicArn"]},
        },
    )

    result = cli("setup-aws")

    assert len(plan_lines(result.stdout)) == 1
    assert "update the event destination" in result.stdout
    [destination] = sesv2.get_configuration_set_event_destinations(ConfigurationSetName=CONFIG_SET)[
        "EventDestinations"
    ]
    assert destination["Enabled"] is True


def test_a_topic_forgotten_by_the_database_is_trusted_again(
    cli: Cli, database: Path, tmp_path: Path
) -> None:
    assert cli("setup-aws").returncode == 0
    [topic_arn] = trusted_topics(database)
    other = tmp_path / "other.db"  # say, the service moved to a new database

    result = cli("setup-aws", DATABASE_URL=f"sqlite:///{other}")

    assert plan_lines(result.stdout) == [
        f"+ trust the topic {TOPIC_NAME}: record it in this service's database"
    ]
    assert trusted_topics(other) == [topic_arn]


def test_an_unreachable_database_is_one_line_and_exit_1(cli: Cli, sns: Any) -> None:
    result = cli("setup-aws", DATABASE_URL="postgresql://postgres@127.0.0.1:1/nothing")

    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("ses-sender: setup-aws: the database is unreachable: ")
    assert sns.list_topics()["Topics"] == []  # nothing done in AWS either


def test_setup_aws_needs_a_configuration_set(cli: Cli, sesv2: Any) -> None:
    result = cli("setup-aws", "--endpoint", ENDPOINT, SES_CONFIG_SET="")

    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "ses-sender: SES_CONFIG_SET: required by setup-aws (the configuration set to set up)"
    ]
    assert sesv2.list_configuration_sets()["ConfigurationSets"] == []


@pytest.mark.parametrize(
    ("endpoint", "problem"),
    [
        ("http://mail.example.com/v1/events/results", "must be an https:// URL"),
        ("https://mail.example.com/events", "must end with /v1/events/results"),
        ("https://mail.example.com/v1/events/results?x=1", "must not have a query"),
        ("mail.example.com/v1/events/results", "must be an https:// URL"),
    ],
)
def test_setup_aws_refuses_an_endpoint_sns_cannot_use(
    cli: Cli, sns: Any, endpoint: str, problem: str
) -> None:
    result = cli("setup-aws", "--endpoint", endpoint)

    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"ses-sender: --endpoint: {problem}")
    assert sns.list_topics()["Topics"] == []


def test_setup_aws_without_credentials_says_so(cli: Cli) -> None:
    result = cli("setup-aws", AWS_ACCESS_KEY_ID="", AWS_SECRET_ACCESS_KEY="", AWS_SESSION_TOKEN="")

    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("ses-sender: no AWS credentials found")


def test_an_unreachable_aws_is_one_line_and_exit_1(cli: Cli) -> None:
    result = cli("setup-aws", AWS_ENDPOINT_URL=f"http://127.0.0.1:{free_port()}")

    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("ses-sender: setup-aws: Could not connect to the endpoint URL")


def test_an_aws_refusal_names_the_call_and_what_was_done(cli: Cli, sesv2: Any) -> None:
    # moto takes the name for a configuration set (SES would not), SNS refuses it for the topic.
    result = cli("setup-aws", SES_CONFIG_SET="bad.name")

    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("ses-sender: setup-aws: CreateTopic: InvalidParameter: Topic names")
    assert line.endswith("; applied 1 of 6 changes, run it again to finish")
    assert sesv2.list_configuration_sets()["ConfigurationSets"] == ["bad.name"]


@pytest.mark.parametrize("command", ["setup-aws", "doctor"])
def test_the_commands_explain_themselves(cli: Cli, command: str) -> None:
    result = cli(command, "--help")

    assert result.returncode == 0
    assert f"usage: ses-sender {command}" in result.stdout
    if command == "setup-aws":
        assert "--endpoint URL" in result.stdout
        assert "--dry-run" in result.stdout
