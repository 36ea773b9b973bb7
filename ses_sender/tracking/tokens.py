"""Tracking tokens: a recipient can hold one, nobody can make one up or read an id out of it.

Each token is the request id (a click's also names the link) sealed with AES-GCM under a key
derived from the tracking secret, the token's purpose bound in as associated data. Sealing (not
just signing) keeps our sequential ids, and with them our volumes, out of every link and pixel.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

OPEN_PURPOSE = b"open"
# A token is good for one purpose only: a pixel's token cannot unsubscribe anyone.
UNSUBSCRIBE_PURPOSE = b"unsubscribe"
CLICK_PURPOSE = b"click"
_NONCE_BYTES = 12
_ID_BYTES = 8
_TAG_BYTES = 16
# A click token: request and content ids in 6 bytes each (2**48 rows), the link's position in
# 2 and 4 bytes of its target's fingerprint; the link stays short (62 characters).
_CLICK_ID_BYTES = 6
_POSITION_BYTES = 2
_FINGERPRINT_BYTES = 4
_CLICK_BYTES = 2 * _CLICK_ID_BYTES + _POSITION_BYTES + _FINGERPRINT_BYTES
MAX_CLICK_ID = 2 ** (8 * _CLICK_ID_BYTES) - 1
# Longer than any token of ours: decoding a hostile megabyte is refused before it starts.
_MAX_TOKEN_CHARS = 128


@dataclass(frozen=True, slots=True)
class ClickToken:
    """What a click token names: which recipient's email, which content, which link in it, and
    a fingerprint of the link's target (so that a link found elsewhere is never followed)."""

    request_id: int
    content_id: int
    position: int
    fingerprint: int


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

    def for_click(self, click: ClickToken) -> str:
        payload = (
            click.request_id.to_bytes(_CLICK_ID_BYTES, "big")
            + click.content_id.to_bytes(_CLICK_ID_BYTES, "big")
            + click.position.to_bytes(_POSITION_BYTES, "big")
            + click.fingerprint.to_bytes(_FINGERPRINT_BYTES, "big")
        )
        return self._seal_bytes(CLICK_PURPOSE, payload)

    def click(self, token: str) -> ClickToken | None:
        """The link the token was made for, or None when it is not one of ours."""
        payload = self._unseal_bytes(CLICK_PURPOSE, token, _CLICK_BYTES)
        if payload is None:
            return None
        positions = (0, _CLICK_ID_BYTES, 2 * _CLICK_ID_BYTES, 2 * _CLICK_ID_BYTES + 2)
        request_id, content_id, position, fingerprint = (
            int.from_bytes(payload[start:end], "big")
            for start, end in zip(positions, (*positions[1:], _CLICK_BYTES), strict=True)
        )
        return ClickToken(request_id, content_id, position, fingerprint)

    def _seal(self, purpose: bytes, value: int) -> str:
        return self._seal_bytes(purpose, value.to_bytes(_ID_BYTES, "big"))

    def _unseal(self, purpose: bytes, token: str) -> int | None:
        value = self._unseal_bytes(purpose, token, _ID_BYTES)
        return None if value is None else int.from_bytes(value, "big")

    def _seal_bytes(self, purpose: bytes, payload: bytes) -> str:
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, payload, purpose)
        return base64.urlsafe_b64encode(nonce + sealed).decode().rstrip("=")

    def _unseal_bytes(self, purpose: bytes, token: str, size: int) -> bytes | None:
        if len(token) > _MAX_TOKEN_CHARS:
            return None
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (ValueError, binascii.Error):
            return None
        if len(raw) != _NONCE_BYTES + size + _TAG_BYTES:
            return None
        # The last character's spare bits are ignored by the decoder: only the one spelling we
        # issue is ours, so a token cannot be changed and still count.
        if base64.urlsafe_b64encode(raw).decode().rstrip("=") != token:
            return None
        try:
            return self._aead.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], purpose)
        except InvalidTag:
            return None
