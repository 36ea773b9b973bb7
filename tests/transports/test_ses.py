from __future__ import annotations

import asyncio
import datetime
import json
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from ses_sender.transports.base import (
    AccountPausedError,
    PermanentError,
    SendingLimits,
    ThrottledError,
    TransientError,
)
from ses_sender.transports.ses import MAX_HEADERS, SesTransport
from ses_sender.transports.sigv4 import SigningCredentials
from tests.support import ses_stub as stub_failures
from tests.support.emails import RECIPIENT, SENDER, make_email
from tests.support.moto_server import FAKE_AWS_ENV, REGION, MotoServer
from tests.support.ports import free_port
from tests.support.ses_stub import SesStub
from tests.support.sigv4_reference import botocore_headers

MakeTransport = Callable[..., SesTransport]


@pytest.fixture
async def make_transport() -> AsyncIterator[MakeTransport]:
    """Builds SesTransports with the fake credentials; closes them after the test."""
    transports: list[SesTransport] = []

    def make(endpoint_url: str | None, **options: Any) -> SesTransport:
        options.setdefault("timeout_s", 5.0)
        transport = SesTransport(
            REGION,
            access_key_id=FAKE_AWS_ENV["AWS_ACCESS_KEY_ID"],
            secret_access_key=FAKE_AWS_ENV["AWS_SECRET_ACCESS_KEY"],
            endpoint_url=endpoint_url,
            **options,
        )
        transports.append(transport)
        return transport

    yield make
    for transport in transports:
        await transport.close()


