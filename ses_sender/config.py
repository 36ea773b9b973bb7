"""Settings: the seed's environment variables plus ours, validated once at start-up.

Nothing here reads the environment by itself: `cli.py` builds `Settings()` (environment, then
`.env`), tests build it with keyword arguments.
"""

from __future__ import annotations

import enum
import ipaddress
import re
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlsplit

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from ses_sender.sns_regions import topic_sns_host

DEFAULT_SQLITE_PATH = "./data/app.db"
# A worker renews its leases four times a lease; below this, renewals would crowd the database.
MIN_LEASE_S = 10
# arn:<partition>:sns:<region>:<account>:<topic>; a topic name is up to 256 letters, digits,
# '-' and '_', with ".fifo" for a FIFO topic.
SNS_TOPIC_ARN = re.compile(
    r"arn:aws(?:-[a-z]+)*:sns:[a-z]{2}(?:-[a-z]+)+-[0-9]+:[0-9]{12}:[A-Za-z0-9_-]{1,256}(?:\.fifo)?"
)
# Options of a PostgreSQL URL that asyncpg wants as whole numbers of at least 0; db.engine turns
# their text into numbers.
POSTGRESQL_INTEGER_OPTIONS = (
    "statement_cache_size",
    "max_cached_statement_lifetime",
    "max_cacheable_statement_size",
    "prepared_statement_cache_size",
)


def _number(value: str, *, integer: bool) -> bool:
    try:
        number = int(value) if integer else float(value)
    except ValueError:
        return False
    return number >= 0 if integer else 0 < number < float("inf")


def _any_text(_value: str) -> bool:
    return True


def _one_of(*allowed: str) -> Callable[[str], bool]:
    return frozenset(allowed).__contains__


# What a PostgreSQL URL's query may name, and which values: the keyword arguments of
# asyncpg.connect that text can give (SQLAlchemy hands them over as text; db.engine turns the
# numbers into numbers), and the cache size SQLAlchemy's asyncpg adapter takes for itself. A value
# the driver would refuse is refused here, in one line, rather than when it connects. Left out:
# server_settings and prepared_statement_name_func (a mapping and a function, which text is not),
# and direct_tls (asyncpg reads any text, "false" too, as true).
POSTGRESQL_QUERY_OPTIONS: dict[str, Callable[[str], bool]] = {
    **dict.fromkeys(
        ("host", "port", "user", "password", "database", "passfile", "service", "servicefile"),
        _any_text,
    ),
    "krbsrvname": _any_text,
    "gsslib": _one_of("gssapi", "sspi"),
    "ssl": _one_of("disable", "allow", "prefer", "require", "verify-ca", "verify-full"),
    "target_session_attrs": _one_of(
        "any", "primary", "standby", "prefer-standby", "read-write", "read-only"
    ),
    **dict.fromkeys(("timeout", "command_timeout"), partial(_number, integer=False)),
    **dict.fromkeys(POSTGRESQL_INTEGER_OPTIONS, partial(_number, integer=True)),
}
# SQLite's in-memory databases: one per connection, so each would start empty and unmigrated.
SQLITE_IN_MEMORY = ("", ":memory:")


class TransportKind(enum.StrEnum):
    SES = "ses"
    SMTP = "smtp"
    OUTBOX = "outbox"


class DatabasePooler(enum.StrEnum):
    NONE = "none"
    # Transaction pooling: a server connection serves one transaction of one client, then
    # another's, so nothing may be prepared for a later transaction.
    PGBOUNCER = "pgbouncer"


class SmtpSecurity(enum.StrEnum):
    STARTTLS = "starttls"
    TLS = "tls"
    NONE = "none"


def _split_csv(value: Any) -> Any:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


