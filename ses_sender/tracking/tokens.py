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
import threading
from collections.abc import Sequence
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
# Nonces read from the operating system at a time: one read serves many emails' tokens.
_NONCE_BATCH = 256
_URL_SAFE = bytes.maketrans(b"+/", b"-_")


class _Nonces:
    """Fresh random nonces, read from the operating system in batches, each handed out once
    (a lock keeps threads from taking the same one). A forked child starts without any, so
    it never hands out one its parent does."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._batch = b""
        self._taken = 0

    def take(self, count: int) -> bytes:
        """`count` nonces, one after another."""
        size = count * _NONCE_BYTES
        with self._lock:
            if self._taken + size > len(self._batch):
                self._batch = os.urandom(max(count, _NONCE_BATCH) * _NONCE_BYTES)
                self._taken = 0
            start, self._taken = self._taken, self._taken + size
            return self._batch[start : self._taken]

    def forget(self) -> None:
        self._lock = threading.Lock()  # a thread of the parent may have held it
        self._batch = b""
        self._taken = 0


_NONCES = _Nonces()
os.register_at_fork(after_in_child=_NONCES.forget)


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
        [token] = self.for_clicks(
            click.request_id, click.content_id, [(click.position, click.fingerprint)]
        )
        return token

    def for_clicks(
        self, request_id: int, content_id: int, links: Sequence[tuple[int, int]]
    ) -> list[str]:
        """The click tokens of one email's links, each given as its position and fingerprint."""
        if not links:
            return []
        email = request_id.to_bytes(_CLICK_ID_BYTES, "big") + content_id.to_bytes(
            _CLICK_ID_BYTES, "big"
        )
        nonces = _NONCES.take(len(links))
        encrypt = self._aead.encrypt
        tokens = []
        for at, (position, fingerprint) in enumerate(links):
            nonce = nonces[at * _NONCE_BYTES : (at + 1) * _NONCE_BYTES]
            payload = (
                email
                + position.to_bytes(_POSITION_BYTES, "big")
                + fingerprint.to_bytes(_FINGERPRINT_BYTES, "big")
            )
            tokens.append(_text(nonce + encrypt(nonce, payload, CLICK_PURPOSE)))
        return tokens

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
        nonce = _NONCES.take(1)
        return _text(nonce + self._aead.encrypt(nonce, payload, purpose))

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


def _text(raw: bytes) -> str:
    """`raw` in unpadded URL-safe base64 (`base64.urlsafe_b64encode`, in fewer steps)."""
    return binascii.b2a_base64(raw, newline=False).translate(_URL_SAFE).rstrip(b"=").decode()
