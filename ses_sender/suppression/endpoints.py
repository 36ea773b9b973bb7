from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from ses_sender.auth import require_api_key
from ses_sender.db.session import SessionDep
from ses_sender.models import SuppressionReason
from ses_sender.request_body import parse_json_body, read_body
from ses_sender.runtime import Runtime
from ses_sender.suppression import service
from ses_sender.suppression.schemas import (
    DEFAULT_PAGE_SIZE,
    MAX_BODY_BYTES,
    MAX_PAGE_SIZE,
    SuppressionPageOut,
    SuppressionsAddedOut,
    SuppressionsIn,
)

router = APIRouter(
    prefix="/v1/suppressions", tags=["suppressions"], dependencies=[Depends(require_api_key)]
)


@router.get("", response_model=SuppressionPageOut)
async def list_suppressions(
    session: SessionDep,
    email: str | None = None,
    reason: SuppressionReason | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = DEFAULT_PAGE_SIZE,
    cursor: str | None = None,
) -> SuppressionPageOut:
    """Suppressed addresses in address order, optionally one address or one reason.

    Pass the answer's `nextCursor` as `cursor` for the next page; it is null on the last.
    """
    return await service.list_suppressions(
        session, email=email, reason=reason, cursor=cursor, limit=limit
    )


@router.post(
    "",
    response_model=SuppressionsAddedOut,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": SuppressionsIn.model_json_schema()}},
        }
    },
)
async def add_suppressions(request: Request, session: SessionDep) -> SuppressionsAddedOut:
    """Suppress addresses, all or none; an address already suppressed keeps its reason."""
    runtime: Runtime = request.app.state.runtime
    body = parse_json_body(await read_body(request, MAX_BODY_BYTES), SuppressionsIn)
    return await service.add_suppressions(session, body, now=runtime.clock.now())


@router.delete("/{email:path}", status_code=204, response_class=Response)
async def remove_suppression(email: str, session: SessionDep) -> Response:
    """Mail the address again (404 when it is not suppressed)."""
    await service.remove_suppression(session, email)
    return Response(status_code=204)
