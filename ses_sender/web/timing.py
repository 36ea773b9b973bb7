"""How long each HTTP request takes, by route template: `/v1/topics/{topic_id:path}`, not the
path asked for, so a label never takes a topic id or a token and the series stay few."""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ses_sender import instruments

KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "unmatched"  # no route took the request (a 404 for an unknown path)


class RequestTiming:
    """Plain ASGI, not Starlette's BaseHTTPMiddleware, which runs every request in a task of
    its own: this one only reads the clock twice and looks at the response's start."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the server answers when the app raises before starting a response

        async def send_and_note_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self._app(scope, receive, send_and_note_status)
        finally:
            method = scope["method"] if scope["method"] in KNOWN_METHODS else "other"
            # The route the router matched, which it leaves in the scope; its path is the template.
            template = getattr(scope.get("route"), "path", None)
            instruments.HTTP_DURATION.labels(method, template or UNMATCHED, str(status)).observe(
                time.perf_counter() - started
            )
