from __future__ import annotations

from datetime import datetime

from sqlalchemy import Double, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ses_sender.db.base import Base, UtcDateTime


class RateLimit(Base):
    """Shared pacing state: one GCRA row per rate, from which every worker takes grants."""

    __tablename__ = "rate_limits"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    # The first free send slot, in seconds since the epoch (GCRA's "theoretical arrival time").
    next_free_at: Mapped[float] = mapped_column(Double)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    # How far, in all, the schedule has been moved on to pay back late sends (seconds).
    shifted: Mapped[float] = mapped_column(Double, server_default="0.0")
    # After a throttle: the share of the target rate in force at `backoff_since` (epoch seconds),
    # from which it recovers with time.
    backoff_level: Mapped[float] = mapped_column(Double, server_default="1.0")
    backoff_since: Mapped[float] = mapped_column(Double, server_default="0.0")


class SendingPause(Base):
    """A reason all sending is paused (the account, the reputation guardrail); rows stay queued."""

    __tablename__ = "sending_pauses"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    reason: Mapped[str] = mapped_column(Text)
    paused_at: Mapped[datetime] = mapped_column(UtcDateTime)
    # None: until an operator resumes it.
    until: Mapped[datetime | None] = mapped_column(UtcDateTime)


class TopicPause(Base):
    """A topic whose queued email is held back until it is resumed."""

    __tablename__ = "topic_pauses"

    topic_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    paused_at: Mapped[datetime] = mapped_column(UtcDateTime)
