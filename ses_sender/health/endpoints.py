from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

from ses_sender.runtime import Runtime
from ses_sender.sending import service as sending
from ses_sender.ses_events.topics import TopicsUnavailable

log = logging.getLogger(__name__)

router = APIRouter(tags=["operations"])

SERVICE_NAME = "aws-ses-sender"
DATABASE_CHECK_TIMEOUT_S = 2.0
UNKNOWN_SENDING_STATE: dict[str, object] = {"paused": None, "reasons": []}


@router.get("/health")
async def health(request: Request) -> JSONResponse:
    """Liveness and readiness: 200 when the database answers, 503 when it does not.

    Anyone sees the status; the details (the database, the transport, paused sending, the
    trusted SNS topics) need the API key.
    """
    runtime: Runtime = request.app.state.runtime
    database = await _database_state(runtime)
    healthy = database == "ok"
    answer: dict[str, object] = {
        "status": "ok" if healthy else "degraded",
        "service": SERVICE_NAME,
        "time": runtime.clock.now().strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    if runtime.api_keys.accepts(request.headers.get("x-api-key")):
        answer |= {
            "database": database,
            "transport": {"kind": runtime.transport.kind, "detail": runtime.transport.why},
            # Paused sending is reported, not unhealthy: the process is fine, and a restart
            # would not help.
            "sending": await _sending_state(runtime) if healthy else UNKNOWN_SENDING_STATE,
            "sns": await _sns_state(runtime),
        }
    return JSONResponse(answer, status_code=200 if healthy else 503)


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


async def _sns_state(runtime: Runtime) -> dict[str, object]:
    """Which topics' messages count; with none, every SES event is refused."""
    try:
        trusted = runtime.topics.configured | await runtime.topics.recorded()
    except TopicsUnavailable as error:
        log.warning("health: reading the trusted SNS topics failed: %s", error)
        return {"accepting": None, "trustedTopics": sorted(runtime.topics.configured)}
    return {"accepting": bool(trusted), "trustedTopics": sorted(trusted)}
