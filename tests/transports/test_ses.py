from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from ses_sender.transports.base import (
    AccountPausedError,
    PermanentError,
    ThrottledError,
    TransientError,
)
from ses_sender.transports.ses import MAX_HEADERS, SesTransport
from tests.support import ses_stub as stub_failures
from tests.support.moto_server import FAKE_AWS_ENV, REGION, MotoServer, free_port
from tests.support.ses_stub import SesStub

from .emails import RECIPIENT, SENDER, make_email

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

    async def test_max_send_rate_unknown_without_get_account(
        self, moto: MotoServer, make_transport: MakeTransport
    ) -> None:
        assert await make_transport(moto.url).get_max_send_rate() is None


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

    async def test_connection_refused_is_transient(self, make_transport: MakeTransport) -> None:
        transport = make_transport(f"http://127.0.0.1:{free_port()}")

        with pytest.raises(TransientError):
            await transport.send(make_email())

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

    async def test_max_send_rate_from_get_account(
        self, ses_stub: SesStub, make_transport: MakeTransport
    ) -> None:
        ses_stub.max_send_rate = 42.0

        assert await make_transport(ses_stub.url).get_max_send_rate() == 42.0

    async def test_concurrent_sends(self, ses_stub: SesStub, make_transport: MakeTransport) -> None:
        transport = make_transport(ses_stub.url, max_connections=4)
        recipients = [f"user{n}@example.net" for n in range(10)]

        ids = await asyncio.gather(*(transport.send(make_email(to=to)) for to in recipients))

        assert len(set(ids)) == len(recipients)
        assert sorted(record["to"][0] for record in ses_stub.accepted) == sorted(recipients)
