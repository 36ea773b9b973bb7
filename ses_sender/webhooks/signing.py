"""The signatures on every delivery, both keyed with the webhook's secret:

- `X-Ses-Sender-Signature-V2: v2=<hex HMAC-SHA256(secret, "<timestamp>.<delivery id>.<body>")>`
  covers the delivery id receivers drop repeats by, so a captured request cannot be replayed
  under another id;
- `X-Ses-Sender-Signature: v1=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`, still sent for
  receivers that check it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix that tells what the value is, not a secret
TIMESTAMP_HEADER = "X-Ses-Sender-Timestamp"
SIGNATURE_HEADER = "X-Ses-Sender-Signature"
SIGNATURE_V2_HEADER = "X-Ses-Sender-Signature-V2"
DELIVERY_HEADER = "X-Ses-Sender-Delivery"


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_hex(32)


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The header's value; the timestamp is signed with the body, so neither can be replayed
    with the other changed."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"v1={mac.hexdigest()}"


def signature_v2(secret: str, timestamp: int, delivery_id: str, body: bytes) -> str:
    signed = f"{timestamp}.{delivery_id}.".encode() + body
    return f"v2={hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()}"
