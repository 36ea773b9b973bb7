from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

from ses_sender.runtime import Runtime
from ses_sender.sending import service as sending

log = logging.getLogger(__name__)

router = APIRouter(tags=["operations"])

SERVICE_NAME = "aws-ses-sender"
DATABASE_CHECK_TIMEOUT_S = 2.0
UNKNOWN_SENDING_STATE: dict[str, object] = {"paused": None, "reasons": []}


@router.get("/health")
async def health(request: Request) -> JSONResponse:
    """Liveness and readiness: 200 when the database answers, 503 when it does not."""
    runtime: Runtime = request.app.state.runtime
    database = await _database_state(runtime)
    healthy = database == "ok"
    # Paused sending is reported, not unhealthy: the process is fine and must not be restarted.
    state = await _sending_state(runtime) if healthy else UNKNOWN_SENDING_STATE
    return JSONResponse(
        {
            "status": "ok" if healthy else "degraded",
            "service": SERVICE_NAME,
            "time": runtime.clock.now().strftime("%Y-%m-%dT%H:%M:%SZ"),
            "database": database,
            "transport": {"kind": runtime.transport.kind, "detail": runtime.transport.why},
            "sending": state,
        },
        status_code=200 if healthy else 503,
    )


async def _database_state(runtime: Runtime) -> str:
    try:
        async with (
            asyncio.timeout(DATABASE_CHECK_TIMEOUT_S),
            runtime.engine.connect() as connection,
        ):
            await connection.execute(text("SELECT 1"))
    except Exception as error:
        log.warning("health: database check failed: %s", error)
        return f"unavailable: {type(error).__name__}"
    return "ok"


async def _sending_state(runtime: Runtime) -> dict[str, object]:
    try:
        async with (
            asyncio.timeout(DATABASE_CHECK_TIMEOUT_S),
            runtime.sessionmaker() as session,
        ):
            state = await sending.sending_state(session, now=runtime.clock.now())
    except Exception as error:
        log.warning("health: reading the sending pauses failed: %s", error)
        return UNKNOWN_SENDING_STATE
    return state.model_dump()
