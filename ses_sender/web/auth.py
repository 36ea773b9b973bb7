"""API-key check: constant time, several keys for rotation, fail closed when none is set."""

from __future__ import annotations

import hashlib
import hmac

from fastapi import Request

from ses_sender.errors import Unauthorized


class ApiKeys:
    def __init__(self, keys: list[str]) -> None:
        # Compare fixed-length digests so neither the key's length nor its content leaks in time.
        self._digests = [hashlib.sha256(key.encode()).digest() for key in keys]

    def accepts(self, presented: str | None) -> bool:
        if presented is None or not self._digests:
            return False
        digest = hashlib.sha256(presented.encode()).digest()
        # Check every key, whichever matches, so the time does not say which one it was.
        matched = False
        for expected in self._digests:
            matched |= hmac.compare_digest(digest, expected)
        return matched


async def require_api_key(request: Request) -> None:
    keys: ApiKeys = request.app.state.api_keys
    if not keys.accepts(request.headers.get("x-api-key")):
        raise Unauthorized("Unauthorized: Invalid API key")