class TestAgainstMoto:
    async def test_unverified_sender_is_permanent(
        self, moto: MotoServer, make_transport: MakeTransport
    ) -> None:
        transport = make_transport(moto.url)

        with pytest.raises(PermanentError, match=r"^MessageRejected: "):
            await transport.send(make_email())

    async def test_verified_sender_is_sent(
        self, moto: MotoServer, make_transport: MakeTransport
    ) -> None:
        moto.verify_identity("noreply@example.com")
        transport = make_transport(moto.url)

        message_id = await transport.send(make_email())

        [sent] = moto.sent_messages()
        assert sent["id"] == message_id
        assert sent["source"] == SENDER
        assert sent["destinations"]["ToAddresses"] == [RECIPIENT]
        assert sent["subject"] == "Your receipt #12345"
        assert sent["body"] == "<p>Thanks for your order.</p>"  # moto keeps only the HTML part

    async def test_endpoint_from_environment(
        self, moto: MotoServer, make_transport: MakeTransport, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("AWS_ENDPOINT_URL_SESV2", moto.url)
        moto.verify_identity("example.com")
        transport = make_transport(None)

        await transport.send(make_email())

        assert len(moto.sent_messages()) == 1

    async def test_limits_unknown_without_get_account(
        self, moto: MotoServer, make_transport: MakeTransport
    ) -> None:
        assert await make_transport(moto.url).sending_limits() is None


class TestAgainstStub:
    async def test_everything_reaches_ses(
        self, ses_stub: SesStub, make_transport: MakeTransport
    ) -> None:
        transport = make_transport(ses_stub.url, configuration_set="cs-main")

        message_id = await transport.send(make_email())

        [record] = ses_stub.received
        assert record["message_id"] == message_id
        assert record["authorized"]
        assert record["from"] == SENDER
        assert record["to"] == [RECIPIENT]
        assert record["subject"] == "Your receipt #12345"
        assert record["text"] == "Thanks for your order."
        assert record["html"] == "<p>Thanks for your order.</p>"
        assert record["headers"] == [
            [
                "List-Unsubscribe",
                "<https://example.com/u/abc>, <mailto:unsub@example.com?subject=abc>",
            ],
            ["List-Unsubscribe-Post", "List-Unsubscribe=One-Click"],
        ]
        assert record["tags"] == {"campaign": "receipts", "topic": "orders"}
        assert record["configuration_set"] == "cs-main"

    async def test_no_configuration_set_unless_configured(
        self, ses_stub: SesStub, make_transport: MakeTransport
    ) -> None:
        await make_transport(ses_stub.url).send(make_email(headers=(), tags=()))

        [record] = ses_stub.received
        assert record["configuration_set"] is None
        assert record["headers"] == []
        assert record["tags"] == {}

    @pytest.mark.parametrize(
        ("failure", "error"),
        [
            (stub_failures.THROTTLED, ThrottledError),
            (stub_failures.REJECTED, PermanentError),
            (stub_failures.BAD_REQUEST, PermanentError),
            (stub_failures.SENDING_PAUSED, AccountPausedError),
            (stub_failures.ACCOUNT_SUSPENDED, AccountPausedError),
            (stub_failures.DAILY_QUOTA, AccountPausedError),
            (stub_failures.SERVER_ERROR, TransientError),
        ],
    )
    async def test_error_replies_are_classified_without_sdk_retries(
        self,
        ses_stub: SesStub,
        make_transport: MakeTransport,
        failure: stub_failures.Failure,
        error: type[Exception],
    ) -> None:
        ses_stub.fail_next(failure, times=3)

        with pytest.raises(error) as raised:
            await make_transport(ses_stub.url).send(make_email())

        assert str(raised.value) == f"{failure.code}: {failure.message}"
        assert len(ses_stub.received) == 1

    async def test_on_sent_is_called_once_the_request_is_out_long_before_the_reply(
        self, ses_stub: SesStub, make_transport: MakeTransport
    ) -> None:
        transport = make_transport(ses_stub.url)
        await transport.start()
        ses_stub.latency_s = 0.2
        called_at: list[float] = []

        await transport.send(make_email(), on_sent=lambda: called_at.append(time.time()))
        replied_at = time.time()

        [record] = ses_stub.accepted
        [sent_at] = called_at
        # After the stub's kernel had the request: lateness measured then is never understated.
        assert record["at"] <= sent_at < replied_at - 0.1

    async def test_connection_refused_is_transient(self, make_transport: MakeTransport) -> None:
        transport = make_transport(f"http://127.0.0.1:{free_port()}")
        called: list[bool] = []

        with pytest.raises(TransientError):
            await transport.send(make_email(), on_sent=lambda: called.append(True))

        assert called == []  # nothing went out

    async def test_slow_answer_is_transient_after_the_timeout(
        self, ses_stub: SesStub, make_transport: MakeTransport
    ) -> None:
        transport = make_transport(ses_stub.url, timeout_s=0.3)
        await transport.start()  # client creation is not part of the send timeout
        ses_stub.latency_s = 5.0
        started = time.monotonic()

        with pytest.raises(TransientError):
            await transport.send(make_email())

        assert time.monotonic() - started < 2.0

    async def test_too_many_headers_fail_before_any_request(
        self, ses_stub: SesStub, make_transport: MakeTransport
    ) -> None:
        headers = tuple((f"X-Extra-{n}", "1") for n in range(MAX_HEADERS + 1))

        with pytest.raises(PermanentError):
            await make_transport(ses_stub.url).send(make_email(headers=headers))

        assert ses_stub.received == []

    async def test_limits_from_get_account(
        self, ses_stub: SesStub, make_transport: MakeTransport
    ) -> None:
        await make_transport(ses_stub.url).send(make_email())
        ses_stub.max_send_rate = 42.0
        ses_stub.max_24_hour_send = 1_000.0
        ses_stub.sending_enabled = False

        limits = await make_transport(ses_stub.url).sending_limits()

        assert limits == SendingLimits(
            max_send_rate=42.0,
            max_24_hour_send=1_000.0,
            sent_last_24_hours=1.0,
            sending_enabled=False,
        )
        assert not limits.daily_quota_used

    async def test_concurrent_sends(self, ses_stub: SesStub, make_transport: MakeTransport) -> None:
        transport = make_transport(ses_stub.url, max_connections=4)
        recipients = [f"user{n}@example.net" for n in range(10)]

        ids = await asyncio.gather(*(transport.send(make_email(to=to)) for to in recipients))

        assert len(set(ids)) == len(recipients)
        assert sorted(record["to"][0] for record in ses_stub.accepted) == sorted(recipients)


@dataclass(frozen=True)
class Captured:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class CaptureServer:
    """Answers every request as SES would a good SendEmail, keeping what arrived as sent."""

    def __init__(self) -> None:
        self.requests: list[Captured] = []
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._capture)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _capture(self, request: web.Request) -> web.Response:
        self.requests.append(
            Captured(
                request.method,
                request.path,
                {name.lower(): value for name, value in request.headers.items()},
                await request.read(),
            )
        )
        return web.json_response({"MessageId": f"captured-{len(self.requests)}"})


