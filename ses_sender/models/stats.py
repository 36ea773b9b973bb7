from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import BigInteger, Index, Integer, PrimaryKeyConstraint, SmallInteger, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ses_sender.db.base import Base, BigId, UtcDateTime


class CounterScope(enum.IntEnum):
    """What a counter counts over."""

    TOPIC = 0  # one topic, all time
    DOMAIN = 1  # one topic's recipients at one domain, all time
    TOPIC_TIME = 2  # one topic, one time bucket
    ACCOUNT_TIME = 3  # every topic, one time bucket
    LINK = 4  # one topic's clicks of one link (its URL in `domain`), all time


class StatCounter(Base):
    """A folded count: the sum of every delta folded into it (see `StatDelta`).

    Totals (TOPIC, DOMAIN, LINK) have `grain_s` and `bucket` 0; time buckets have the bucket's start
    in epoch seconds and its length (60, 3600 or 86400). Only non-zero counts are kept.
    On PostgreSQL the key's index holds `value` too: a timeline reads the index alone.
    """

    __tablename__ = "stat_counters"

    scope: Mapped[int] = mapped_column(SmallInteger)
    topic_id: Mapped[str] = mapped_column(String(255))  # "" for the account
    domain: Mapped[str] = mapped_column(Text)  # a DOMAIN's domain, a LINK's URL, else ""
    grain_s: Mapped[int] = mapped_column(Integer)
    bucket: Mapped[int] = mapped_column(BigInteger)
    metric: Mapped[str] = mapped_column(String(32))
    value: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (
        PrimaryKeyConstraint(
            "scope",
            "topic_id",
            "domain",
            "grain_s",
            "bucket",
            "metric",
            postgresql_include=["value"],
        ),
    )


class StatDelta(Base):
    """A change to a count, written in the transaction that changed the facts it counts.

    Writers only insert, so no row is shared by concurrent writers; the fold moves deltas into
    `StatCounter` in the background, and reads add the ones not folded yet. Time buckets here
    are minutes (the fold adds them to the hour and the day too). A transaction's changes to
    one metric of one topic's domains are one row (scope DOMAIN, `domain` ""): `domains` holds
    them, a JSON object of domain to change, and `value` their sum. A batch of sends touches
    dozens of domains: one row, not dozens, each a cost to its writer. A topic's links (scope
    LINK) are packed alike, by URL.
    """

    __tablename__ = "stat_deltas"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    scope: Mapped[int] = mapped_column(SmallInteger)
    topic_id: Mapped[str] = mapped_column(String(255))
    domain: Mapped[str] = mapped_column(String(320))
    bucket: Mapped[int] = mapped_column(BigInteger)
    metric: Mapped[str] = mapped_column(String(32))
    value: Mapped[int] = mapped_column(BigInteger)
    domains: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index("ix_stat_deltas_scope_topic", "scope", "topic_id", "bucket"),)


class StatTopic(Base):
    """Every topic that was ever queued to, with when it first was: the topic list's order."""

    __tablename__ = "stat_topics"

    topic_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)

    __table_args__ = (Index("ix_stat_topics_newest", "created_at", "topic_id"),)
