"""Signed tracking tokens: a recipient can hold one, nobody can make one up."""

from __future__ import annotations

from itsdangerous import BadSignature, Signer

OPEN_SALT = "ses-sender.open"


class TrackingTokens:
    def __init__(self, secret: str) -> None:
        self._open = Signer(secret, salt=OPEN_SALT, sep=".")

    def for_open(self, request_id: int) -> str:
        return self._open.sign(str(request_id)).decode()

    def open_request_id(self, token: str) -> int | None:
        """The request the token was made for, or None when it is not one of ours."""
        try:
            value = self._open.unsign(token.encode("ascii"))
        except (BadSignature, UnicodeEncodeError):
            return None
        return int(value) if value.isdigit() else None
