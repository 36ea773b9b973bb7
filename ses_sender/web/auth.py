"""API-key check: constant time, several keys for rotation, fail closed when none is set."""

from __future__ import annotations

import hashlib
import hmac
from typing import Annotated

from fastapi import Depends, Security
from fastapi.security import APIKeyHeader

from ses_sender.errors import Unauthorized
from ses_sender.web.provided import Provided


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


API_KEYS = Provided[ApiKeys]("API keys")
# A security scheme in the OpenAPI document; the check itself is ours (constant time, several
# keys), so a missing key is not FastAPI's own 403.
_KEY_HEADER = APIKeyHeader(
    name="x-api-key", auto_error=False, description="One of the keys in the API_KEY setting."
)


async def presents_api_key(
    keys: Annotated[ApiKeys, Depends(API_KEYS)],
    presented: Annotated[str | None, Security(_KEY_HEADER)],
) -> bool:
    return keys.accepts(presented)


async def require_api_key(accepted: Annotated[bool, Depends(presents_api_key)]) -> None:
    if not accepted:
        raise Unauthorized("Unauthorized: Invalid API key")


HasApiKey = Annotated[bool, Depends(presents_api_key)]
