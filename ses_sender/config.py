"""Settings: the seed's environment variables plus ours, validated once at start-up.

Nothing here reads the environment by itself: `cli.py` builds `Settings()` (environment, then
`.env`), tests build it with keyword arguments.
"""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_SQLITE_PATH = "./data/app.db"


class TransportKind(enum.StrEnum):
    SES = "ses"
    SMTP = "smtp"
    OUTBOX = "outbox"


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

    # Sending
    email_transport: TransportKind | None = Field(None, alias="EMAIL_TRANSPORT")
    email_sender: str | None = Field(None, alias="EMAIL_SENDER")
    email_rate: float = Field(14.0, alias="EMAIL_RATE", gt=0, le=100_000)
    max_concurrent: int | None = Field(None, alias="MAX_CONCURRENT", ge=1, le=10_000)
    rate_headroom: float = Field(0.0, alias="RATE_HEADROOM", ge=0, lt=1)
    account_check_s: float = Field(60.0, alias="ACCOUNT_CHECK_SECONDS", ge=1, le=3_600)
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
    lease_s: float = Field(120.0, alias="LEASE_SECONDS", ge=10, le=86_400)
    max_attempts: int = Field(8, alias="MAX_ATTEMPTS", ge=1, le=100)
    shutdown_grace_s: float = Field(30.0, alias="SHUTDOWN_GRACE_SECONDS", ge=0, le=600)

    # Events and tracking
    tracking_secret: str | None = Field(None, alias="TRACKING_SECRET", min_length=16)
    sns_topic_arns: CsvList = Field(default_factory=list, alias="SNS_TOPIC_ARNS")
    ssl_cert_file: str | None = Field(None, alias="SSL_CERT_FILE")

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

    # Requests
    max_recipients_per_request: int = Field(
        100_000, alias="MAX_RECIPIENTS_PER_REQUEST", ge=1, le=1_000_000
    )

    # Operations
    sentry_dsn: str | None = Field(None, alias="SENTRY_DSN")
    env: str = Field("dev", alias="ENV")
    log_level: str = Field("INFO", alias="LOG_LEVEL")

    _split_lists = field_validator("api_keys", "sns_topic_arns", mode="before")(_split_csv)

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
        if value is not None and not value.startswith(("postgres", "sqlite")):
            raise ValueError("must be a postgresql://… or sqlite:///… URL")
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

    @property
    def sqlalchemy_url(self) -> str:
        """The async driver URL, whichever way the database was given."""
        if self.database_url:
            return to_async_url(self.database_url)
        if self.db_host:
            return (
                f"postgresql+asyncpg://{quote(self.db_user, safe='')}:"
                f"{quote(self.db_password, safe='')}@{self.db_host}:{self.db_port}/"
                f"{quote(self.db_name, safe='')}"
            )
        return f"sqlite+aiosqlite:///{self.db_path}"

    @property
    def concurrency(self) -> int:
        return self.max_concurrent or max(1, int(self.email_rate * 2))

    @property
    def sender_address(self) -> str:
        return self.email_sender or "ses-sender@localhost"


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
