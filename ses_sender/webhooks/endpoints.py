from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Response
from fastapi.responses import JSONResponse

from ses_sender.web.auth import require_api_key
from ses_sender.web.body import JsonBody
from ses_sender.web.dependencies import NowDep, SessionDep
from ses_sender.webhooks import service
from ses_sender.webhooks.dependencies import AllowPrivateDep
from ses_sender.webhooks.schemas import MAX_BODY_BYTES, WebhookCreatedOut, WebhookIn, WebhooksOut

MAX_ID = 2**63 - 1  # BIGINT: a larger id would be the database's error, not a 404

router = APIRouter(prefix="/v1", tags=["webhooks"], dependencies=[Depends(require_api_key)])


WebhookBody = Annotated[WebhookIn, Depends(JsonBody(WebhookIn, max_bytes=MAX_BODY_BYTES))]


@router.post("/webhooks", status_code=201, response_model=WebhookCreatedOut)
async def create_webhook(
    body: WebhookBody, session: SessionDep, now: NowDep, allow_private: AllowPrivateDep
) -> JSONResponse:
    """Register an endpoint for our events; the answer holds its signing secret, shown once."""
    webhook = await service.create_webhook(session, body, now=now, allow_private=allow_private)
    return JSONResponse(
        service.describe_created(webhook).model_dump(mode="json", by_alias=True), status_code=201
    )


@router.get("/webhooks", response_model=WebhooksOut)
async def list_webhooks(session: SessionDep) -> WebhooksOut:
    """Every webhook, enabled or not (and why not); never the secrets."""
    return WebhooksOut(webhooks=await service.list_webhooks(session))


@router.delete("/webhooks/{webhook_id}", status_code=204)
async def delete_webhook(
    webhook_id: Annotated[int, Path(ge=1, le=MAX_ID)], session: SessionDep
) -> Response:
    """Remove it, with whatever was still queued for it."""
    await service.delete_webhook(session, webhook_id)
    return Response(status_code=204)
