from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from ses_sender.models import SuppressionReason
from ses_sender.suppression import service
from ses_sender.suppression.schemas import (
    DEFAULT_PAGE_SIZE,
    MAX_BODY_BYTES,
    MAX_PAGE_SIZE,
    SuppressionPageOut,
    SuppressionsAddedOut,
    SuppressionsIn,
)
from ses_sender.web.auth import require_api_key
from ses_sender.web.body import JsonBody
from ses_sender.web.dependencies import NowDep, SessionDep

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


SuppressionsBody = Annotated[
    SuppressionsIn, Depends(JsonBody(SuppressionsIn, max_bytes=MAX_BODY_BYTES))
]


@router.post("", response_model=SuppressionsAddedOut)
async def add_suppressions(
    body: SuppressionsBody, session: SessionDep, now: NowDep
) -> SuppressionsAddedOut:
    """Suppress addresses, all or none; an address already suppressed keeps its reason."""
    return await service.add_suppressions(session, body, now=now)


@router.delete("/{email:path}", status_code=204, response_class=Response)
async def remove_suppression(email: str, session: SessionDep) -> Response:
    """Mail the address again (404 when it is not suppressed)."""
    await service.remove_suppression(session, email)
    return Response(status_code=204)
