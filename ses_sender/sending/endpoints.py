from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from ses_sender.sending import service
from ses_sender.sending.schemas import MAX_RESUME_BODY_BYTES, ResumeIn, ResumeOut
from ses_sender.web.auth import require_api_key
from ses_sender.web.body import JsonBody
from ses_sender.web.dependencies import NowDep, SessionDep

router = APIRouter(prefix="/v1/sending", tags=["sending"], dependencies=[Depends(require_api_key)])

ResumeBody = Annotated[
    ResumeIn, Depends(JsonBody(ResumeIn, max_bytes=MAX_RESUME_BODY_BYTES, required=False))
]


@router.post("/resume", response_model=ResumeOut)
async def resume_sending(body: ResumeBody, session: SessionDep, now: NowDep) -> ResumeOut:
    """Lift every sending pause, or the one named in `{"name": ...}`; workers send again within
    a second. Idempotent: with nothing paused it lifts nothing and says so."""
    resumed = await service.resume_sending(session, body.name)
    state = await service.sending_state(session, now=now)
    return ResumeOut(resumed=resumed, sending=state)