CsvList = Annotated[list[str], NoDecode]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        populate_by_name=True,
        # The seed treated an empty variable as unset; so do we.
        env_ignore_empty=True,
    )

    # HTTP
    server_port: int = Field(3000, alias="SERVER_PORT", ge=1, le=65535)
    server_bind: str = Field("0.0.0.0", alias="SERVER_BIND")  # noqa: S104 - a service listens
    server_host: str = Field("http://localhost:3000", alias="SERVER_HOST")
    api_keys: CsvList = Field(default_factory=list, alias="API_KEY")

    # Database
    database_url: str | None = Field(None, alias="DATABASE_URL")
    db_host: str | None = Field(None, alias="DB_HOST")
    db_port: int = Field(5432, alias="DB_PORT", ge=1, le=65535)
    db_user: str = Field("postgres", alias="DB_USER")
    db_password: str = Field("", alias="DB_PASSWORD")
    db_name: str = Field("postgres", alias="DB_NAME")
    db_path: str = Field(DEFAULT_SQLITE_PATH, alias="DB_PATH")
    db_pool_size: int = Field(10, alias="DB_POOL_SIZE", ge=1, le=1000)
    database_pooler: DatabasePooler = Field(DatabasePooler.NONE, alias="DATABASE_POOLER")

    # Sending
    email_transport: TransportKind | None = Field(None, alias="EMAIL_TRANSPORT")
    email_sender: str | None = Field(None, alias="EMAIL_SENDER")
    # What a message's `from` may name besides EMAIL_SENDER: addresses, or whole domains.
    allowed_senders: CsvList = Field(default_factory=list, alias="ALLOWED_SENDERS")
    email_rate: float = Field(14.0, alias="EMAIL_RATE", gt=0, le=100_000)
    max_concurrent: int | None = Field(None, alias="MAX_CONCURRENT", ge=1, le=10_000)
    rate_headroom: float = Field(0.0, alias="RATE_HEADROOM", ge=0, lt=1)
    account_check_s: float = Field(60.0, alias="ACCOUNT_CHECK_SECONDS", ge=1, le=3_600)
    # An SES outage: this many emails failing in a row pause all sending; SES is then probed
    # after the first wait, doubled after each silence up to the longest.
    ses_outage_failures: int = Field(5, alias="SES_OUTAGE_FAILURES", ge=2, le=1_000)
    ses_outage_probe_s: float = Field(5.0, alias="SES_OUTAGE_PROBE_SECONDS", ge=0.1, le=3_600)
    ses_outage_probe_max_s: float = Field(
        300.0, alias="SES_OUTAGE_PROBE_MAX_SECONDS", ge=0.1, le=86_400
    )
    ses_config_set: str | None = Field(None, alias="SES_CONFIG_SET")
    aws_region: str = Field(
        "ap-northeast-2", validation_alias=AliasChoices("AWS_REGION", "AWS_DEFAULT_REGION")
    )
    aws_access_key_id: str | None = Field(None, alias="AWS_ACCESS_KEY_ID")
    aws_secret_access_key: str | None = Field(None, alias="AWS_SECRET_ACCESS_KEY")
    aws_session_token: str | None = Field(None, alias="AWS_SESSION_TOKEN")
    smtp_host: str | None = Field(None, alias="SMTP_HOST")
    smtp_port: int = Field(587, alias="SMTP_PORT", ge=1, le=65535)
    smtp_username: str | None = Field(None, alias="SMTP_USERNAME")
    smtp_password: str | None = Field(None, alias="SMTP_PASSWORD")
    smtp_security: SmtpSecurity = Field(SmtpSecurity.STARTTLS, alias="SMTP_SECURITY")
    outbox_dir: Path = Field(Path("./data/outbox"), alias="OUTBOX_DIR")
    send_timeout_s: float = Field(30.0, alias="SEND_TIMEOUT_SECONDS", gt=0, le=300)
    lease_s: float = Field(120.0, alias="LEASE_SECONDS", ge=MIN_LEASE_S, le=86_400)
    max_attempts: int = Field(8, alias="MAX_ATTEMPTS", ge=1, le=100)
    shutdown_grace_s: float = Field(30.0, alias="SHUTDOWN_GRACE_SECONDS", ge=0, le=600)
    outcome_journal_dir: Path = Field(Path("./data/journal"), alias="OUTCOME_JOURNAL_DIR")

    # Events and tracking
    tracking_secret: str | None = Field(None, alias="TRACKING_SECRET", min_length=16)
    sns_topic_arns: CsvList = Field(default_factory=list, alias="SNS_TOPIC_ARNS")
    ssl_cert_file: str | None = Field(None, alias="SSL_CERT_FILE")
    track_clicks: bool = Field(True, alias="TRACK_CLICKS")
    machine_click_window_s: float = Field(
        10.0, alias="MACHINE_CLICK_WINDOW_SECONDS", ge=0, le=3_600
    )
    # Proxies whose X-Forwarded-For names the client: addresses or networks (CIDR).
    forwarded_allow_ips: CsvList = Field(
        default_factory=lambda: ["127.0.0.1", "::1"], alias="FORWARDED_ALLOW_IPS"
    )

    # Suppression
    soft_bounce_limit: int = Field(3, alias="SOFT_BOUNCE_LIMIT", ge=1, le=1000)
    soft_bounce_window_days: int = Field(7, alias="SOFT_BOUNCE_WINDOW_DAYS", ge=1, le=365)
    # Reputation guardrail
    guardrail_bounce_rate: float = Field(0.05, alias="GUARDRAIL_BOUNCE_RATE", ge=0, le=1)
    guardrail_complaint_rate: float = Field(0.001, alias="GUARDRAIL_COMPLAINT_RATE", ge=0, le=1)
    guardrail_min_sends: int = Field(200, alias="GUARDRAIL_MIN_SENDS", ge=1, le=10_000_000)
    guardrail_check_s: float = Field(30.0, alias="GUARDRAIL_CHECK_SECONDS", ge=1, le=3_600)

    # Outbound webhooks
    webhook_timeout_s: float = Field(10.0, alias="WEBHOOK_TIMEOUT_SECONDS", gt=0, le=60)
    webhook_concurrency: int = Field(8, alias="WEBHOOK_CONCURRENCY", ge=1, le=1_000)
    # Off: webhooks reach only globally routable addresses (README "Security").
    webhook_allow_private: bool = Field(False, alias="WEBHOOK_ALLOW_PRIVATE")
    webhook_delivery_retention_days: int = Field(
        7, alias="WEBHOOK_DELIVERY_RETENTION_DAYS", ge=1, le=3_650
    )
    idempotency_key_ttl_hours: int = Field(24, alias="IDEMPOTENCY_KEY_TTL_HOURS", ge=1, le=87_600)
    # 0 keeps them for ever.
    event_raw_retention_days: int = Field(30, alias="EVENT_RAW_RETENTION_DAYS", ge=0, le=3_650)

    # Requests
    max_recipients_per_request: int = Field(
        100_000, alias="MAX_RECIPIENTS_PER_REQUEST", ge=1, le=1_000_000
    )

    # Operations
    # A port on which the process serves /metrics alone (a worker has no other HTTP server).
    metrics_port: int | None = Field(None, alias="METRICS_PORT", ge=1, le=65535)
    metrics_api_key_required: bool = Field(True, alias="METRICS_API_KEY_REQUIRED")
    sentry_dsn: str | None = Field(None, alias="SENTRY_DSN")
    env: str = Field("dev", alias="ENV")
    log_level: str = Field("INFO", alias="LOG_LEVEL")

    _split_lists = field_validator(
        "api_keys", "sns_topic_arns", "allowed_senders", "forwarded_allow_ips", mode="before"
    )(_split_csv)

    @field_validator("forwarded_allow_ips")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        # The entry is counted, not quoted: settings errors never show a value.
        for number, entry in enumerate(value, start=1):
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(f"entry {number} is not an IP address or network") from None
        return value

    @field_validator("sns_topic_arns")
    @classmethod
    def _topic_arns(cls, value: list[str]) -> list[str]:
        for number, entry in enumerate(value, start=1):
            if not SNS_TOPIC_ARN.fullmatch(entry):
                raise ValueError(
                    f"entry {number} is not an SNS topic ARN "
                    "(arn:<partition>:sns:<region>:<12-digit account>:<topic name>)"
                )
            # FIFO topics deliver to SQS queues only, never to an HTTPS endpoint
            # (https://docs.aws.amazon.com/sns/latest/dg/fifo-message-delivery.html).
            if entry.endswith(".fifo"):
                raise ValueError(
                    f"entry {number} is a FIFO topic, which cannot deliver to an HTTPS endpoint"
                )
            if topic_sns_host(entry) is None:
                raise ValueError(
                    f"entry {number} names a region where Amazon SNS is not known: no message "
                    "from it could be verified"
                )
        return value

    @field_validator("db_path")
    @classmethod
    def _sqlite_file(cls, value: str) -> str:
        problem = _sqlite_url_problem(make_url(f"sqlite:///{value}"))
        if problem is not None:
            raise ValueError(problem)
        return value

    @field_validator("server_host")
    @classmethod
    def _public_base_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an absolute http(s) URL, e.g. https://mail.example.com")
        return value.rstrip("/")

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
        return level

    @field_validator("database_url")
    @classmethod
    def _supported_database(cls, value: str | None) -> str | None:
        if value is None:
            return value
        if not value.startswith(("postgres", "sqlite")):
            raise ValueError("must be a postgresql://… or sqlite:///… URL")
        problem = database_url_problem(value)
        if problem is not None:
            raise ValueError(problem)
        return value

    @model_validator(mode="after")
    def _transport_needs(self) -> Settings:
        if self.email_transport is TransportKind.SMTP and not self.smtp_host:
            raise ValueError("SMTP_HOST is required when EMAIL_TRANSPORT=smtp")
        if self.email_transport in (TransportKind.SES, TransportKind.SMTP) and not (
            self.email_sender
        ):
            raise ValueError(
                f"EMAIL_SENDER is required when EMAIL_TRANSPORT={self.email_transport}"
            )
        return self

    @model_validator(mode="after")
    def _ports_apart(self) -> Settings:
        if self.metrics_port == self.server_port:
            raise ValueError(
                "METRICS_PORT must differ from SERVER_PORT (which serves /metrics too)"
            )
        return self

    @model_validator(mode="after")
    def _pooler_needs_postgresql(self) -> Settings:
        if self.database_pooler is DatabasePooler.PGBOUNCER and not self.sqlalchemy_url.startswith(
            "postgresql"
        ):
            raise ValueError("DATABASE_POOLER=pgbouncer needs a PostgreSQL database")
        return self

    @model_validator(mode="after")
    def _lease_outlasts_a_send(self) -> Settings:
        # A worker starts a send only while its lease surely lasts longer than the send may
        # take; with less than two sends' time, one missed renewal would stop it sending.
        if self.lease_s < 2 * self.send_timeout_s:
            raise ValueError(
                f"LEASE_SECONDS ({self.lease_s:g}) must be at least twice SEND_TIMEOUT_SECONDS "
                f"({self.send_timeout_s:g})"
            )
        return self

    @model_validator(mode="after")
    def _probe_waits_in_order(self) -> Settings:
        if self.ses_outage_probe_max_s < self.ses_outage_probe_s:
            raise ValueError(
                f"SES_OUTAGE_PROBE_MAX_SECONDS ({self.ses_outage_probe_max_s:g}) must be at "
                f"least SES_OUTAGE_PROBE_SECONDS ({self.ses_outage_probe_s:g})"
            )
        return self

    @property
    def sqlalchemy_url(self) -> str:
        """The async driver URL, whichever way the database was given; behind PgBouncer, with
        the driver's prepared-statement caches off (see `without_statement_caches`)."""
        if self.database_url:
            url = to_async_url(self.database_url)
        elif self.db_host:
            url = (
                f"postgresql+asyncpg://{quote(self.db_user, safe='')}:"
                f"{quote(self.db_password, safe='')}@{self.db_host}:{self.db_port}/"
                f"{quote(self.db_name, safe='')}"
            )
        else:
            return f"sqlite+aiosqlite:///{self.db_path}"
        if self.database_pooler is DatabasePooler.PGBOUNCER:
            return without_statement_caches(url)
        return url

    @property
    def dead_links(self) -> str | None:
        """Why the links in mail would lead nowhere, or None: SERVER_HOST names this machine
        (localhost, a loopback address) on another port than SERVER_PORT, as when only the
        port was changed."""
        parts = urlsplit(self.server_host)
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            return None
        if not _is_loopback(parts.hostname) or port == self.server_port:
            return None
        return (
            f"SERVER_HOST names this machine on port {port} but SERVER_PORT is "
            f"{self.server_port}: the tracking and unsubscribe links in mail lead nowhere; "
            "set SERVER_HOST to the URL people reach this service at"
        )

    @property
    def concurrency(self) -> int:
        return self.max_concurrent or max(1, int(self.email_rate * 2))

    @property
    def sender_address(self) -> str:
        return self.email_sender or "ses-sender@localhost"


