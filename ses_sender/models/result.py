from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from ses_sender.db.base import Base, BigId, UtcDateTime


class EventType(enum.StrEnum):
    """What happened to an email, as the event log stores it, the stats count it and webhooks
    deliver it: SES's event types under SES's names, except that SES's own open and click
    tracking is kept apart from ours, and "Rendering Failure" loses its space."""

    SEND = "Send"
    REJECT = "Reject"
    BOUNCE = "Bounce"
    COMPLAINT = "Complaint"
    DELIVERY = "Delivery"
    DELIVERY_DELAY = "DeliveryDelay"
    RENDERING_FAILURE = "RenderingFailure"
    SUBSCRIPTION = "Subscription"
    SES_OPEN = "SesOpen"  # SES's open tracking
    SES_CLICK = "SesClick"  # SES's click tracking
    OPEN = "Open"  # our open pixel
    CLICK = "Click"  # our tracked links
    UNSUBSCRIBE = "Unsubscribe"  # our one-click unsubscribe link


class ResultSource(enum.StrEnum):
    SES = "ses"  # an SES event delivered by SNS
    TRACKING = "tracking"  # our own pixel, unsubscribe link (and later links)


class EventPayload(Base):
    """The SES event an SNS message carried, as it came: stored once per message, however many
    recipients it names, and pruned after `EVENT_RAW_RETENTION_DAYS`.

    The event log's rows refer to it by SNS message id without a foreign key: they outlive it,
    and their own (SNS message id, recipient) key keeps a redelivery from being stored again.
    """

    __tablename__ = "event_payloads"

    sns_message_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    raw: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)


class Result(Base):
    """The event log: one row per event and recipient, whatever its source.

    An SNS message whose event names several recipients (one bounce for three addresses) is
    stored as one row per recipient, so the SNS message id is unique only with the recipient.
    What it carried is stored once, in `EventPayload`.
    """

    __tablename__ = "email_results"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    # Empty while the event waits for its send to be recorded (matched later by message id).
    request_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("email_requests.id", ondelete="CASCADE")
    )
    status: Mapped[str] = mapped_column(String(64))  # an EventType
    source: Mapped[str] = mapped_column(String(16))
    sns_message_id: Mapped[str | None] = mapped_column(String(255))
    ses_message_id: Mapped[str | None] = mapped_column(String(255), index=True)
    # The recipient key (messages/addresses.py), as requests and suppressions store it; "" for
    # an SES event that names nobody.
    recipient: Mapped[str | None] = mapped_column(String(998))
    occurred_at: Mapped[datetime] = mapped_column(UtcDateTime)
    # Our own opens and clicks: the link followed (a click), and whether a person or a machine
    # (a mail privacy proxy, a link scanner) made the event, and why we think so.
    url: Mapped[str | None] = mapped_column(Text)
    machine: Mapped[bool | None] = mapped_column(Boolean)
    reason: Mapped[str | None] = mapped_column(String(32))
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
