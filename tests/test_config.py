from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from ses_sender.cli import describe_settings_error
from ses_sender.config import Settings, TransportKind


def settings(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)


def test_sqlite_file_by_default_with_the_seed_path() -> None:
    assert settings().sqlalchemy_url == "sqlite+aiosqlite:///./data/app.db"
    assert settings(DB_PATH="/srv/mail.db").sqlalchemy_url == "sqlite+aiosqlite:////srv/mail.db"


def test_the_seed_postgres_parts_are_assembled_and_quoted() -> None:
    url = settings(
        DB_HOST="db.internal", DB_PORT=6543, DB_USER="mail", DB_PASSWORD="p@ss/w:rd", DB_NAME="ses"
    ).sqlalchemy_url

    assert url == "postgresql+asyncpg://mail:p%40ss%2Fw%3Ard@db.internal:6543/ses"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgresql://u@h:5432/d", "postgresql+asyncpg://u@h:5432/d"),
        ("postgres://u@h/d", "postgresql+asyncpg://u@h/d"),
        ("postgresql+psycopg://u@h/d", "postgresql+asyncpg://u@h/d"),
        ("sqlite:///relative.db", "sqlite+aiosqlite:///relative.db"),
        ("sqlite:////absolute.db", "sqlite+aiosqlite:////absolute.db"),
    ],
)
def test_database_url_accepts_plain_urls_and_wins(given: str, expected: str) -> None:
    assert settings(DATABASE_URL=given, DB_HOST="ignored").sqlalchemy_url == expected


TOPIC_A = "arn:aws:sns:us-east-1:123456789012:mail-ses-events"
TOPIC_B = "arn:aws-cn:sns:cn-north-1:123456789012:b_topic"


def test_several_api_keys_and_topic_arns_are_comma_separated() -> None:
    configured = settings(API_KEY=" old , new ,", SNS_TOPIC_ARNS=f"{TOPIC_A}, {TOPIC_B}")

    assert configured.api_keys == ["old", "new"]
    assert configured.sns_topic_arns == [TOPIC_A, TOPIC_B]


@pytest.mark.parametrize(
    "arn",
    [
        "notanarn",
        "arn:a",
        "arn:aws:sqs:us-east-1:123456789012:queue",
        "arn:aws:sns:us-east-1:12345678901:short-account",
        "arn:aws:sns:useast1:123456789012:no-region",
        "arn:aws:sns:us-east-1:123456789012:",
        "arn:aws:sns:us-east-1:123456789012:has space",
        f"{TOPIC_A}:subscription-id",
        "arn:aws:sns:us-east-1:123456789012:a/b",
    ],
)
def test_a_topic_arn_that_is_not_one_is_refused_by_position(arn: str) -> None:
    with pytest.raises(ValidationError) as refused:
        settings(SNS_TOPIC_ARNS=f"{TOPIC_A},{arn}")

    assert describe_settings_error(refused.value) == (
        "SNS_TOPIC_ARNS: entry 2 is not an SNS topic ARN "
        "(arn:<partition>:sns:<region>:<12-digit account>:<topic name>)"
    )


@pytest.mark.parametrize(
    ("arn", "problem"),
    [
        ("arn:aws:sns:xx-fake-1:123456789012:t", "names a region where Amazon SNS is not known"),
        ("arn:aws:sns:us-east-1:123456789012:t.fifo", "is a FIFO topic"),
    ],
)
def test_a_topic_no_message_could_come_from_is_refused(arn: str, problem: str) -> None:
    with pytest.raises(ValidationError) as refused:
        settings(SNS_TOPIC_ARNS=f"{TOPIC_A},{arn}")

    assert describe_settings_error(refused.value).startswith(f"SNS_TOPIC_ARNS: entry 2 {problem}")


def test_an_in_memory_sqlite_path_is_refused() -> None:
    with pytest.raises(ValidationError) as refused:
        settings(DB_PATH=":memory:")

    assert describe_settings_error(refused.value).startswith(
        "DB_PATH: an in-memory SQLite database cannot be used"
    )


