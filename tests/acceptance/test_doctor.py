"""`ses-sender doctor` as a user runs it: one line per check, exit 1 when one fails."""

from __future__ import annotations

import json
from typing import Any

from tests.support.aws_setup import ENDPOINT, Cli
from tests.support.moto_complement import MotoComplement
from tests.support.moto_server import MotoServer

CHECKS = [
    "database",
    "migrations",
    "AWS credentials",
    "sender identity",
    "sandbox",
    "sending",
    "quota",
    "configuration set",
    "event destination",
    "SNS topic",
    "subscription",
]


def report(stdout: str) -> dict[str, tuple[str, str]]:
    """check name -> (status, detail), and that there is exactly one line per check."""
    lines = stdout.strip().splitlines()
    checks: dict[str, tuple[str, str]] = {}
    for line in lines[:-1]:
        status, rest = line.split(" ", 1)
        name, detail = rest.strip().split(": ", 1)
        checks[name] = (status, detail)
    assert list(checks) == CHECKS, stdout
    return checks


def statuses(checks: dict[str, tuple[str, str]]) -> dict[str, str]:
    return {name: status for name, (status, _detail) in checks.items()}


def test_a_wired_deployment_passes_every_check(
    cli: Cli, moto: MotoServer, database_url: str
) -> None:
    moto.verify_identity("example.com")
    assert cli("setup-aws").returncode == 0

    result = cli("doctor", DATABASE_URL=database_url)

    assert result.returncode == 0, result.stdout + result.stderr
    checks = report(result.stdout)
    assert set(statuses(checks).values()) == {"ok"}, result.stdout
    assert checks["sender identity"][1] == "sender@example.com can send: example.com is verified"
    assert checks["quota"][1] == "14/s, 50,000 per 24 h, 0 sent in the last 24 h"
    assert checks["subscription"][1] == f"{ENDPOINT} is confirmed"
    assert result.stdout.strip().splitlines()[-1] == "0 failed, 0 warnings, 11 ok"


def test_a_new_install_fails_where_it_is_not_ready(cli: Cli) -> None:
    # The database file does not exist yet (never migrated), nothing is set up in AWS.
    result = cli("doctor")

    assert result.returncode == 1
    checks = report(result.stdout)
    assert statuses(checks) == {
        "database": "ok",
        "migrations": "FAIL",
        "AWS credentials": "ok",
        "sender identity": "FAIL",
        "sandbox": "ok",
        "sending": "ok",
        "quota": "ok",
        "configuration set": "FAIL",
        "event destination": "FAIL",
        "SNS topic": "FAIL",
        "subscription": "FAIL",
    }
    assert checks["migrations"][1] == (
        "the schema is not at the latest version: run ses-sender migrate"
    )
    assert checks["sender identity"][1].startswith(
        "sender@example.com cannot send in us-east-1: sender@example.com is not an identity, "
        "example.com is not an identity"
    )
    assert checks["configuration set"][1] == (
        "marketing does not exist in us-east-1: run ses-sender setup-aws"
    )
    assert checks["subscription"][1] == "not checked: no configuration set"


def test_an_unreachable_database_and_no_credentials(cli: Cli) -> None:
    result = cli(
        "doctor",
        DATABASE_URL="postgresql://postgres@127.0.0.1:1/nothing",
        AWS_ACCESS_KEY_ID="",
        AWS_SECRET_ACCESS_KEY="",
        AWS_SESSION_TOKEN="",
    )

    assert result.returncode == 1
    checks = report(result.stdout)
    assert checks["database"][0] == "FAIL"
    assert checks["database"][1].startswith("unreachable: ")
    assert checks["migrations"] == ("FAIL", "not checked: the database is unreachable")
    assert checks["AWS credentials"][0] == "FAIL"
    assert checks["AWS credentials"][1].startswith("none found")
    for name in CHECKS[3:]:
        assert checks[name] == ("FAIL", "not checked: no AWS credentials")


