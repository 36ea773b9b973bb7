from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

# Documented in the README ("Limits").
MAX_BODY_BYTES = 24 * 1024 * 1024
MAX_NAME_LENGTH = 255
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1_000


class TemplateIn(BaseModel):
    """The same field names as a message: `subject`, `content` (the HTML) and `text`."""

    model_config = ConfigDict(extra="ignore")

    name: str
    subject: str
    content: str
    text: str | None = None


class TemplateCreatedOut(BaseModel):
    id: int
    version: int


class TemplateOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    id: int
    name: str
    version: int
    subject: str
    content: str
    text: str | None
    created_at: datetime = Field(alias="createdAt")
    updated_at: datetime = Field(alias="updatedAt")


class TemplateSummaryOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    id: int
    name: str
    version: int
    updated_at: datetime = Field(alias="updatedAt")


class TemplatePageOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    templates: list[TemplateSummaryOut]
    # Pass as `cursor` for the next page; null on the last page.
    next_cursor: str | None = Field(alias="nextCursor")
