"""Logging and error reporting, set up once per process."""

from __future__ import annotations

import logging

import sentry_sdk

from ses_sender.config import Settings
from ses_sender.web.access_log import redact_access_log

SENTRY_FLUSH_TIMEOUT_S = 5.0


def configure_logging(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    redact_access_log()


def init_sentry(settings: Settings) -> None:
    """Unhandled API errors (FastAPI integration) and error logs (logging integration) go out."""
    if not settings.sentry_dsn:
        return
    sentry_sdk.init(
        dsn=settings.sentry_dsn,
        environment=settings.env,
        traces_sample_rate=0.0,
    )


def flush_sentry() -> None:
    client = sentry_sdk.get_client()
    if client.is_active():
        client.flush(timeout=SENTRY_FLUSH_TIMEOUT_S)
