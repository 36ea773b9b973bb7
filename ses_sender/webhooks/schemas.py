from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

MAX_BODY_BYTES = 64 * 1024
MAX_URL_LENGTH = 2_048
MAX_WEBHOOKS = 100


class WebhookIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    url: str
    # None: every event type (`EventType`).
    events: list[str] | None = None


class WebhookOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    id: int
    url: str
    events: list[str] | None
    enabled: bool
    disabled_reason: str | None = Field(alias="disabledReason")
    created_at: datetime = Field(alias="createdAt")


class WebhookCreatedOut(WebhookOut):
    #: Shown once, here: the key that signs every delivery.
    secret: str


class WebhooksOut(BaseModel):
    webhooks: list[WebhookOut]
