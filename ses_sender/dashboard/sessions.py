"""Dashboard sessions: an API key, checked once at sign-in, becomes a signed cookie.

The cookie holds no key: it holds a keyed fingerprint of the key that signed in (so taking a
key out of API_KEY ends the sessions it opened) and the session's CSRF token, signed with a key
derived from the service's secret for this purpose only. It lasts `SESSION_MAX_AGE_S`. Nothing
is stored on the server: every replica reads every session.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from itsdangerous import BadSignature, URLSafeTimedSerializer

from ses_sender.web.auth import ApiKeys

SESSION_COOKIE = "ses_sender_session"
# The sign-in form's CSRF token, set with the form (double submit): there is no session yet.
SIGN_IN_COOKIE = "ses_sender_sign_in"
SESSION_MAX_AGE_S = 12 * 3600
SIGN_IN_MAX_AGE_S = 3600
COOKIE_PATH = "/dashboard"

_PURPOSE = b"ses-sender dashboard session v1"


def derive_key(secret: str, purpose: bytes) -> bytes:
    """A key for one purpose, from the service's secret: a cookie signature forged or leaked
    says nothing of the tracking tokens, and the other way round."""
    return hmac.new(secret.encode(), purpose, hashlib.sha256).digest()


@dataclass(frozen=True, slots=True)
class SignedIn:
    csrf_token: str


class DashboardSessions:
    def __init__(self, secret: str, api_keys: Sequence[str]) -> None:
        self._signing_key = derive_key(secret, _PURPOSE)
        self._serializer = URLSafeTimedSerializer(
            self._signing_key, salt="session", signer_kwargs={"digest_method": hashlib.sha256}
        )
        self._checker = ApiKeys(list(api_keys))
        self._key_ids = [self._key_id(key) for key in api_keys]

    def sign_in(self, presented: str) -> str | None:
        """The session cookie's value for a key of API_KEY; None for any other."""
        if not self._checker.accepts(presented):
            return None
        return self._serializer.dumps(
            {"key": self._key_id(presented), "csrf": secrets.token_urlsafe(32)}
        )

    def session(self, cookie: str | None) -> SignedIn | None:
        """The session a cookie carries, if it is ours, unexpired, and its key still valid."""
        if not cookie:
            return None
        try:
            data: Any = self._serializer.loads(cookie, max_age=SESSION_MAX_AGE_S)
        except BadSignature:  # also an expired one (SignatureExpired)
            return None
        if not isinstance(data, dict):
            return None
        key_id, csrf_token = data.get("key"), data.get("csrf")
        if not isinstance(key_id, str) or not isinstance(csrf_token, str):
            return None
        valid = False
        for known in self._key_ids:
            valid |= hmac.compare_digest(key_id, known)
        return SignedIn(csrf_token) if valid else None

    def _key_id(self, key: str) -> str:
        return hmac.new(self._signing_key, b"api key:" + key.encode(), hashlib.sha256).hexdigest()


def new_form_token() -> str:
    return secrets.token_urlsafe(32)


def tokens_match(expected: str | None, presented: str | None) -> bool:
    """A CSRF token check, in constant time."""
    if not expected or not presented:
        return False
    return hmac.compare_digest(expected.encode(), presented.encode())
