from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from ses_sender.db.base import Base, UtcDateTime


class HealthCheck(Base):
    """The row `/health` writes, to know that the database takes writes (a full disk or a
    read-only database still answers reads)."""

    __tablename__ = "health_checks"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    checked_at: Mapped[datetime] = mapped_column(UtcDateTime)
    # Counts up on every check, so that each one changes the row: SQLite skips writing a row
    # rewritten with the same bytes, and a full disk would go unseen.
    checks: Mapped[int] = mapped_column(BigInteger)
