from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from ses_sender.auth import require_api_key
from ses_sender.db.session import SessionDep
from ses_sender.request_body import parse_json_body, read_body
from ses_sender.runtime import Runtime
from ses_sender.sending import service
from ses_sender.sending.schemas import MAX_RESUME_BODY_BYTES, ResumeIn, ResumeOut

router = APIRouter(prefix="/v1/sending", tags=["sending"], dependencies=[Depends(require_api_key)])


@router.post(
    "/resume",
    response_model=ResumeOut,
    openapi_extra={
        "requestBody": {
            "required": False,
            "content": {"application/json": {"schema": ResumeIn.model_json_schema()}},
        }
    },
)
async def resume_sending(request: Request, session: SessionDep) -> ResumeOut:
    """Lift every sending pause, or the one named in `{"name": ...}`; workers send again within
    a second. Idempotent: with nothing paused it lifts nothing and says so."""
    runtime: Runtime = request.app.state.runtime
    body = await read_body(request, MAX_RESUME_BODY_BYTES)
    wanted = parse_json_body(body, ResumeIn) if body.strip() else ResumeIn()
    resumed = await service.resume_sending(session, wanted.name)
    state = await service.sending_state(session, now=runtime.clock.now())
    return ResumeOut(resumed=resumed, sending=state)
