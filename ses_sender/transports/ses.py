"""Amazon SES v2 `SendEmail` through aiobotocore."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import AsyncExitStack, contextmanager
from typing import TYPE_CHECKING

from aiobotocore.config import AioConfig  # type: ignore[import-untyped]
from aiobotocore.session import get_session  # type: ignore[import-untyped]
from botocore.exceptions import ClientError

from ses_sender.transports.base import OutgoingEmail, PermanentError
from ses_sender.transports.errors import classify_exception

if TYPE_CHECKING:
    # Stub-only package (dev requirement): never imported at run time.
    from types_aiobotocore_sesv2 import SESV2Client
    from types_aiobotocore_sesv2.type_defs import SendEmailRequestTypeDef

MAX_HEADERS = 15  # SES rejects a Simple message with more custom headers than this
_UTF8 = "UTF-8"
# Status codes an SES-compatible endpoint (e.g. moto) answers for an operation it lacks.
_UNSUPPORTED_STATUSES = frozenset({404, 501})


class SesTransport:
    """Sends through the SES v2 API; one aiobotocore client per transport.

    The client is created on first use (or by `start()`), not in the constructor, because its
    aiohttp session belongs to the event loop that creates it and the composition root may run
    before the loop does. Creating it costs ~0.3 s CPU, so call `start()` at start-up to pay that
    (and surface a bad configuration) before the first email.
    """

    name: str = "ses"

    def __init__(
        self,
        region: str,
        *,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        session_token: str | None = None,
        endpoint_url: str | None = None,
        configuration_set: str | None = None,
        timeout_s: float = 30.0,
        max_connections: int = 10,
    ) -> None:
        if (access_key_id is None) != (secret_access_key is None):
            raise ValueError("give both access_key_id and secret_access_key, or neither")
        self._region = region
        self._access_key_id = access_key_id
        self._secret_access_key = secret_access_key
        self._session_token = session_token
        # None lets botocore resolve it, which honours AWS_ENDPOINT_URL(_SESV2).
        self._endpoint_url = endpoint_url
        self._configuration_set = configuration_set
        self._timeout_s = timeout_s
        self._config = AioConfig(
            connect_timeout=timeout_s,
            read_timeout=timeout_s,
            max_pool_connections=max_connections,
            # The queue owns retries: an SDK retry after a timeout can deliver the email twice.
            # total_max_attempts counts the first try; botocore's max_attempts=1 means one retry.
            retries={"total_max_attempts": 1, "mode": "standard"},
        )
        self._client: SESV2Client | None = None
        self._exit_stack: AsyncExitStack | None = None
        self._client_lock = asyncio.Lock()

    async def start(self) -> None:
        await self._ensure_client()

    async def send(self, email: OutgoingEmail) -> str:
        request = self._send_email_request(email)
        with _as_send_errors():
            client = await self._ensure_client()
            async with asyncio.timeout(self._timeout_s):
                response = await client.send_email(**request)
        return response["MessageId"]

    async def get_max_send_rate(self) -> float | None:
        """The account's `SendQuota.MaxSendRate` (recipients per second).

        None if the endpoint has no GetAccount (moto has none) or reports no positive rate.
        Other failures raise the same `SendError`s as `send`.
        """
        with _as_send_errors():
            client = await self._ensure_client()
            try:
                async with asyncio.timeout(self._timeout_s):
                    account = await client.get_account()
            except ClientError as exc:
                if exc.response["ResponseMetadata"].get("HTTPStatusCode") in _UNSUPPORTED_STATUSES:
                    return None
                raise
        rate = account.get("SendQuota", {}).get("MaxSendRate")
        return rate if rate is not None and rate > 0 else None

    async def close(self) -> None:
        async with self._client_lock:
            if self._exit_stack is not None:
                await self._exit_stack.aclose()
            self._exit_stack = None
            self._client = None

    async def _ensure_client(self) -> SESV2Client:
        async with self._client_lock:
            if self._client is None:
                self._client = await self._open_client()
            return self._client

    async def _open_client(self) -> SESV2Client:
        stack = AsyncExitStack()
        client: SESV2Client = await stack.enter_async_context(
            get_session().create_client(
                "sesv2",
                region_name=self._region,
                endpoint_url=self._endpoint_url,
                aws_access_key_id=self._access_key_id,
                aws_secret_access_key=self._secret_access_key,
                aws_session_token=self._session_token,
                config=self._config,
            )
        )
        self._exit_stack = stack
        return client

    def _send_email_request(self, email: OutgoingEmail) -> SendEmailRequestTypeDef:
        if len(email.headers) > MAX_HEADERS:
            raise PermanentError(
                f"TooManyHeaders: {len(email.headers)} headers, SES accepts at most {MAX_HEADERS}"
            )
        request: SendEmailRequestTypeDef = {
            "FromEmailAddress": email.sender,
            "Destination": {"ToAddresses": [email.to]},
            "Content": {
                "Simple": {
                    "Subject": {"Data": email.subject, "Charset": _UTF8},
                    "Body": {
                        "Text": {"Data": email.text, "Charset": _UTF8},
                        "Html": {"Data": email.html, "Charset": _UTF8},
                    },
                }
            },
        }
        # Sent only when present: an empty list is a needless difference from a plain send.
        if email.headers:
            request["Content"]["Simple"]["Headers"] = [
                {"Name": name, "Value": value} for name, value in email.headers
            ]
        if email.tags:
            request["EmailTags"] = [{"Name": name, "Value": value} for name, value in email.tags]
        if self._configuration_set is not None:
            request["ConfigurationSetName"] = self._configuration_set
        return request


@contextmanager
def _as_send_errors() -> Iterator[None]:
    """Re-raise SES, botocore and network failures as the `SendError` the queue understands."""
    try:
        yield
    except Exception as exc:
        error = classify_exception(exc)
        if error is None:
            raise
        raise error from exc
