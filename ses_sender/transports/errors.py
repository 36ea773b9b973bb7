"""Turn what SES (v2 API, via botocore) answers into the `SendError` the queue acts on."""

from __future__ import annotations

from typing import Any

import aiohttp
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    CredentialRetrievalError,
    NoCredentialsError,
    ParamValidationError,
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


def classify_client_error(error: Any) -> SendError:
    """Classify a botocore `ClientError` by the code, message and HTTP status it carries."""
    response = error.response
    details = response.get("Error", {})
    code = str(details.get("Code") or "Unknown")
    message = str(details.get("Message") or "")
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return classify_error_code(code, message, status if isinstance(status, int) else None)


def classify_exception(exc: BaseException) -> SendError | None:
    """The `SendError` for an exception raised by an SES call, or None if it is not one of ours.

    None means a programming error, which must surface rather than be retried.
    """
    if isinstance(exc, SendError):
        return exc
    if isinstance(exc, ClientError):
        return classify_client_error(exc)
    # asyncio.timeout() raises a TimeoutError with no message.
    reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    if isinstance(exc, ParamValidationError):
        return PermanentError(reason)
    if isinstance(exc, _CREDENTIAL_ERRORS):
        return AccountPausedError(reason)
    if isinstance(exc, (BotoCoreError, *_NETWORK_ERRORS)):
        return TransientError(reason)
    return None
