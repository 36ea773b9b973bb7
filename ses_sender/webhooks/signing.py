"""The signature on every delivery: `v1=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`."""

from __future__ import annotations

import hashlib
import hmac
import secrets

SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix that tells what the value is, not a secret
TIMESTAMP_HEADER = "X-Ses-Sender-Timestamp"
SIGNATURE_HEADER = "X-Ses-Sender-Signature"
DELIVERY_HEADER = "X-Ses-Sender-Delivery"


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_hex(32)


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The header's value; the timestamp is signed with the body, so neither can be replayed
    with the other changed."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"v1={mac.hexdigest()}"
