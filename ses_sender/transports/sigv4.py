"""AWS Signature Version 4 for requests without a query string, the signing key cached per day.

Made for one service in one region (SES): the signing key depends only on the secret key and
the date, so it is derived once a day instead of four HMACs per request.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping
from typing import NamedTuple
from urllib.parse import quote

ALGORITHM = "AWS4-HMAC-SHA256"
_TIMESTAMP_FORMAT = "%Y%m%dT%H%M%SZ"


class SigningCredentials(NamedTuple):
    """The fields of botocore's `ReadOnlyCredentials`, which can be passed as is."""

    access_key: str
    secret_key: str
    token: str | None


class SigV4Signer:
    def __init__(self, region: str, service: str) -> None:
        self._region = region
        self._service = service
        self._key_for: tuple[str, str] | None = None  # (secret key, date) of `_key`
        self._key = b""

    def sign(
        self,
        method: str,
        host: str,
        path: str,
        headers: Mapping[str, str],
        body: bytes,
        credentials: SigningCredentials,
        *,
        now: float | None = None,
    ) -> dict[str, str]:
        """The headers to send: `headers` (all signed), Host, X-Amz-Date, X-Amz-Security-Token
        when the credentials are temporary, and Authorization.

        `host` is the Host header as sent: the port only when it is not the scheme's default.
        """
        timestamp = time.strftime(_TIMESTAMP_FORMAT, time.gmtime(now))
        signed = {"Host": host, **headers, "X-Amz-Date": timestamp}
        if credentials.token:
            signed["X-Amz-Security-Token"] = credentials.token
        # Names lower-cased and sorted, values trimmed with inner runs of spaces folded.
        canonical = sorted(
            (name.lower(), " ".join(value.split())) for name, value in signed.items()
        )
        signed_names = ";".join(name for name, _ in canonical)
        canonical_request = "\n".join(
            (
                method,
                quote(path, safe="/~"),
                "",  # no query string
                "".join(f"{name}:{value}\n" for name, value in canonical),
                signed_names,
                hashlib.sha256(body).hexdigest(),
            )
        )
        date = timestamp[:8]
        scope = f"{date}/{self._region}/{self._service}/aws4_request"
        string_to_sign = "\n".join(
            (ALGORITHM, timestamp, scope, hashlib.sha256(canonical_request.encode()).hexdigest())
        )
        key = self._signing_key(credentials.secret_key, date)
        signature = hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()
        signed["Authorization"] = (
            f"{ALGORITHM} Credential={credentials.access_key}/{scope}, "
            f"SignedHeaders={signed_names}, Signature={signature}"
        )
        return signed

    def _signing_key(self, secret_key: str, date: str) -> bytes:
        if self._key_for != (secret_key, date):
            key = f"AWS4{secret_key}".encode()
            for part in (date, self._region, self._service, "aws4_request"):
                key = hmac.digest(key, part.encode(), "sha256")
            self._key, self._key_for = key, (secret_key, date)
        return self._key