# Query parameters of a PostgreSQL URL that turn off the statement caches of SQLAlchemy's
# asyncpg adapter and of asyncpg: every statement is then parsed unnamed in the transaction
# that runs it, which transaction pooling allows (PgBouncer before 1.21 keeps no prepared
# statements across server connections).
STATEMENT_CACHES_OFF = {"prepared_statement_cache_size": "0", "statement_cache_size": "0"}


def without_statement_caches(url: str) -> str:
    """`url` (PostgreSQL) with `STATEMENT_CACHES_OFF` among its query parameters; every engine
    made from it, the migrations' included, then prepares nothing to keep."""
    return (
        make_url(url).update_query_dict(STATEMENT_CACHES_OFF).render_as_string(hide_password=False)
    )


def database_url_problem(url: str) -> str | None:
    """What is wrong with a database URL before anything connects, or None; never its parts'
    values, which may hold the password."""
    try:
        parsed = make_url(to_async_url(url))
        port = parsed.port
    except (ArgumentError, ValueError):
        return "not a valid URL (postgresql://user:password@host:port/database or sqlite:///path)"
    if port is not None and not 1 <= port <= 65535:
        return "the port must be between 1 and 65535"
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_url_problem(parsed)
    return _postgresql_query_problem(parsed)


def _sqlite_url_problem(parsed: URL) -> str | None:
    if parsed.host or parsed.port or parsed.username or parsed.password:
        return "an SQLite URL is sqlite:/// and the file's path (sqlite://name names a host)"
    if (parsed.database or "") in SQLITE_IN_MEMORY or parsed.query.get("mode") == "memory":
        return (
            "an in-memory SQLite database cannot be used: every connection would see its own "
            "empty database; name a file"
        )
    return None


