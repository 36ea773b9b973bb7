from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column

from ses_sender.db.base import Base, BigId, UtcDateTime


class RequestStatus(enum.IntEnum):
    """The seed's codes, kept for compatibility."""

    CREATED = 0  # queued: waiting for `due_at`
    PROCESSING = 1  # claimed by a worker whose lease runs until `lease_expires_at`
    SENT = 2  # the transport accepted it; `message_id` and `sent_at` are set
    FAILED = 3  # given up; `error` says why
    STOPPED = 4  # never sent: `stop_reason` says why


class StopReason(enum.IntEnum):
    """Why a request ended Stopped without being sent."""

    CANCELLED = 1  # by the API (the topic or the request)
    SUPPRESSED = 2  # its address is on the suppression list (`error` says why it is)


class Outcome(enum.IntEnum):
    """What became of a sent email, as SES told us: a higher value is never replaced by a lower.

    Events arrive in any order and some follow others (a bounce after the delivery, a complaint
    after both), so the request keeps the strongest word it has heard. No value (NULL) means
    sent and nothing heard yet. The gaps leave room for another outcome without renumbering.
    """

    DELAYED = 10  # SES is still trying (DeliveryDelay); superseded by what comes of it
    DELIVERED = 20  # the receiving server accepted it
    SOFT_BOUNCED = 30  # a transient or undetermined bounce: mailbox full, auto-reply, ...
    REJECTED = 40  # SES refused to send it (Reject: a virus, say)
    BOUNCED = 50  # a permanent bounce: the address does not take mail
    COMPLAINED = 60  # the recipient marked it as spam


class Request(Base):
    """One email to one recipient, and a summary of everything that happened to it after."""

    __tablename__ = "email_requests"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    topic_id: Mapped[str] = mapped_column(String(255), default="")
    to: Mapped[str] = mapped_column(String(998))
    # The bare address with its domain lower-cased: what suppression and per-address counts key on.
    recipient_key: Mapped[str] = mapped_column(String(320), index=True)
    content_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("email_contents.id", ondelete="CASCADE"), index=True
    )
    scheduled_at: Mapped[datetime] = mapped_column(UtcDateTime)
    status: Mapped[int] = mapped_column(SmallInteger, default=RequestStatus.CREATED)
    # When the row may next be tried: its scheduled time, or a retry's backoff.
    due_at: Mapped[datetime] = mapped_column(UtcDateTime)
    # Held back while its topic is paused: out of the claim's range (the claim index starts
    # with these two columns), however large the paused backlog.
    held: Mapped[bool] = mapped_column(Boolean, server_default=false())
    # While PROCESSING: until when the worker that claimed it may send it.
    lease_expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # The claim's random token: the claiming worker's writes match it, so once the row is
    # claimed again nothing of the earlier claim overwrites it. Kept until the next claim.
    lease_token: Mapped[int | None] = mapped_column(BigInteger)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    message_id: Mapped[str | None] = mapped_column(String(255), index=True)
    error: Mapped[str | None] = mapped_column(Text)
    stop_reason: Mapped[int | None] = mapped_column(SmallInteger)  # a StopReason, when STOPPED
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime, index=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)

    # What SES and our tracking reported afterwards.
    delivered_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    bounced_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    bounce_type: Mapped[str | None] = mapped_column(String(64))
    complained_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    complaint_type: Mapped[str | None] = mapped_column(String(64))
    rejected_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    delayed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    first_opened_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    open_count: Mapped[int] = mapped_column(Integer, default=0)
    first_clicked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    click_count: Mapped[int] = mapped_column(Integer, default=0)
    unsubscribed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # The strongest `Outcome` heard so far; kept rather than derived from the times above
    # because `bounce_type` follows the earliest bounce, so a permanent bounce after a
    # transient one would not show in them.
    outcome: Mapped[int | None] = mapped_column(SmallInteger)
    # This recipient's own template data, a JSON object (its content is templated).
    data: Mapped[str | None] = mapped_column(Text)

    # What the stats counters need of its events, kept by the statements that attach them so
    # that counting a change never reads the event log (stats/counters.py): which event types
    # it has had (bits, `counters.EVENT_BITS`), its earliest open and click of any source (ours
    # or SES's), and how many of our own opens and clicks (`open_count`, `click_count`) we
    # judged a machine's.
    event_types: Mapped[int] = mapped_column(Integer, server_default="0")
    opened_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    clicked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    machine_open_count: Mapped[int] = mapped_column(Integer, server_default="0")
    machine_click_count: Mapped[int] = mapped_column(Integer, server_default="0")

    __table_args__ = (
        Index("ix_email_requests_claim", "status", "held", "due_at", "id"),
        Index("ix_email_requests_topic_status", "topic_id", "status"),
    )


class RequestChange(NamedTuple):
    """What one write did to one request, as the writer knows it from its own statements, for
    the stats counters (stats/counters.py).

    `before` and `after` map `Request` column names to the values they had and have: those the
    write changed, and those it knows that the counters may need beside them (`outcome`, say,
    when a send is recorded). A column in neither is one the write left alone. `before` is
    None for a row the write inserted (then `after` has every counted column). `events` are
    the events attached to the request by this write, each (type, time) once: events stored
    again (a duplicate) are not in it. Times may be given to the minute, all the counters read
    of them: changes alike then share one mapping, looked at once.
    (A tuple: a batch of sends makes one per row.)
    """

    topic_id: str
    recipient_key: str
    before: Mapping[str, Any] | None
    after: Mapping[str, Any]
    events: tuple[tuple[str, datetime], ...] = ()
    # Our own opens and clicks that this write found a machine's, each (type, time) once: of
    # `events`, and earlier ones re-judged (a burst's first clicks, once it is seen).
    machine_events: tuple[tuple[str, datetime], ...] = ()
