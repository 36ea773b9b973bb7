from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from ses_sender.models import SuppressionReason

# Documented in the README (API, suppressions); each answers a 4xx naming the field.
MAX_BODY_BYTES = 4 * 1024 * 1024
MAX_EMAILS_PER_REQUEST = 10_000
MAX_DETAIL_LENGTH = 1_000
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1_000


class SuppressionsIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    emails: list[str]
    reason: SuppressionReason = SuppressionReason.MANUAL
    detail: str | None = Field(None, max_length=MAX_DETAIL_LENGTH)


class SuppressionsAddedOut(BaseModel):
    added: int  # addresses newly suppressed
    existing: int  # addresses that were suppressed already (their reason is kept)


class SuppressionOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    email: str
    reason: str
    detail: str | None
    created_at: datetime = Field(alias="createdAt")


class SuppressionPageOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    suppressions: list[SuppressionOut]
    # Pass as `cursor` for the next page; null on the last page.
    next_cursor: str | None = Field(alias="nextCursor")
