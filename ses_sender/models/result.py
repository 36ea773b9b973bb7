from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from ses_sender.db.base import Base, BigId, UtcDateTime


class ResultSource(enum.StrEnum):
    SES = "ses"  # an SES event delivered by SNS
    TRACKING = "tracking"  # our own pixel, unsubscribe link (and later links)


class Result(Base):
    """The event log: one row per event and recipient, whatever its source.

    An SNS message whose event names several recipients (one bounce for three addresses) is
    stored as one row per recipient, so the SNS message id is unique only with the recipient.
    """

    __tablename__ = "email_results"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    # Empty while the event waits for its send to be recorded (matched later by message id).
    request_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("email_requests.id", ondelete="CASCADE")
    )
    status: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(16))
    sns_message_id: Mapped[str | None] = mapped_column(String(255))
    ses_message_id: Mapped[str | None] = mapped_column(String(255), index=True)
    # The recipient key (messages/addresses.py), as requests and suppressions store it; "" for
    # an SES event that names nobody.
    recipient: Mapped[str | None] = mapped_column(String(998))
    occurred_at: Mapped[datetime] = mapped_column(UtcDateTime)
    raw: Mapped[str] = mapped_column(Text, default="{}")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)

    __table_args__ = (
        UniqueConstraint("sns_message_id", "recipient"),
        Index("ix_email_results_request_status", "request_id", "status"),
        Index("ix_email_results_recipient", "recipient", "status", "occurred_at"),
        # Events that match no request of ours (yet): for the periodic adoption sweep, and the
        # unmatched events listed for review, newest first.
        Index(
            "ix_email_results_waiting",
            "created_at",
            "id",
            postgresql_where=text("request_id IS NULL"),
            sqlite_where=text("request_id IS NULL"),
        ),
    )
