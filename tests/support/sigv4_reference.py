"""botocore's own SigV4 signer, as the reference ours is checked against."""

from __future__ import annotations

import datetime

import pytest
from botocore import auth as botocore_auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from ses_sender.transports.sigv4 import SigningCredentials


def botocore_headers(
    monkeypatch: pytest.MonkeyPatch,
    *,
    method: str,
    url: str,
    headers: dict[str, str],
    body: bytes,
    credentials: SigningCredentials,
    region: str,
    service: str,
    at: datetime.datetime,
) -> dict[str, str]:
    """What botocore's own SigV4 signer adds to the same request at the same moment."""
    monkeypatch.setattr(botocore_auth, "get_current_datetime", lambda *_args: at)
    request = AWSRequest(method=method, url=url, headers=headers, data=body)
    signer = botocore_auth.SigV4Auth(
        Credentials(credentials.access_key, credentials.secret_key, credentials.token),
        service,
        region,
    )
    signer.add_auth(request)
    return dict(request.headers.items())
