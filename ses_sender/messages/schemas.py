from __future__ import annotations

from datetime import datetime
from typing import Any, NotRequired

from pydantic import BaseModel, ConfigDict, Field, StrictBool
from typing_extensions import TypedDict

from ses_sender.web.paths import RowId, Version

# Documented in the README ("Limits"); each answers a 4xx naming the field when exceeded.
MAX_BODY_BYTES = 64 * 1024 * 1024
MAX_MESSAGES_PER_REQUEST = 1_000
MAX_TOPIC_ID_LENGTH = 255
MAX_SUBJECT_LENGTH = 998
MAX_CONTENT_BYTES = 10 * 1024 * 1024
MAX_IDEMPOTENCY_KEY_LENGTH = 255


MAX_TEXT_BYTES = MAX_CONTENT_BYTES
MAX_REPLY_TO = 50
MAX_CUSTOM_HEADERS = 10  # with List-Unsubscribe and List-Unsubscribe-Post: SES's 15 at most
MAX_HEADER_VALUE_LENGTH = 998
MAX_TAGS = 10  # with our two: SES's 50 at most
MAX_ATTACHMENTS = 20
MAX_ATTACHMENT_BYTES = 10 * 1024 * 1024  # all of a message's attachments, decoded
MAX_FILENAME_LENGTH = 255
MAX_DATA_BYTES = 64 * 1024  # one recipient's data, or the message's shared data, as JSON


class RecipientIn(TypedDict):
    """A TypedDict, not a model: validated twice as fast, which counts at 100,000 recipients."""

    email: str
    data: NotRequired[dict[str, Any]]


class AttachmentIn(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    filename: str
    content_type: str = Field(alias="contentType")
    content: str  # base64
    # Set for an image the HTML shows inline with `cid:<contentId>`.
    content_id: str | None = Field(None, alias="contentId")


class MessageIn(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    topic_id: str = Field("", alias="topicId")
    emails: list[str] = Field(default_factory=list)
    subject: str = ""
    content: str = ""
    scheduled_at: str | None = Field(None, alias="scheduledAt")
    # Added to the seed's fields; any of the next four makes the message templated.
    recipients: list[RecipientIn] | None = None
    data: dict[str, Any] | None = None
    template_id: RowId | None = Field(None, alias="templateId")
    template_version: Version | None = Field(None, alias="templateVersion")
    text: str | None = None
    sender: str | None = Field(None, alias="from")
    reply_to: str | list[str] | None = Field(None, alias="replyTo")
    headers: dict[str, str] | None = None
    tags: dict[str, str] | None = None
    attachments: list[AttachmentIn] | None = None
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


class PreviewOut(BaseModel):
    subject: str
    content: str
    text: str


class MessagesAcceptedOut(BaseModel):
    count: int
    elapsed: str
    messages: list[AcceptedMessageOut]