def test_a_proxy_address_that_is_not_one_is_refused_without_its_value() -> None:
    with pytest.raises(ValidationError) as refused:
        settings(FORWARDED_ALLOW_IPS="10.0.0.0/8,999.1.1.1")

    described = describe_settings_error(refused.value)
    assert described == "FORWARDED_ALLOW_IPS: entry 2 is not an IP address or network"


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("postgres://u:hunter2@[::1", "not a valid URL"),
        ("postgresql://u:hunter2@db:port/x", "not a valid URL"),
        ("postgresql://u:hunter2@db:99999/x", "the port must be between 1 and 65535"),
        ("postgresql://u:hunter2@db:0/x", "the port must be between 1 and 65535"),
        ("postgresql://u:hunter2@db/x?sslmode=hunter2", "unknown query option 'sslmode'"),
        ("postgresql://u:hunter2@db/x?ssl=require&hunter3=1", "unknown query option 'hunter3'"),
        ("postgresql://u:p@db/x?server_settings=hunter2", "unknown query option 'server_settings'"),
        ("postgresql://u:p@db/x?direct_tls=hunter2", "unknown query option 'direct_tls'"),
        (
            "postgresql://u:p@db/x?prepared_statement_cache_size=hunter2",
            "the query option 'prepared_statement_cache_size' has a value",
        ),
        ("postgresql://u:p@db/x?statement_cache_size=-1", "the query option 'statement_cache"),
        ("postgresql://u:p@db/x?ssl=hunter2", "the query option 'ssl' has a value"),
        ("postgresql://u:p@db/x?gsslib=hunter2", "the query option 'gsslib' has a value"),
        ("postgresql://u:p@db/x?command_timeout=hunter2", "the query option 'command_timeout'"),
        ("postgresql://u:p@db/x?timeout=0", "the query option 'timeout' has a value"),
        ("postgresql://u:p@db/x?timeout=nan", "the query option 'timeout' has a value"),
        (
            "postgresql://u:p@/x?host=a:5432&host=b:5432&target_session_attrs=hunter2",
            "the query option 'target_session_attrs' has a value",
        ),
        ("sqlite://hunter2.db", "an SQLite URL is sqlite:/// and the file's path"),
        ("sqlite:///:memory:", "an in-memory SQLite database cannot be used"),
        ("sqlite://", "an in-memory SQLite database cannot be used"),
        ("sqlite:///file:x?mode=memory&uri=true", "an in-memory SQLite database cannot be used"),
    ],
)
def test_a_database_url_that_cannot_work_is_refused_before_connecting(
    url: str, problem: str
) -> None:
    with pytest.raises(ValidationError) as refused:
        settings(DATABASE_URL=url)

    described = describe_settings_error(refused.value)
    assert described.startswith(f"DATABASE_URL: {problem}")
    assert "hunter2" not in described


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://u:p@db:5432/x?ssl=require&command_timeout=5",
        "postgresql://u:p@/x?host=db-a:5432&host=db-b:5432&target_session_attrs=primary",
        "postgresql://u:p@db/x?prepared_statement_cache_size=0&statement_cache_size=0",
        "postgresql://u:p@db/x?ssl=verify-full&gsslib=sspi&timeout=2.5&max_cacheable_statement_size=0",
        "sqlite:///data/app.db?mode=ro",
    ],
)
def test_the_driver_options_are_taken(url: str) -> None:
    assert settings(DATABASE_URL=url).database_url == url


def test_defaults_follow_the_seed() -> None:
    defaults = settings()

    assert (defaults.server_port, defaults.email_rate, defaults.concurrency) == (3000, 14.0, 28)
    assert defaults.server_host == "http://localhost:3000"
    assert defaults.aws_region == "ap-northeast-2"
    assert defaults.email_transport is None


def test_server_host_loses_its_trailing_slash() -> None:
    assert settings(SERVER_HOST="https://mail.example.com/").server_host == (
        "https://mail.example.com"
    )


@pytest.mark.parametrize(
    "values",
    [
        {"EMAIL_TRANSPORT": TransportKind.SES},
        {"EMAIL_TRANSPORT": TransportKind.SMTP, "SMTP_HOST": "smtp.example.com"},
    ],
)
def test_sending_transports_need_a_sender(values: dict[str, Any]) -> None:
    with pytest.raises(ValidationError, match="EMAIL_SENDER is required"):
        settings(**values)


