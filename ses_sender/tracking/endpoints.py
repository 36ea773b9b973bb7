from __future__ import annotations

import base64
import logging

from fastapi import APIRouter, BackgroundTasks
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ses_sender.clock import Clock
from ses_sender.db import errors as database
from ses_sender.models import EventType
from ses_sender.stats import service as stats
from ses_sender.tracking import repository
from ses_sender.tracking.dependencies import TokensDep
from ses_sender.web.dependencies import ClockDep, SessionmakerDep
from ses_sender.webhooks.service import enqueue_event

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1/events", tags=["tracking"])

# The seed's 1x1 transparent PNG, byte for byte.
PIXEL_PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAAC0lEQVR4nGNgAAIAAAUAAXpeqz8AAAAASUVORK5CYII="
)
PIXEL_HEADERS = {"Cache-Control": "no-cache, no-store, must-revalidate"}


@router.get("/open", response_class=Response)
async def open_pixel(
    tokens: TokensDep,
    sessionmaker: SessionmakerDep,
    clock: ClockDep,
    background: BackgroundTasks,
    t: str = "",
) -> Response:
    """Always the pixel, at once; an open is recorded afterwards, and only for a genuine token."""
    request_id = tokens.open_request_id(t) if t else None
    if request_id is not None:
        background.add_task(_record_open, sessionmaker, clock, request_id)
    return Response(PIXEL_PNG, media_type="image/png", headers=PIXEL_HEADERS)


async def _record_open(
    sessionmaker: async_sessionmaker[AsyncSession], clock: Clock, request_id: int
) -> None:
    try:
        async with sessionmaker() as session, session.begin():
            now = clock.now()
            async with stats.counting(session, [request_id]):
                if not await repository.record_open(session, request_id, now=now):
                    log.info("open for unknown request %s ignored", request_id)
                    return
            await enqueue_event(
                session,
                event_type=EventType.OPEN,
                request_id=request_id,
                occurred_at=now,
                details={},
                now=now,
            )
    except Exception as error:
        # The pixel was already answered; losing one open must not surface as an error page.
        if database.is_outage(error):
            reason = database.describe(error)
            log.warning("an open was not recorded: database unavailable: %s", reason)
        else:
            log.exception("recording an open for request %s failed", request_id)
