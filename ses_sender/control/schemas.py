from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

MAX_CONTROL_BODY_BYTES = 4 * 1024
# Request ids are BIGINT.


class CamelModel(BaseModel):
    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)


class RescheduleIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    scheduled_at: str = Field(alias="scheduledAt")


class TopicCancelledOut(CamelModel):
    topic_id: str = Field(alias="topicId")
    # Were queued: now Stopped, never sent.
    cancelled: int
    # Were being sent at that moment: now Stopped; each that SES accepted becomes Sent when its
    # outcome is recorded; none is tried again.
    in_flight: int = Field(alias="inFlight")
    # Could not be cancelled: already finished.
    already_sent: int = Field(alias="alreadySent")
    already_failed: int = Field(alias="alreadyFailed")
    already_stopped: int = Field(alias="alreadyStopped")


class RequestCancelledOut(CamelModel):
    id: int
    status: int
    # cancelled: it was queued; cancelledInFlight: it was being sent (it becomes Sent if SES
    # accepted it, else stays Stopped); alreadyStopped: nothing to do.
    outcome: Literal["cancelled", "cancelledInFlight", "alreadyStopped"]


class TopicRetriedOut(CamelModel):
    topic_id: str = Field(alias="topicId")
    # Failed requests queued again, attempts counted afresh; 0 when none was Failed.
    requeued: int


class RequestRetriedOut(CamelModel):
    id: int
    status: int  # after the call: 0 Created when it was requeued
    requeued: int  # 1, or 0 when it was not Failed


class TopicPauseOut(CamelModel):
    topic_id: str = Field(alias="topicId")
    paused: bool
    paused_at: datetime | None = Field(alias="pausedAt")
    # Queued requests of the topic: held while it is paused.
    queued: int


class TopicRescheduledOut(CamelModel):
    topic_id: str = Field(alias="topicId")
    scheduled_at: datetime = Field(alias="scheduledAt")
    rescheduled: int
    paused: bool


class RequestSummaryOut(CamelModel):
    delivered_at: datetime | None = Field(alias="deliveredAt")
    bounced_at: datetime | None = Field(alias="bouncedAt")
    bounce_type: str | None = Field(alias="bounceType")
    complained_at: datetime | None = Field(alias="complainedAt")
    complaint_type: str | None = Field(alias="complaintType")
    rejected_at: datetime | None = Field(alias="rejectedAt")
    delayed_at: datetime | None = Field(alias="delayedAt")
    first_opened_at: datetime | None = Field(alias="firstOpenedAt")
    open_count: int = Field(alias="openCount")
    first_clicked_at: datetime | None = Field(alias="firstClickedAt")
    click_count: int = Field(alias="clickCount")
    unsubscribed_at: datetime | None = Field(alias="unsubscribedAt")


class RequestOut(CamelModel):
    id: int
    topic_id: str = Field(alias="topicId")
    content_id: int = Field(alias="contentId")
    to: str
    status: int
    status_name: str = Field(alias="statusName")
    topic_paused: bool = Field(alias="topicPaused")
    attempts: int
    error: str | None
    scheduled_at: datetime = Field(alias="scheduledAt")
    message_id: str | None = Field(alias="messageId")
    sent_at: datetime | None = Field(alias="sentAt")
    created_at: datetime = Field(alias="createdAt")
    updated_at: datetime = Field(alias="updatedAt")
    summary: RequestSummaryOut
