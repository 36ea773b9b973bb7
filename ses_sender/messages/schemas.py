from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, StrictBool

# Documented in the README ("Limits"); each answers a 4xx naming the field when exceeded.
MAX_BODY_BYTES = 64 * 1024 * 1024
MAX_MESSAGES_PER_REQUEST = 1_000
MAX_TOPIC_ID_LENGTH = 255
MAX_SUBJECT_LENGTH = 998
MAX_CONTENT_BYTES = 10 * 1024 * 1024
MAX_IDEMPOTENCY_KEY_LENGTH = 255


class MessageIn(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    topic_id: str = Field("", alias="topicId")
    emails: list[str] = Field(default_factory=list)
    subject: str = ""
    content: str = ""
    scheduled_at: str | None = Field(None, alias="scheduledAt")
    # Whether its links are rewritten to count clicks; absent: TRACK_CLICKS decides.
    track_clicks: StrictBool | None = Field(None, alias="trackClicks")


class MessagesIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    messages: list[MessageIn] | None = None


class AcceptedMessageOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    topic_id: str = Field(alias="topicId")
    content_id: int = Field(alias="contentId")
    scheduled_at: datetime = Field(alias="scheduledAt")
    # requestIds[i] is the request for emails[i] as sent; a repeated address repeats its id.
    request_ids: list[int] = Field(alias="requestIds")
    duplicates: int


class MessagesAcceptedOut(BaseModel):
    count: int
    elapsed: str
    messages: list[AcceptedMessageOut]
