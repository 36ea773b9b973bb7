from __future__ import annotations

import calendar
import datetime
import json

import pytest

from ses_sender.transports.sigv4 import SigningCredentials, SigV4Signer
from tests.support.sigv4_reference import botocore_headers

# The AWS Signature Version 4 test suite's fixed inputs.
SUITE_CREDENTIALS = SigningCredentials(
    "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", None
)
SUITE_TIME = datetime.datetime(2015, 8, 30, 12, 36, 0)
SUITE_SCOPE = "AKIDEXAMPLE/20150830/us-east-1/service/aws4_request"

SES_HOST = "email.eu-west-1.amazonaws.com"
SES_BODY = json.dumps(
    {
        "FromEmailAddress": "News <news@example.com>",
        "Destination": {"ToAddresses": ["jane@example.net"]},
        "Content": {"Simple": {"Subject": {"Data": "Hello  there", "Charset": "UTF-8"}}},
    },
    separators=(",", ":"),
).encode()


def epoch(moment: datetime.datetime) -> float:
    return float(calendar.timegm(moment.timetuple()))


@pytest.mark.parametrize(
    ("method", "signature"),
    [
        # get-vanilla and post-vanilla from the AWS SigV4 test suite.
        ("GET", "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"),
        ("POST", "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"),
    ],
)
def test_aws_test_suite_vectors(method: str, signature: str) -> None:
    signer = SigV4Signer("us-east-1", "service")

    headers = signer.sign(
        method,
        "example.amazonaws.com",
        "/",
        {},
        b"",
        SUITE_CREDENTIALS,
        now=epoch(SUITE_TIME),
    )

    assert headers == {
        "Host": "example.amazonaws.com",
        "X-Amz-Date": "20150830T123600Z",
        "Authorization": f"AWS4-HMAC-SHA256 Credential={SUITE_SCOPE}, "
        f"SignedHeaders=host;x-amz-date, Signature={signature}",
    }


@pytest.mark.parametrize("token", [None, "FQoGZXIvYXdzEJr//////////wEaDOj0session+token=="])
@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/v2/email/outbound-emails", SES_BODY),
        ("GET", "/v2/email/account", b""),
        ("POST", "/prefix/with space/v2/email/outbound-emails", SES_BODY),
    ],
)
def test_matches_botocore_on_ses_requests(
    monkeypatch: pytest.MonkeyPatch, method: str, path: str, body: bytes, token: str | None
) -> None:
    credentials = SigningCredentials("AKIAEXAMPLE", "secret/with+symbols", token)
    content = {"Content-Type": "application/json"} if body else {}
    at = datetime.datetime(2026, 3, 1, 8, 15, 42)

    ours = SigV4Signer("eu-west-1", "ses").sign(
        method, SES_HOST, path, content, body, credentials, now=epoch(at)
    )

    expected = botocore_headers(
        monkeypatch,
        method=method,
        url=f"https://{SES_HOST}{path}",
        headers=content,
        body=body,
        credentials=credentials,
        region="eu-west-1",
        service="ses",
        at=at,
    )
    assert ours["Authorization"] == expected["Authorization"]
    assert ours.get("X-Amz-Security-Token") == token
    assert {name: value for name, value in ours.items() if name != "Host"} == expected


def test_host_with_port_is_signed_as_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    at = datetime.datetime(2026, 3, 1, 8, 15, 42)

    ours = SigV4Signer("us-east-1", "ses").sign(
        "POST", "127.0.0.1:4566", "/v2/email/outbound-emails", {}, b"{}", SUITE_CREDENTIALS,
        now=epoch(at),
    )  # fmt: skip

    expected = botocore_headers(
        monkeypatch,
        method="POST",
        url="http://127.0.0.1:4566/v2/email/outbound-emails",
        headers={},
        body=b"{}",
        credentials=SUITE_CREDENTIALS,
        region="us-east-1",
        service="ses",
        at=at,
    )
    assert ours["Authorization"] == expected["Authorization"]


def test_cached_signing_key_follows_the_day_and_the_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One signer across midnight and a credential rotation: every signature stays right."""
    signer = SigV4Signer("us-east-1", "ses")
    rotated = SigningCredentials("AKIANEW", "another-secret", "token")
    moments = [
        (datetime.datetime(2026, 3, 1, 23, 59, 59), SUITE_CREDENTIALS),
        (datetime.datetime(2026, 3, 2, 0, 0, 1), SUITE_CREDENTIALS),
        (datetime.datetime(2026, 3, 2, 0, 0, 2), rotated),
        (datetime.datetime(2026, 3, 2, 0, 0, 3), SUITE_CREDENTIALS),
    ]

    for at, credentials in moments:
        ours = signer.sign(
            "POST", SES_HOST, "/v2/email/outbound-emails", {}, SES_BODY, credentials,
            now=epoch(at),
        )  # fmt: skip

        expected = botocore_headers(
            monkeypatch,
            method="POST",
            url=f"https://{SES_HOST}/v2/email/outbound-emails",
            headers={},
            body=SES_BODY,
            credentials=credentials,
            region="us-east-1",
            service="ses",
            at=at,
        )
        assert ours["Authorization"] == expected["Authorization"], at
