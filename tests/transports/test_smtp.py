from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from ses_sender.config import SmtpSecurity
from ses_sender.transports.base import (
    AccountPausedError,
    PermanentError,
    SendError,
    ThrottledError,
    TransientError,
)
from ses_sender.transports.smtp import SmtpTransport, is_ses_smtp_host
from tests.support.emails import RECIPIENT, make_email
from tests.support.polling import wait_until
from tests.support.ports import HOST, free_port
from tests.support.smtp_server import PASSWORD, USERNAME, RecordingHandler, running_smtp_server
from tests.support.tls import TlsPair, loopback_tls

MakeTransport = Callable[..., SmtpTransport]


@pytest.fixture
def handler() -> RecordingHandler:
    return RecordingHandler()


@pytest.fixture
def smtp_port(handler: RecordingHandler) -> Iterator[int]:
    with running_smtp_server(handler) as port:
        yield port


@pytest.fixture
async def make_transport() -> AsyncIterator[MakeTransport]:
    transports: list[SmtpTransport] = []

    def make(port: int, **options: Any) -> SmtpTransport:
        options.setdefault("security", SmtpSecurity.NONE)
        options.setdefault("timeout_s", 5.0)
        transport = SmtpTransport(HOST, port, local_hostname="localhost", **options)
        transports.append(transport)
        return transport

    yield make
    for transport in transports:
        await transport.close()


def peers(handler: RecordingHandler) -> set[tuple[str, int]]:
    return {received.peer for received in handler.received}


async def test_a_relay_that_is_not_ses_gets_no_ses_headers(
    handler: RecordingHandler, smtp_port: int, make_transport: MakeTransport
) -> None:
    transport = make_transport(smtp_port, configuration_set="cs-main")

    await transport.send(make_email())

    [received] = handler.received
    assert b"X-SES-" not in received.data
    assert b"campaign=receipts" not in received.data  # the tags SES would have read


@pytest.mark.parametrize(
    ("host", "ses"),
    [
        ("email-smtp.us-east-1.amazonaws.com", True),
        ("email-smtp.eu-west-2.amazonaws.com", True),
        ("email-smtp-fips.us-gov-west-1.amazonaws.com", True),
        ("smtp.example.com", False),
        ("email-smtp.us-east-1.amazonaws.com.example.com", False),
        ("127.0.0.1", False),
    ],
)
def test_the_ses_smtp_interface_is_recognised_by_its_host(host: str, ses: bool) -> None:
    assert is_ses_smtp_host(host) is ses


async def test_message_arrives_whole(
    handler: RecordingHandler, smtp_port: int, make_transport: MakeTransport
) -> None:
    transport = make_transport(smtp_port, configuration_set="cs-main", ses_relay=True)

    message_id = await transport.send(make_email(subject="Grüße zu Bestellung #12345"))

    [received] = handler.received
    assert received.mail_from == "noreply@example.com"
    assert received.rcpt_tos == [RECIPIENT]
    assert b"Subject: =?utf-8?" in received.data  # RFC 2047 on the wire
    message = received.message()
    assert message["Subject"] == "Grüße zu Bestellung #12345"
    assert message["Message-ID"] == f"<{message_id}>"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["X-SES-MESSAGE-TAGS"] == "campaign=receipts, topic=orders"
    assert message["X-SES-CONFIGURATION-SET"] == "cs-main"
    assert message.get_content_type() == "multipart/alternative"
    text, html = (part.get_content() for part in message.iter_parts())
    assert text.splitlines() == ["Thanks for your order."]
    assert html.splitlines() == ["<p>Thanks for your order.</p>"]


async def test_ses_smtp_reply_gives_the_message_id_events_will_carry(
    handler: RecordingHandler, smtp_port: int, make_transport: MakeTransport
) -> None:
    """SES replaces our Message-ID and names its own in the reply to DATA."""
    handler.accepted_reply = "250 Ok 0100018c1a2b3c4d-5e6f7a8b-1c2d-4e5f-8a9b-0c1d2e3f4a5b-000000"
    transport = make_transport(smtp_port)

    message_id = await transport.send(make_email())

    assert message_id == "0100018c1a2b3c4d-5e6f7a8b-1c2d-4e5f-8a9b-0c1d2e3f4a5b-000000"


