from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from ses_sender.health.dependencies import HealthDep
from ses_sender.web.auth import HasApiKey

router = APIRouter(tags=["operations"])


@router.get("/health")
async def health(health: HealthDep, details: HasApiKey) -> JSONResponse:
    """Liveness and readiness: 200 when the database answers, 503 when it does not.

    Anyone sees the status; the details (the database, the transport, paused sending, the
    trusted SNS topics) need the API key.
    """
    report = await health.report(details=details)
    return JSONResponse(report.body, status_code=200 if report.healthy else 503)
