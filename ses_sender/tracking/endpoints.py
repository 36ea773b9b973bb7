from __future__ import annotations

import base64
import logging

from fastapi import APIRouter, BackgroundTasks, Request
from fastapi.responses import Response

from ses_sender.runtime import Runtime
from ses_sender.tracking import repository
from ses_sender.webhooks.service import enqueue_event

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1/events", tags=["tracking"])

# The seed's 1x1 transparent PNG, byte for byte.
PIXEL_PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAAC0lEQVR4nGNgAAIAAAUAAXpeqz8AAAAASUVORK5CYII="
)
PIXEL_HEADERS = {"Cache-Control": "no-cache, no-store, must-revalidate"}


@router.get("/open", response_class=Response)
async def open_pixel(request: Request, background: BackgroundTasks, t: str = "") -> Response:
    """Always the pixel, at once; an open is recorded afterwards, and only for a genuine token."""
    runtime: Runtime = request.app.state.runtime
    request_id = runtime.tokens.open_request_id(t) if t else None
    if request_id is not None:
        background.add_task(_record_open, runtime, request_id)
    return Response(PIXEL_PNG, media_type="image/png", headers=PIXEL_HEADERS)


async def _record_open(runtime: Runtime, request_id: int) -> None:
    try:
        async with runtime.sessionmaker() as session, session.begin():
            now = runtime.clock.now()
            if not await repository.record_open(session, request_id, now=now):
                log.info("open for unknown request %s ignored", request_id)
                return
            await enqueue_event(
                session,
                event_type="Open",
                request_id=request_id,
                occurred_at=now,
                details={},
                now=now,
            )
    except Exception:
        # The pixel was already answered; losing one open must not surface as an error page.
        log.exception("recording an open for request %s failed", request_id)
