"""Settings as the tests build them: explicit values, never a .env file."""

from __future__ import annotations

from typing import Any

from ses_sender.config import Settings

API_KEY = "test-key-0123456789"
# The SNS topic the tests' signed notifications come from (tests/support/ses_events.py).
TRUSTED_TOPIC_ARN = "arn:aws:sns:us-east-1:123456789012:ses-events"


def make_settings(database_url: str, **overrides: Any) -> Settings:
    """Settings for tests: explicit values, no .env file."""
    values: dict[str, Any] = {
        "DATABASE_URL": database_url,
        "API_KEY": API_KEY,
        "EMAIL_SENDER": "sender@example.com",
        "SERVER_HOST": "https://mail.example.com",
        "EMAIL_TRANSPORT": "outbox",
        "TRACKING_SECRET": None,
        "SNS_TOPIC_ARNS": TRUSTED_TOPIC_ARN,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)