async def test_on_sent_is_called_once_before_the_server_has_the_message(
    handler: RecordingHandler, smtp_port: int, make_transport: MakeTransport
) -> None:
    received_when_called: list[int] = []

    await make_transport(smtp_port).send(
        make_email(), on_sent=lambda: received_when_called.append(len(handler.received))
    )

    assert received_when_called == [0]
    assert len(handler.received) == 1


async def test_sequential_sends_reuse_the_connection(
    handler: RecordingHandler, smtp_port: int, make_transport: MakeTransport
) -> None:
    transport = make_transport(smtp_port)

    for _ in range(3):
        await transport.send(make_email())

    assert len(handler.received) == 3
    assert len(peers(handler)) == 1


async def test_concurrent_sends_share_at_most_max_connections(
    handler: RecordingHandler, smtp_port: int, make_transport: MakeTransport
) -> None:
    transport = make_transport(smtp_port, max_connections=2)

    ids = await asyncio.gather(*(transport.send(make_email()) for _ in range(8)))

    assert len(set(ids)) == 8
    assert len(handler.received) == 8
    assert len(peers(handler)) <= 2


async def test_reconnects_after_the_server_closed_an_idle_connection(
    handler: RecordingHandler, smtp_port: int, make_transport: MakeTransport
) -> None:
    transport = make_transport(smtp_port)
    handler.drop_after_data = True
    await transport.send(make_email())

    async def close_seen() -> bool:
        return not any(smtp.is_connected for smtp in transport._idle)

    # The client sees the close while the connection is idle, before the next send.
    await wait_until(close_seen, "the client to see the server close the idle connection")

    await transport.send(make_email())

    assert len(handler.received) == 2
    assert len(peers(handler)) == 2


async def test_reconnects_when_mail_finds_the_connection_gone(
    handler: RecordingHandler, smtp_port: int, make_transport: MakeTransport
) -> None:
    transport = make_transport(smtp_port)
    await transport.send(make_email())
    handler.drop_on_mail = True  # a close the client could not have noticed before sending

    await transport.send(make_email())

    assert len(handler.received) == 2
    assert len(peers(handler)) == 2


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        ("550 5.1.1 Mailbox unavailable", PermanentError),
        ("554 Message rejected: Email address is not verified.", PermanentError),
        ("451 4.3.0 Try again later", TransientError),
        ("454 Throttling failure: Maximum sending rate exceeded.", ThrottledError),
        ("454 Throttling failure: Daily message quota exceeded.", AccountPausedError),
    ],
)
async def test_error_replies_are_classified_and_the_connection_survives(
    handler: RecordingHandler,
    smtp_port: int,
    make_transport: MakeTransport,
    reply: str,
    error: type[SendError],
) -> None:
    transport = make_transport(smtp_port)
    handler.data_replies.append(reply)

    with pytest.raises(error) as raised:
        await transport.send(make_email())
    await transport.send(make_email())

    assert raised.value.reason == reply
    assert len(handler.received) == 1


async def test_connection_refused_is_transient(make_transport: MakeTransport) -> None:
    with pytest.raises(TransientError):
        await make_transport(free_port()).send(make_email())


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsPair:
    return loopback_tls(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def starttls_port(handler: RecordingHandler, tls: TlsPair) -> Iterator[int]:
    with running_smtp_server(handler, tls_context=tls.server) as port:
        yield port


async def test_starttls_and_auth(
    handler: RecordingHandler, starttls_port: int, tls: TlsPair, make_transport: MakeTransport
) -> None:
    transport = make_transport(
        starttls_port,
        security=SmtpSecurity.STARTTLS,
        tls_context=tls.client,
        username=USERNAME,
        password=PASSWORD,
    )

    await transport.send(make_email())

    assert len(handler.received) == 1


async def test_bad_credentials_pause_the_account(
    starttls_port: int, tls: TlsPair, make_transport: MakeTransport
) -> None:
    transport = make_transport(
        starttls_port,
        security=SmtpSecurity.STARTTLS,
        tls_context=tls.client,
        username=USERNAME,
        password="wrong",
    )

    with pytest.raises(AccountPausedError):
        await transport.send(make_email())
