from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ses_sender.db.base import Base, UtcDateTime


class Suppression(Base):
    """An address we must not mail again, and why."""

    __tablename__ = "suppressions"

    # The recipient key: the address with its domain lower-cased (see messages/addresses.py).
    email: Mapped[str] = mapped_column(String(320), primary_key=True)
    reason: Mapped[str] = mapped_column(
        String(32), index=True
    )  # bounce|complaint|unsubscribe|manual
    detail: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
