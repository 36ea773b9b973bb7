from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from ses_sender.db.base import Base, UtcDateTime


class TrustedTopic(Base):
    """An SNS topic whose messages count, recorded by `setup-aws` when it wires the topic.

    Amazon signs every customer's SNS messages with the same certificates, so a valid signature
    says only that a message came through SNS, not that it came from our account: the topic says
    that. `SNS_TOPIC_ARNS` names more; with neither, every message is refused.
    """

    __tablename__ = "sns_topics"

    # A topic name is at most 256 characters; with the ARN's prefix, under 320.
    arn: Mapped[str] = mapped_column(String(320), primary_key=True)
    recorded_by: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
