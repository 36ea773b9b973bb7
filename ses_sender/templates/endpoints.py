from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from ses_sender.templates import service
from ses_sender.templates.schemas import (
    DEFAULT_PAGE_SIZE,
    MAX_BODY_BYTES,
    MAX_PAGE_SIZE,
    TemplateCreatedOut,
    TemplateIn,
    TemplateOut,
    TemplatePageOut,
)
from ses_sender.web.auth import require_api_key
from ses_sender.web.body import JsonBody
from ses_sender.web.dependencies import NowDep, SessionDep
from ses_sender.web.paths import MAX_VERSION, row_id

router = APIRouter(
    prefix="/v1/templates", tags=["templates"], dependencies=[Depends(require_api_key)]
)
TemplateId = Annotated[int, row_id("a template id")]

TemplateBody = Annotated[TemplateIn, Depends(JsonBody(TemplateIn, max_bytes=MAX_BODY_BYTES))]


@router.post("", status_code=201, response_model=TemplateCreatedOut)
async def create_template(
    body: TemplateBody, session: SessionDep, now: NowDep
) -> TemplateCreatedOut:
    """Store a template (version 1); its subject, content and text are checked as templates."""
    return await service.create_template(session, body, now=now)


@router.get("", response_model=TemplatePageOut)
async def list_templates(
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = DEFAULT_PAGE_SIZE,
    cursor: str | None = None,
) -> TemplatePageOut:
    """Templates in id order. Pass the answer's `nextCursor` as `cursor` for the next page."""
    return await service.list_templates(session, cursor=cursor, limit=limit)


@router.get("/{template_id}", response_model=TemplateOut)
async def get_template(
    template_id: TemplateId,
    session: SessionDep,
    version: Annotated[int | None, Query(ge=1, le=MAX_VERSION)] = None,
) -> TemplateOut:
    """A template's latest version, or the one `version` names."""
    return await service.get_template(session, template_id, version)


@router.put("/{template_id}", response_model=TemplateCreatedOut)
async def update_template(
    template_id: TemplateId, body: TemplateBody, session: SessionDep, now: NowDep
) -> TemplateCreatedOut:
    """Store the next version; messages already queued keep the version they were given."""
    return await service.update_template(session, template_id, body, now=now)


@router.delete("/{template_id}", status_code=204, response_class=Response)
async def delete_template(template_id: TemplateId, session: SessionDep) -> Response:
    """Delete a template and its versions; queued messages keep their own copy."""
    await service.delete_template(session, template_id)
    return Response(status_code=204)
