from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ses_sender.db.base import Base, BigId, UtcDateTime


class Content(Base):
    """One message object of a POST: what every one of its recipients receives."""

    __tablename__ = "email_contents"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    topic_id: Mapped[str] = mapped_column(String(255), default="", index=True)
    subject: Mapped[str] = mapped_column(String(998))
    content: Mapped[str] = mapped_column(Text)
    # Whether its links are tracked: the message's `trackClicks`, or NULL for TRACK_CLICKS.
    track_clicks: Mapped[bool | None] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
