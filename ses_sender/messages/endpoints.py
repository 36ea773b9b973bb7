from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Depends, Header
from fastapi.responses import JSONResponse

from ses_sender.delivery.dependencies import WakeupDep
from ses_sender.messages import service
from ses_sender.messages.dependencies import (
    IngestTurnDep,
    PublicBaseUrlDep,
    RecipientLimitDep,
    SenderPolicyDep,
    TrackClicksDep,
)
from ses_sender.messages.schemas import (
    MAX_BODY_BYTES,
    MessageIn,
    MessagesAcceptedOut,
    MessagesIn,
    PreviewOut,
)
from ses_sender.web.auth import require_api_key
from ses_sender.web.body import JsonBody, JsonDocument
from ses_sender.web.dependencies import ClockDep, SessionDep

router = APIRouter(prefix="/v1", tags=["messages"], dependencies=[Depends(require_api_key)])

MessagesBody = Annotated[
    JsonDocument[MessagesIn], Depends(JsonBody(MessagesIn, max_bytes=MAX_BODY_BYTES, raw=True))
]


@router.post("/messages", response_model=MessagesAcceptedOut)
async def create_messages(
    body: MessagesBody,
    _turn: IngestTurnDep,
    session: SessionDep,
    clock: ClockDep,
    max_recipients: RecipientLimitDep,
    senders: SenderPolicyDep,
    wakeup: WakeupDep,
    background: BackgroundTasks,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> JSONResponse:
    """Queue one email per recipient, all or nothing; safe to retry with an Idempotency-Key."""
    started = clock.monotonic()
    key = service.check_idempotency_key(idempotency_key)
    reply = await service.accept_messages(
        session,
        body.value,
        body_hash=service.body_fingerprint(body.raw),
        idempotency_key=key,
        now=clock.now(),
        max_recipients=max_recipients,
        senders=senders,
        elapsed=lambda: clock.monotonic() - started,
    )
    # After the response, so after the commit: an in-process worker looks at once.
    background.add_task(wakeup.notify)
    return JSONResponse(reply.body, status_code=reply.status_code)


MessageBody = Annotated[MessageIn, Depends(JsonBody(MessageIn, max_bytes=MAX_BODY_BYTES))]


@router.post("/messages/preview", response_model=PreviewOut)
async def preview_message(
    body: MessageBody,
    session: SessionDep,
    clock: ClockDep,
    senders: SenderPolicyDep,
    public_base_url: PublicBaseUrlDep,
    track_clicks: TrackClicksDep,
) -> PreviewOut:
    """One message, as `POST /v1/messages` takes one, for one recipient: the subject, HTML and
    text that recipient would get. Nothing is queued."""
    return await service.preview_message(
        session,
        body,
        now=clock.now(),
        senders=senders,
        public_base_url=public_base_url,
        track_clicks=track_clicks,
    )
