from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ses_sender.db.base import Base, UtcDateTime


class SuppressionReason(enum.StrEnum):
    BOUNCE = "bounce"  # a permanent bounce, or repeated soft bounces
    COMPLAINT = "complaint"
    UNSUBSCRIBE = "unsubscribe"
    MANUAL = "manual"  # added through the API


class Suppression(Base):
    """An address we must not mail again, and why."""

    __tablename__ = "suppressions"

    # The recipient key: the address with its domain lower-cased (see messages/addresses.py).
    email: Mapped[str] = mapped_column(String(320), primary_key=True)
    reason: Mapped[str] = mapped_column(String(32), index=True)  # a SuppressionReason
    detail: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
