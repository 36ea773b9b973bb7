"""Turn what SES (v2 API) answers into the `SendError` the queue acts on."""

from __future__ import annotations

import json

import aiohttp
from botocore.exceptions import (
    BotoCoreError,
    CredentialRetrievalError,
    NoCredentialsError,
    PartialCredentialsError,
)

from ses_sender.transports.base import (
    AccountPausedError,
    PermanentError,
    SendError,
    ThrottledError,
    TransientError,
)

# v2 throttles with 429 TooManyRequestsException; v1 and the generic AWS protocols use the others.
# LimitExceededException is in this set because botocore treats it as a throttle too; the daily
# quota variant is caught by its message first.
_THROTTLE_CODES = frozenset(
    {"TooManyRequestsException", "Throttling", "ThrottlingException", "LimitExceededException"}
)
_PAUSED_CODES = frozenset(
    {
        "SendingPausedException",
        "AccountSendingPausedException",
        "AccountSuspendedException",
        "ConfigurationSetSendingPausedException",
    }
)
_PERMANENT_CODES = frozenset(
    {
        "MessageRejected",
        "MailFromDomainNotVerifiedException",
        "ConfigurationSetDoesNotExist",
        "NotFoundException",
        "BadRequestException",
        "InvalidParameterValue",
    }
)
# SES reuses throttle codes for the rolling 24 h quota; retrying before the window frees is futile.
_DAILY_QUOTA_TEXT = "daily message quota exceeded"

# Missing or unusable credentials fail every send alike until someone fixes the configuration.
_CREDENTIAL_ERRORS = (NoCredentialsError, PartialCredentialsError, CredentialRetrievalError)
# Timeouts and dropped connections: SES may or may not have accepted the message.
_NETWORK_ERRORS = (aiohttp.ClientError, TimeoutError, OSError)


def classify_error_code(code: str, message: str, http_status: int | None) -> SendError:
    """Map one SES error reply (code from `x-amzn-ErrorType` or the body) to a `SendError`."""
    reason = f"{code}: {message}"
    if _DAILY_QUOTA_TEXT in message.lower():
        return AccountPausedError(reason)
    if code in _THROTTLE_CODES or http_status == 429:
        return ThrottledError(reason)
    if code in _PAUSED_CODES:
        return AccountPausedError(reason)
    if code in _PERMANENT_CODES:
        return PermanentError(reason)
    if http_status is not None and 400 <= http_status < 500:
        return PermanentError(reason)
    return TransientError(reason)


def classify_error_reply(status: int, error_type: str | None, body: bytes) -> SendError:
    """Classify an SES error reply, reading its code as botocore's restJson1 parser does.

    The code is the `x-amzn-ErrorType` header up to any ':', else the body's `code`, `Code` or
    `__type` (after any '#'), else the HTTP status; the message is the body's `message` or
    `Message`.
    """
    try:
        document = json.loads(body) if body else {}
    except ValueError:
        document = {}
    if not isinstance(document, dict):
        document = {}
    code = error_type or ""
    if not code:
        code = str(document.get("code") or document.get("Code") or "")
    if not code:
        code = str(document.get("__type") or "").rsplit("#", 1)[-1]
    code = code.split(":", 1)[0] or str(status)
    message = str(document.get("message") or document.get("Message") or "")
    return classify_error_code(code, message, status)


def classify_exception(exc: BaseException) -> SendError | None:
    """The `SendError` for an exception raised by an SES call, or None if it is not one of ours.

    None means a programming error, which must surface rather than be retried.
    """
    if isinstance(exc, SendError):
        return exc
    # A timeout raises a TimeoutError with no message.
    reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    if isinstance(exc, _CREDENTIAL_ERRORS):
        return AccountPausedError(reason)
    if isinstance(exc, (BotoCoreError, *_NETWORK_ERRORS)):
        return TransientError(reason)
    return None
