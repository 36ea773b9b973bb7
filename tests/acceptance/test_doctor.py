"""`ses-sender doctor` as a user runs it: one line per check, exit 1 when one fails."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ses_sender.composition import Runtime
from tests.support.aws_setup import ENDPOINT, Cli
from tests.support.moto_complement import MotoComplement
from tests.support.moto_server import MotoServer

TOPIC_ARN = "arn:aws:sns:us-east-1:123456789012:marketing-ses-events"
OTHER_TOPIC_ARN = "arn:aws:sns:us-east-1:123456789012:another"
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
    "trusted topics",
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
    cli: Cli, moto: MotoServer, database_url: str, runtime: Runtime
) -> None:
    """`runtime` empties the tables afterwards: the topic recorded here is this test's only."""
    moto.verify_identity("example.com")
    # The same database as the service's: setup-aws records the topic there.
    assert cli("setup-aws", DATABASE_URL=database_url).returncode == 0

    result = cli("doctor", DATABASE_URL=database_url)

    assert result.returncode == 0, result.stdout + result.stderr
    checks = report(result.stdout)
    assert set(statuses(checks).values()) == {"ok"}, result.stdout
    assert checks["sender identity"][1] == "sender@example.com can send: example.com is verified"
    assert checks["quota"][1] == "14/s, 50,000 per 24 h, 0 sent in the last 24 h"
    assert checks["subscription"][1] == f"{ENDPOINT} is confirmed"
    assert TOPIC_ARN in checks["trusted topics"][1].split(", ")
    assert result.stdout.strip().splitlines()[-1] == "0 failed, 0 warnings, 12 ok"


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
        "trusted topics": "FAIL",
    }
    assert checks["trusted topics"][1] == "not checked: the database cannot be read"
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
    for name in CHECKS[3:-1]:
        assert checks[name] == ("FAIL", "not checked: no AWS credentials")
    assert checks["trusted topics"] == ("FAIL", "not checked: the database cannot be read")


def test_warnings_alone_do_not_fail(
    cli: Cli,
    moto: MotoServer,
    moto_complement: MotoComplement,
    database_url: str,
    runtime: Runtime,
) -> None:
    moto.verify_identity("sender@example.com")
    assert cli("setup-aws", DATABASE_URL=database_url).returncode == 0
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
    assert result.stdout.strip().splitlines()[-1] == "0 failed, 2 warnings, 10 ok"


def test_broken_wiring_is_named(
    cli: Cli, moto: MotoServer, moto_complement: MotoComplement, sns: Any, tmp_path: Path
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
    # Another database than the one setup-aws recorded the topic in, trusting another topic.
    elsewhere = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    assert cli("migrate", DATABASE_URL=elsewhere).returncode == 0

    result = cli("doctor", DATABASE_URL=elsewhere, SNS_TOPIC_ARNS=OTHER_TOPIC_ARN)

    assert result.returncode == 1
    checks = report(result.stdout)
    assert {name for name, status in statuses(checks).items() if status != "ok"} == {
        "sender identity",
        "sending",
        "subscription",
        "trusted topics",
    }
    assert checks["sender identity"][1].startswith(
        "sender@example.com cannot send in us-east-1: sender@example.com is not an identity, "
        "example.com PENDING"
    )
    assert checks["sending"][1] == "sending is paused for the account (enforcement HEALTHY)"
    assert checks["subscription"][1].startswith("raw message delivery is on")
    assert checks["trusted topics"][1] == (
        f"{topic['TopicArn']} is not trusted, so the service refuses its messages: run "
        "ses-sender setup-aws, or add it to SNS_TOPIC_ARNS"
    )


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


def test_each_allowed_sender_must_be_a_verified_identity(
    cli: Cli, moto: MotoServer, database_url: str, runtime: Runtime
) -> None:
    moto.verify_identity("example.com")
    assert cli("setup-aws", DATABASE_URL=database_url).returncode == 0

    verified = cli("doctor", DATABASE_URL=database_url, ALLOWED_SENDERS="news@example.com")
    moto.verify_identity("shop@example.net")
    unverified = cli(
        "doctor",
        DATABASE_URL=database_url,
        ALLOWED_SENDERS="news@example.com,shop@example.net,example.org",
    )

    assert report(verified.stdout)["sender identity"] == (
        "ok",
        "sender@example.com can send: example.com is verified; so are ALLOWED_SENDERS "
        "(news@example.com)",
    )
    assert unverified.returncode == 1
    assert report(unverified.stdout)["sender identity"] == (
        "FAIL",
        "ALLOWED_SENDERS cannot send in us-east-1: example.org (example.org is not an "
        "identity); verify each address or domain in SES",
    )
