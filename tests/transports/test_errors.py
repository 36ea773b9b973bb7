from __future__ import annotations

import pytest

from ses_sender.transports.base import (
    AccountPausedError,
    PermanentError,
    SendError,
    ThrottledError,
    TransientError,
)
from ses_sender.transports.errors import classify_error_code, classify_error_reply
from ses_sender.transports.smtp import classify_smtp_reply


@pytest.mark.parametrize(
    ("code", "message", "status", "expected"),
    [
        ("TooManyRequestsException", "Maximum sending rate exceeded.", 429, ThrottledError),
        ("Throttling", "Maximum sending rate exceeded.", 400, ThrottledError),
        ("ThrottlingException", "Rate exceeded", 400, ThrottledError),
        ("LimitExceededException", "Too many instances", 400, ThrottledError),
        ("SomethingNew", "slow down", 429, ThrottledError),
        ("Throttling", "Daily message quota exceeded.", 400, AccountPausedError),
        ("LimitExceededException", "Daily message quota exceeded.", 400, AccountPausedError),
        ("SendingPausedException", "paused", 400, AccountPausedError),
        ("AccountSendingPausedException", "paused", 400, AccountPausedError),
        ("AccountSuspendedException", "suspended", 400, AccountPausedError),
        ("ConfigurationSetSendingPausedException", "paused", 400, AccountPausedError),
        ("MessageRejected", "Email address is not verified.", 400, PermanentError),
        ("MailFromDomainNotVerifiedException", "MX", 400, PermanentError),
        ("ConfigurationSetDoesNotExist", "cs", 400, PermanentError),
        ("NotFoundException", "nope", 404, PermanentError),
        ("BadRequestException", "bad", 400, PermanentError),
        ("InvalidParameterValue", "bad", 400, PermanentError),
        ("AccessDeniedException", "denied", 403, PermanentError),
        ("InternalFailure", "oops", 500, TransientError),
        ("ServiceUnavailable", "later", 503, TransientError),
        ("Unknown", "", None, TransientError),
    ],
)
def test_ses_error_codes(
    code: str, message: str, status: int | None, expected: type[SendError]
) -> None:
    error = classify_error_code(code, message, status)

    assert type(error) is expected
    assert error.reason == f"{code}: {message}"


@pytest.mark.parametrize(
    ("status", "error_type", "body", "reason", "expected"),
    [
        # The header wins, cut at ':' (AWS appends a documentation URL there).
        (
            429,
            "TooManyRequestsException:http://internal.amazon.com/coral/",
            b'{"message":"Maximum sending rate exceeded."}',
            "TooManyRequestsException: Maximum sending rate exceeded.",
            ThrottledError,
        ),
        (
            400,
            "MessageRejected",
            b'{"code":"Ignored","Message":"Email address is not verified."}',
            "MessageRejected: Email address is not verified.",
            PermanentError,
        ),
        # Without the header: the body's code, Code, then __type after its namespace.
        (
            400,
            None,
            b'{"code":"SendingPausedException"}',
            "SendingPausedException: ",
            AccountPausedError,
        ),
        (
            400,
            None,
            b'{"Code":"BadRequestException","message":"m"}',
            "BadRequestException: m",
            PermanentError,
        ),
        (
            400,
            None,
            b'{"__type":"com.amazonaws.sesv2#AccountSuspendedException","message":"m"}',
            "AccountSuspendedException: m",
            AccountPausedError,
        ),
        # Nothing to read: the HTTP status is the code.
        (503, None, b"<html>Service Unavailable</html>", "503: ", TransientError),
        (502, "", b"", "502: ", TransientError),
        (400, None, b'["not", "an", "object"]', "400: ", PermanentError),
    ],
)
def test_ses_error_replies(
    status: int, error_type: str | None, body: bytes, reason: str, expected: type[SendError]
) -> None:
    error = classify_error_reply(status, error_type, body)

    assert type(error) is expected
    assert error.reason == reason


@pytest.mark.parametrize(
    ("code", "message", "expected"),
    [
        (454, "Throttling failure: Maximum sending rate exceeded.", ThrottledError),
        (421, "Too many connections, rate limited", ThrottledError),
        (454, "Throttling failure: Daily message quota exceeded.", AccountPausedError),
        (454, "Temporary authentication failure", TransientError),
        (451, "Requested action aborted: local error", TransientError),
        (421, "Service not available, closing channel", TransientError),
        (550, "Mailbox unavailable", PermanentError),
        (554, "Message rejected", PermanentError),
    ],
)
def test_smtp_replies(code: int, message: str, expected: type[SendError]) -> None:
    assert type(classify_smtp_reply(code, message)) is expected
