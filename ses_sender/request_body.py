"""Reading a request body with a ceiling, without ever buffering more than the ceiling."""

from __future__ import annotations

from fastapi import Request

from ses_sender.errors import PayloadTooLarge


async def read_body(request: Request, limit: int) -> bytes:
    too_large = PayloadTooLarge(f"request body: at most {limit} bytes")
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise too_large
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise too_large
    return bytes(body)