def test_warnings_alone_do_not_fail(
    cli: Cli, moto: MotoServer, moto_complement: MotoComplement, database_url: str
) -> None:
    moto.verify_identity("sender@example.com")
    assert cli("setup-aws").returncode == 0
    moto_complement.account["ProductionAccessEnabled"] = False

    result = cli("doctor", DATABASE_URL=database_url, EMAIL_RATE="20")

    assert result.returncode == 0, result.stdout
    checks = report(result.stdout)
    assert checks["sandbox"][0] == "warn"
    assert "SES sandbox" in checks["sandbox"][1]
    assert checks["quota"][0] == "warn"
    assert checks["quota"][1].startswith("EMAIL_RATE 20/s is above the account's rate")
    assert checks["sender identity"][1] == (
        "sender@example.com can send: sender@example.com is verified"
    )
    assert result.stdout.strip().splitlines()[-1] == "0 failed, 2 warnings, 9 ok"


def test_broken_wiring_is_named(
    cli: Cli, moto: MotoServer, moto_complement: MotoComplement, sns: Any, database_url: str
) -> None:
    moto.verify_identity("example.com")
    assert cli("setup-aws").returncode == 0
    [topic] = sns.list_topics()["Topics"]
    [subscription] = sns.list_subscriptions_by_topic(TopicArn=topic["TopicArn"])["Subscriptions"]
    sns.set_subscription_attributes(
        SubscriptionArn=subscription["SubscriptionArn"],
        AttributeName="RawMessageDelivery",
        AttributeValue="true",
    )
    moto_complement.pending_identities.add("example.com")
    moto_complement.account["SendingEnabled"] = False

    result = cli(
        "doctor",
        DATABASE_URL=database_url,
        SNS_TOPIC_ARNS="arn:aws:sns:us-east-1:123456789012:another",
    )

    assert result.returncode == 1
    checks = report(result.stdout)
    assert {name for name, status in statuses(checks).items() if status != "ok"} == {
        "sender identity",
        "sending",
        "SNS topic",
        "subscription",
    }
    assert checks["sender identity"][1].startswith(
        "sender@example.com cannot send in us-east-1: sender@example.com is not an identity, "
        "example.com PENDING"
    )
    assert checks["sending"][1] == "sending is paused for the account (enforcement HEALTHY)"
    assert checks["SNS topic"][1].startswith(f"SNS_TOPIC_ARNS does not include {topic['TopicArn']}")
    assert checks["subscription"][1].startswith("raw message delivery is on")


def test_a_subscription_elsewhere_is_not_ours(
    cli: Cli, moto: MotoServer, database_url: str
) -> None:
    moto.verify_identity("example.com")
    assert (
        cli("setup-aws", "--endpoint", "https://old.example.com/v1/events/results").returncode == 0
    )

    result = cli("doctor", DATABASE_URL=database_url)

    assert result.returncode == 1
    status, detail = report(result.stdout)["subscription"]
    assert status == "FAIL"
    assert detail.startswith(
        f"{ENDPOINT} is not subscribed to arn:aws:sns:us-east-1:123456789012:marketing-ses-events "
        "(it has https://old.example.com/v1/events/results)"
    )


def test_a_topic_ses_may_not_publish_to_fails(
    cli: Cli, moto: MotoServer, sns: Any, database_url: str
) -> None:
    moto.verify_identity("example.com")
    assert cli("setup-aws").returncode == 0
    [topic] = sns.list_topics()["Topics"]
    policy = json.loads(
        sns.get_topic_attributes(TopicArn=topic["TopicArn"])["Attributes"]["Policy"]
    )
    policy["Statement"] = policy["Statement"][:1]  # the default statement only
    sns.set_topic_attributes(
        TopicArn=topic["TopicArn"], AttributeName="Policy", AttributeValue=json.dumps(policy)
    )

    result = cli("doctor", DATABASE_URL=database_url)

    assert result.returncode == 1
    status, detail = report(result.stdout)["SNS topic"]
    assert status == "FAIL"
    assert detail == (
        f"the policy of {topic['TopicArn']} does not let SES publish marketing's events to it: "
        "run ses-sender setup-aws"
    )