@pytest.fixture
async def capture() -> AsyncIterator[CaptureServer]:
    server = CaptureServer()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def assert_signed_by(
    monkeypatch: pytest.MonkeyPatch,
    request: Captured,
    credentials: SigningCredentials,
    *,
    region: str = REGION,
) -> None:
    """The request verifies: botocore's signer, given what arrived, computes the same signature."""
    at = datetime.datetime.strptime(request.headers["x-amz-date"], "%Y%m%dT%H%M%SZ")
    content = {"Content-Type": request.headers["content-type"]} if request.body else {}
    expected = botocore_headers(
        monkeypatch,
        method=request.method,
        url=f"http://{request.headers['host']}{request.path}",
        headers=content,
        body=request.body,
        credentials=credentials,
        region=region,
        service="ses",
        at=at,
    )
    assert request.headers["authorization"] == expected["Authorization"]
    assert request.headers.get("x-amz-security-token") == credentials.token


class TestOnTheWire:
    async def test_signed_with_the_session_token(
        self, capture: CaptureServer, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        transport = SesTransport(
            REGION,
            access_key_id="AKIAEXAMPLE",
            secret_access_key="secret/key+1",
            session_token="session-token",
            endpoint_url=capture.url,
        )
        try:
            message_id = await transport.send(make_email())
            limits = await transport.sending_limits()
        finally:
            await transport.close()

        send, account = capture.requests
        assert message_id == "captured-1"
        # The capture server answers without a SendQuota: nothing known, sending not refused.
        assert limits == SendingLimits(None, None, 0.0, sending_enabled=True)
        assert (send.method, send.path) == ("POST", "/v2/email/outbound-emails")
        assert json.loads(send.body)["Destination"] == {"ToAddresses": [RECIPIENT]}
        assert (account.method, account.path, account.body) == ("GET", "/v2/email/account", b"")
        for request in (send, account):
            assert_signed_by(
                monkeypatch,
                request,
                SigningCredentials("AKIAEXAMPLE", "secret/key+1", "session-token"),
            )

    async def test_credentials_from_the_chain_are_refreshed_before_they_expire(
        self, capture: CaptureServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        """A credential_process whose credentials expire within botocore's refresh window: every
        send asks it again, and is signed with what it answered."""
        counter = tmp_path / "issued"
        script = tmp_path / "issue_credentials.py"
        script.write_text(ISSUE_CREDENTIALS.format(counter=str(counter)))
        config = tmp_path / "config"
        config.write_text(f"[default]\ncredential_process = {sys.executable} {script}\n")
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
            monkeypatch.delenv(name)
        monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
        transport = SesTransport(REGION, endpoint_url=capture.url)
        try:
            await transport.start()
            for _ in range(2):
                await transport.send(make_email())
        finally:
            await transport.close()

        keys = [_credential_key(request) for request in capture.requests]
        assert len(set(keys)) == 2
        assert int(counter.read_text()) > 2  # issued at start, then again for each send
        for request, key in zip(capture.requests, keys, strict=True):
            number = key.removeprefix("AKIAISSUED")
            assert_signed_by(
                monkeypatch,
                request,
                SigningCredentials(key, f"secret-{number}", f"token-{number}"),
            )

    async def test_no_credentials_pause_sending_before_any_request(
        self, capture: CaptureServer, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
            monkeypatch.delenv(name)
        transport = SesTransport(REGION, endpoint_url=capture.url)
        try:
            with pytest.raises(AccountPausedError, match="NoCredentialsError"):
                await transport.send(make_email())
        finally:
            await transport.close()

        assert capture.requests == []

    async def test_proxy_from_the_environment(
        self,
        capture: CaptureServer,
        make_transport: MakeTransport,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        monkeypatch.setenv("HTTP_PROXY", capture.url)  # the capture server plays the proxy

        await make_transport("http://email.ses.invalid").send(make_email())

        [request] = capture.requests
        assert request.headers["host"] == "email.ses.invalid"
        assert_signed_by(
            monkeypatch,
            request,
            SigningCredentials(
                FAKE_AWS_ENV["AWS_ACCESS_KEY_ID"], FAKE_AWS_ENV["AWS_SECRET_ACCESS_KEY"], None
            ),
        )


# Prints credentials that expire in 5 minutes, inside botocore's 10-minute mandatory refresh
# window, numbering each issue in a file.
ISSUE_CREDENTIALS = """\
import datetime, json, pathlib
counter = pathlib.Path({counter!r})
number = int(counter.read_text()) + 1 if counter.exists() else 1
counter.write_text(str(number))
expires = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(minutes=5)
print(json.dumps({{
    "Version": 1,
    "AccessKeyId": f"AKIAISSUED{{number}}",
    "SecretAccessKey": f"secret-{{number}}",
    "SessionToken": f"token-{{number}}",
    "Expiration": expires.isoformat(),
}}))
"""


def _credential_key(request: Captured) -> str:
    credential = request.headers["authorization"].split("Credential=", 1)[1]
    return credential.split("/", 1)[0]


class TestEndpoint:
    """Resolved as the AWS SDKs and CLI resolve it, without contacting it."""

    @pytest.mark.parametrize(
        ("environment", "given", "expected"),
        [
            ({}, None, "https://email.eu-central-1.amazonaws.com"),
            ({"AWS_ENDPOINT_URL": "http://all.example:1"}, None, "http://all.example:1"),
            (
                {
                    "AWS_ENDPOINT_URL": "http://all.example:1",
                    "AWS_ENDPOINT_URL_SESV2": "http://ses.example:2",
                },
                None,
                "http://ses.example:2",
            ),
            (
                {"AWS_ENDPOINT_URL_SESV2": "http://ses.example:2"},
                "http://given.example:3",
                "http://given.example:3",
            ),
            (
                {"AWS_USE_FIPS_ENDPOINT": "true"},
                None,
                "https://email-fips.eu-central-1.amazonaws.com",
            ),
        ],
    )
    async def test_endpoint(
        self,
        monkeypatch: pytest.MonkeyPatch,
        environment: dict[str, str],
        given: str | None,
        expected: str,
    ) -> None:
        for name, value in environment.items():
            monkeypatch.setenv(name, value)
        transport = SesTransport("eu-central-1", endpoint_url=given)
        try:
            await transport.start()

            assert transport.endpoint_url == expected
        finally:
            await transport.close()

    async def test_endpoint_from_the_config_file(
        self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        config = tmp_path / "config"
        config.write_text(
            "[default]\nservices = local\n\n"
            "[services local]\nsesv2 =\n  endpoint_url = http://configured.example:4\n"
        )
        monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
        transport = SesTransport("eu-central-1")
        try:
            await transport.start()

            assert transport.endpoint_url == "http://configured.example:4"
        finally:
            await transport.close()
