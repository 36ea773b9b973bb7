"""The HTTP application: routers and error handlers over a ready `Runtime`."""

from __future__ import annotations

from fastapi import FastAPI

from ses_sender.control.endpoints import router as control_router
from ses_sender.errors import install_error_handlers
from ses_sender.health.endpoints import router as health_router
from ses_sender.messages.endpoints import router as messages_router
from ses_sender.runtime import Runtime
from ses_sender.sending.endpoints import router as sending_router
from ses_sender.ses_events.endpoints import router as ses_events_router
from ses_sender.stats.endpoints import router as stats_router
from ses_sender.suppression.endpoints import router as suppression_router
from ses_sender.tracking.endpoints import router as tracking_router
from ses_sender.unsubscribe.endpoints import router as unsubscribe_router
from ses_sender.webhooks.endpoints import router as webhooks_router


def create_app(runtime: Runtime) -> FastAPI:
    app = FastAPI(
        title="ses-sender",
        summary="Sends email through Amazon SES and tracks what happened to every message.",
        version="0.1.0",
    )
    app.state.runtime = runtime
    app.state.api_keys = runtime.api_keys
    app.state.sessionmaker = runtime.sessionmaker
    install_error_handlers(app)
    for router in (
        health_router,
        messages_router,
        stats_router,
        control_router,
        tracking_router,
        ses_events_router,
        suppression_router,
        unsubscribe_router,
        webhooks_router,
        sending_router,
    ):
        app.include_router(router)
    return app
