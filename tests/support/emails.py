from __future__ import annotations

from dataclasses import replace
from typing import Any

from ses_sender.transports.base import OutgoingEmail

SENDER = "Shop <noreply@example.com>"
RECIPIENT = "jane@example.net"

_EMAIL = OutgoingEmail(
    request_id=1,
    topic_id="receipts",
    sender=SENDER,
    to=RECIPIENT,
    subject="Your receipt #12345",
    html="<p>Thanks for your order.</p>",
    text="Thanks for your order.",
    headers=(
        ("List-Unsubscribe", "<https://example.com/u/abc>, <mailto:unsub@example.com?subject=abc>"),
        ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
    ),
    tags=(("campaign", "receipts"), ("topic", "orders")),
)


def make_email(**changes: Any) -> OutgoingEmail:
    return replace(_EMAIL, **changes)
