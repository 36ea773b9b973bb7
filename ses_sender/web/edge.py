"""What every HTTP exchange gets, whatever the route: `X-Content-Type-Options: nosniff` on
each answer, and a 400 for a path or query that holds NUL (no route could store it, and
PostgreSQL fails on it where SQLite would not)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ses_sender.text import NUL
from ses_sender.web.errors import error_response

_NOSNIFF = (b"x-content-type-options", b"nosniff")


class EdgeGuard:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_nosniff(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), _NOSNIFF]
            await send(message)

        if NUL in scope["path"] or b"%00" in scope["query_string"]:
            response = error_response(
                Request(scope), 400, "path and query: must not contain the NUL character"
            )
            await response(scope, receive, send_nosniff)
            return
        await self.app(scope, receive, send_nosniff)
