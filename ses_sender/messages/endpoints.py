from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Depends, Header, Request
from fastapi.responses import JSONResponse

from ses_sender.auth import require_api_key
from ses_sender.db.session import SessionDep
from ses_sender.messages import service
from ses_sender.messages.schemas import MAX_BODY_BYTES, MessagesAcceptedOut, MessagesIn
from ses_sender.request_body import parse_json_body, read_body
from ses_sender.runtime import Runtime

router = APIRouter(prefix="/v1", tags=["messages"], dependencies=[Depends(require_api_key)])


@router.post(
    "/messages",
    response_model=MessagesAcceptedOut,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": MessagesIn.model_json_schema()}},
        }
    },
)
async def create_messages(
    request: Request,
    session: SessionDep,
    background: BackgroundTasks,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> JSONResponse:
    """Queue one email per recipient, all or nothing; safe to retry with an Idempotency-Key."""
    runtime: Runtime = request.app.state.runtime
    started = runtime.clock.monotonic()
    body = await read_body(request, MAX_BODY_BYTES)
    key = service.check_idempotency_key(idempotency_key)
    reply = await service.accept_messages(
        session,
        parse_json_body(body, MessagesIn),
        body_hash=service.body_fingerprint(body),
        idempotency_key=key,
        now=runtime.clock.now(),
        max_recipients=runtime.settings.max_recipients_per_request,
        elapsed=lambda: runtime.clock.monotonic() - started,
    )
    # After the response, so after the commit: an in-process worker looks at once.
    background.add_task(runtime.wake_worker)
    return JSONResponse(reply.body, status_code=reply.status_code)
