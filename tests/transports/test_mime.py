from __future__ import annotations

from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest

from ses_sender.transports.base import OutgoingEmail, PermanentError
from ses_sender.transports.mime import build_message, new_message_id
from tests.support.emails import make_email

LONG_URL = "<https://mail.example.com/u/" + "t" * 120 + ">"


def parse(data: bytes) -> EmailMessage:
    return message_from_bytes(data, policy=policy.default)


def body_lines(data: bytes) -> list[bytes]:
    return data.split(b"\r\n\r\n", 1)[1].split(b"\r\n")


def test_non_ascii_subject_and_body_round_trip() -> None:
    email = make_email(
        sender="Bäckerei Müller <shop@example.com>",
        subject="Ihre Bestellung — Grüße aus Köln",
        text="Schöne Grüße\n",
        html="<p>Schöne Grüße</p>\n",
    )

    built = build_message(email)

    message = parse(built.data)
    assert built.data.isascii()
    assert message["Subject"] == email.subject
    assert message["From"] == email.sender
    text, html = (part.get_content() for part in message.iter_parts())
    assert text.splitlines() == ["Schöne Grüße"]
    assert html.splitlines() == ["<p>Schöne Grüße</p>"]


def test_lines_stay_within_limits() -> None:
    email = make_email(
        subject="Über " * 40,
        html="<p>" + "ä" * 2000 + "</p>",
        text="x" * 2000,
        headers=(("List-Unsubscribe", LONG_URL),),
    )

    data = build_message(email).data

    assert all(len(line) <= 998 for line in data.split(b"\r\n"))
    assert all(len(line) <= 78 for line in body_lines(data))
    assert b"\n" not in data.replace(b"\r\n", b"")  # CRLF only, as SMTP wants


def test_long_structured_header_stays_literal() -> None:
    data = build_message(make_email(headers=(("List-Unsubscribe", LONG_URL),))).data

    assert f"List-Unsubscribe: {LONG_URL}\r\n".encode() in data


def test_message_id_is_on_the_sender_domain_and_unique() -> None:
    first = build_message(make_email())
    second = build_message(make_email())

    assert first.message_id.endswith("@example.com")
    assert first.message_id != second.message_id
    assert parse(first.data)["Message-ID"] == f"<{first.message_id}>"


def test_message_id_never_takes_odd_characters_from_the_sender() -> None:
    assert new_message_id("x@exa/mple.com").endswith("@localhost")


def test_ses_headers_only_when_there_is_something_to_say() -> None:
    message = parse(build_message(make_email(tags=())).data)

    assert "X-SES-MESSAGE-TAGS" not in message
    assert "X-SES-CONFIGURATION-SET" not in message


@pytest.mark.parametrize(
    "header",
    [
        ("X-Injected", "a\r\nBcc: victim@example.org"),
        ("Bad Name", "x"),
        ("Subject", "a second subject"),
        ("Content-Type", "text/plain"),
    ],
)
def test_unusable_headers_are_permanent(header: tuple[str, str]) -> None:
    email: OutgoingEmail = make_email(headers=(header,))

    with pytest.raises(PermanentError):
        build_message(email)