def test_behind_pgbouncer_the_url_turns_the_statement_caches_off() -> None:
    url = settings(
        DATABASE_URL="postgresql://mail:p%40ss@bouncer:6432/ses?ssl=require",
        DATABASE_POOLER="pgbouncer",
    ).sqlalchemy_url

    assert url == (
        "postgresql+asyncpg://mail:p%40ss@bouncer:6432/ses"
        "?prepared_statement_cache_size=0&ssl=require&statement_cache_size=0"
    )
    parts = settings(DB_HOST="bouncer", DB_PORT=6432, DATABASE_POOLER="pgbouncer").sqlalchemy_url
    assert parts.endswith("/postgres?prepared_statement_cache_size=0&statement_cache_size=0")
    assert "cache" not in settings(DATABASE_URL="postgresql://bouncer/ses").sqlalchemy_url


def test_pgbouncer_needs_postgresql() -> None:
    with pytest.raises(ValidationError, match="DATABASE_POOLER=pgbouncer needs a PostgreSQL"):
        settings(DATABASE_POOLER="pgbouncer")


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"LEASE_SECONDS": 9}, "LEASE_SECONDS: Input should be greater than or equal to 10"),
        (
            {"LEASE_SECONDS": 40},
            "LEASE_SECONDS (40) must be at least twice SEND_TIMEOUT_SECONDS (30)",
        ),
        (
            {"LEASE_SECONDS": 10, "SEND_TIMEOUT_SECONDS": 6},
            "LEASE_SECONDS (10) must be at least twice SEND_TIMEOUT_SECONDS (6)",
        ),
    ],
)
def test_a_lease_too_short_is_refused_naming_the_variable(
    values: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError) as refused:
        settings(**values)

    assert message in describe_settings_error(refused.value)


def test_the_shortest_lease_with_a_send_timeout_of_half_of_it() -> None:
    assert settings(LEASE_SECONDS=10, SEND_TIMEOUT_SECONDS=5).lease_s == 10


@pytest.mark.parametrize(
    ("values", "secret"),
    [
        ({"TRACKING_SECRET": "hunter2-short"}, "hunter2"),
        ({"DATABASE_URL": "mysql://mail:hunter2@db.internal/ses"}, "hunter2"),
        ({"SERVER_HOST": "mail:hunter2@example.com"}, "hunter2"),
        ({"API_KEY": "hunter2", "EMAIL_RATE": "hunter2"}, "hunter2"),
    ],
)
def test_a_bad_setting_is_named_without_its_value(values: dict[str, Any], secret: str) -> None:
    with pytest.raises(ValidationError) as refused:
        settings(**values)

    described = describe_settings_error(refused.value)
    assert described.split(":")[0] in values
    assert secret not in described


@pytest.mark.parametrize(
    ("values", "port"),
    [
        ({"SERVER_PORT": 3950}, 3000),
        ({"SERVER_HOST": "http://127.0.0.1:8080"}, 8080),
        ({"SERVER_HOST": "https://[::1]"}, 443),
        ({"SERVER_HOST": "http://mail.localhost:3001"}, 3001),
        ({"SERVER_HOST": "http://LOCALHOST.:3000", "SERVER_PORT": 3961}, 3000),
        ({"SERVER_HOST": "http://Mail.LocalHost.:3001"}, 3001),
    ],
)
def test_links_to_this_machine_on_another_port_are_dead(values: dict[str, Any], port: int) -> None:
    configured = settings(**values)

    assert configured.dead_links == (
        f"SERVER_HOST names this machine on port {port} but SERVER_PORT is "
        f"{configured.server_port}: the tracking and unsubscribe links in mail lead nowhere; "
        "set SERVER_HOST to the URL people reach this service at"
    )


@pytest.mark.parametrize(
    "values",
    [
        {},
        {"SERVER_PORT": 3950, "SERVER_HOST": "http://localhost:3950"},
        {"SERVER_PORT": 8080, "SERVER_HOST": "https://mail.example.com"},
        {"SERVER_PORT": 80, "SERVER_HOST": "http://127.0.0.1"},
    ],
)
def test_links_elsewhere_or_on_the_served_port_are_fine(values: dict[str, Any]) -> None:
    assert settings(**values).dead_links is None
