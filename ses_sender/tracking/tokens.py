"""Tracking tokens: a recipient can hold one, nobody can make one up or read an id out of it.

Each token is the request id sealed with AES-GCM under a key derived from the tracking secret,
the token's purpose bound in as associated data. Sealing (not just signing) keeps our
sequential ids, and with them our volumes, out of every link and pixel.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

OPEN_PURPOSE = b"open"
# A token is good for one purpose only: a pixel's token cannot unsubscribe anyone.
UNSUBSCRIBE_PURPOSE = b"unsubscribe"
_NONCE_BYTES = 12
_ID_BYTES = 8
_TAG_BYTES = 16
_TOKEN_BYTES = _NONCE_BYTES + _ID_BYTES + _TAG_BYTES


class TrackingTokens:
    def __init__(self, secret: str) -> None:
        key = hashlib.sha256(b"ses-sender tracking tokens v1\0" + secret.encode()).digest()
        self._aead = AESGCM(key)

    def for_open(self, request_id: int) -> str:
        return self._seal(OPEN_PURPOSE, request_id)

    def open_request_id(self, token: str) -> int | None:
        """The request the token was made for, or None when it is not one of ours."""
        return self._unseal(OPEN_PURPOSE, token)

    def for_unsubscribe(self, request_id: int) -> str:
        return self._seal(UNSUBSCRIBE_PURPOSE, request_id)

    def unsubscribe_request_id(self, token: str) -> int | None:
        """The request whose recipient the token may unsubscribe, or None when not ours."""
        return self._unseal(UNSUBSCRIBE_PURPOSE, token)

    def _seal(self, purpose: bytes, value: int) -> str:
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, value.to_bytes(_ID_BYTES, "big"), purpose)
        return base64.urlsafe_b64encode(nonce + sealed).decode().rstrip("=")

    def _unseal(self, purpose: bytes, token: str) -> int | None:
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (ValueError, binascii.Error):
            return None
        if len(raw) != _TOKEN_BYTES:
            return None
        try:
            value = self._aead.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], purpose)
        except InvalidTag:
            return None
        return int.from_bytes(value, "big")
