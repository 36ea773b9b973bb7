from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    false,
)
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
    # The text part as given; NULL: derived from the HTML.
    text: Mapped[str | None] = mapped_column(Text)
    # Subject, content and text are templates rendered per recipient (the message used
    # recipients, data or a stored template); otherwise they go out as given.
    templated: Mapped[bool] = mapped_column(Boolean, server_default=false())
    # The data every recipient shares, a JSON object; each request may carry its own.
    data: Mapped[str | None] = mapped_column(Text)
    # NULL: EMAIL_SENDER.
    sender: Mapped[str | None] = mapped_column(String(998))
    # JSON: a list of addresses; a list of [name, value] header pairs; of [name, value] tags.
    reply_to: Mapped[str | None] = mapped_column(Text)
    headers: Mapped[str | None] = mapped_column(Text)
    tags: Mapped[str | None] = mapped_column(Text)
    # The stored template version this content was copied from, if any.
    template_id: Mapped[int | None] = mapped_column(BigInteger)
    template_version: Mapped[int | None] = mapped_column(Integer)


class Attachment(Base):
    """A file sent with every email of one content: stored once, not once per recipient."""

    __tablename__ = "email_attachments"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    content_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("email_contents.id", ondelete="CASCADE"), index=True
    )
    position: Mapped[int] = mapped_column(Integer)
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(255))
    # Set for an inline part the HTML shows with `cid:<inline_id>`.
    inline_id: Mapped[str | None] = mapped_column(String(255))
    data: Mapped[bytes] = mapped_column(LargeBinary)