def _postgresql_query_problem(parsed: URL) -> str | None:
    for name, value in sorted(parsed.query.items()):
        check = POSTGRESQL_QUERY_OPTIONS.get(name)
        if check is None:
            return (
                f"unknown query option {name!r} for the PostgreSQL driver (asyncpg): it takes "
                f"{', '.join(sorted(POSTGRESQL_QUERY_OPTIONS))}; TLS is ssl=require, not sslmode"
            )
        # Named, not quoted: the value may be a secret.
        if not all(check(each) for each in ((value,) if isinstance(value, str) else value)):
            return f"the query option {name!r} has a value the PostgreSQL driver refuses"
    return None


def _is_loopback(hostname: str | None) -> bool:
    if hostname is None:
        return False
    # urlsplit lowers the case; a trailing dot names the same host (LOCALHOST.).
    hostname = hostname.removesuffix(".")
    if hostname == "localhost" or hostname.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False


def to_async_url(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ValueError("DATABASE_URL must look like postgresql://… or sqlite:///…")
    base = scheme.split("+", 1)[0]
    if base in ("postgres", "postgresql"):
        return f"postgresql+asyncpg://{rest}"
    if base == "sqlite":
        return f"sqlite+aiosqlite://{rest}"
    raise ValueError(f"unsupported database scheme {scheme!r}")


class SettingsError(Exception):
    """A setting, or a combination of them, that stops start-up; printed as one line."""
