"""Amazon SES v2 `SendEmail` and `GetAccount` over aiohttp, signed with our own SigV4 signer.

Why not the SDK for the requests: its per-call layers (user-agent building, parameter
validation, serialisation, event hooks) took most of the worker's CPU per email; see
docs/decisions/0001-ses-client-aiohttp-sigv4.md.

The SDK still does what it does once, at start: the standard credential chain (refreshed before
it expires, without blocking the loop), the endpoint exactly as the AWS tools resolve it
(AWS_ENDPOINT_URL_SESV2, AWS_ENDPOINT_URL, the config file's services section, FIPS, partitions)
and the CA bundle (AWS_CA_BUNDLE).
"""

from __future__ import annotations

import asyncio
import base64
import ssl
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson
from aiobotocore.session import get_session  # type: ignore[import-untyped]
from aiohttp.abc import AbstractStreamWriter
from aiohttp.helpers import get_env_proxy_for_url
from botocore.exceptions import NoCredentialsError
from yarl import URL

from ses_sender.transports.base import (
    OutgoingEmail,
    PermanentError,
    SendError,
    SendingLimits,
    TransientError,
)
from ses_sender.transports.errors import classify_error_reply, classify_exception
from ses_sender.transports.mime import build_message
from ses_sender.transports.sigv4 import SigV4Signer

MAX_HEADERS = 15  # SES rejects a Simple message with more custom headers than this
SEND_EMAIL_PATH = "/v2/email/outbound-emails"
GET_ACCOUNT_PATH = "/v2/email/account"
_UTF8 = "UTF-8"
_JSON_CONTENT = {"Content-Type": "application/json"}
_NO_HEADERS: dict[str, str] = {}
# Status codes an SES-compatible endpoint (e.g. moto) answers for an operation it lacks.
_UNSUPPORTED_STATUSES = frozenset({404, 501})
_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True, slots=True)
class _Connection:
    """What `start()` resolves once; everything a request needs."""

    base_url: str  # the endpoint without a trailing slash
    host: str  # the Host header, as signed
    base_path: str  # the endpoint's own path, if it has one, before every request's path
    signer: SigV4Signer
    credentials: Any  # aiobotocore's credentials (refreshable or not), None if none were found
    session: aiohttp.ClientSession
    proxy: str | None
    proxy_headers: dict[str, str] | None


@dataclass(frozen=True, slots=True)
class _Reply:
    status: int
    error_type: str | None  # the x-amzn-ErrorType header
    body: bytes

    def document(self) -> dict[str, Any]:
        """The JSON object of a 2xx reply; raises the `SendError` of any other."""
        if not 200 <= self.status < 300:
            raise classify_error_reply(self.status, self.error_type, self.body)
        try:
            document = orjson.loads(self.body)
        except orjson.JSONDecodeError:
            document = None
        if not isinstance(document, dict):
            raise TransientError(f"HTTP {self.status} with a body that is not a JSON object")
        return document


class SesTransport:
    """Sends through the SES v2 API: one attempt per email, the queue owns retries.

    The HTTP session is created on first use (or by `start()`), not in the constructor, because
    it belongs to the event loop that creates it and the composition root may run before the
    loop does. Call `start()` at start-up to resolve the endpoint and credentials (and surface
    a bad configuration) before the first email.
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
        self._max_connections = max_connections
        self._connection: _Connection | None = None
        self._connection_lock = asyncio.Lock()

    @property
    def endpoint_url(self) -> str | None:
        """Where requests go, once `start()` (or the first request) has resolved it."""
        return None if self._connection is None else self._connection.base_url

    async def start(self) -> None:
        await self._connect()

    async def send(self, email: OutgoingEmail, *, on_sent: Callable[[], None] | None = None) -> str:
        # orjson: json.dumps of this body was a visible share of the worker's CPU, growing with
        # the email (docs/decisions/0002-orjson-request-bodies.md).
        body = orjson.dumps(self._send_email_request(email))
        with _as_send_errors():
            reply = await self._request("POST", SEND_EMAIL_PATH, body, on_sent)
            message_id = reply.document().get("MessageId")
        if not isinstance(message_id, str):
            raise TransientError(f"HTTP {reply.status} without a MessageId")
        return message_id

    async def sending_limits(self) -> SendingLimits | None:
        """The account's quota and state from `GetAccount`.

        None if the endpoint has no GetAccount (moto has none). Failures raise the same
        `SendError`s as `send`.
        """
        with _as_send_errors():
            reply = await self._request("GET", GET_ACCOUNT_PATH, b"")
            if reply.status in _UNSUPPORTED_STATUSES:
                return None
            account = reply.document()
        quota = account.get("SendQuota") or {}
        return SendingLimits(
            max_send_rate=_positive(quota.get("MaxSendRate")),
            # SES reports an unlimited daily quota as -1.
            max_24_hour_send=_positive(quota.get("Max24HourSend")),
            sent_last_24_hours=_positive(quota.get("SentLast24Hours")) or 0.0,
            sending_enabled=account.get("SendingEnabled") is not False,
        )

    async def close(self) -> None:
        async with self._connection_lock:
            if self._connection is not None:
                await self._connection.session.close()
            self._connection = None

    async def _request(
        self,
        method: str,
        path: str,
        body: bytes,
        on_sent: Callable[[], None] | None = None,
    ) -> _Reply:
        """One signed request, one attempt; `on_sent` is called once its body is written."""
        connection = self._connection or await self._connect()
        credentials = connection.credentials
        if credentials is None:
            raise NoCredentialsError()
        headers = connection.signer.sign(
            method,
            connection.host,
            connection.base_path + path,
            _JSON_CONTENT if body else _NO_HEADERS,
            body,
            # Refreshable credentials renew themselves here when they near expiry.
            await credentials.get_frozen_credentials(),
        )
        data: bytes | aiohttp.BytesPayload | None = body or None
        if body and on_sent is not None:
            data = _ReportedBody(body, on_sent)
        async with connection.session.request(
            method,
            connection.base_url + path,
            data=data,
            headers=headers,
            proxy=connection.proxy,
            proxy_headers=connection.proxy_headers,
        ) as response:
            return _Reply(
                response.status, response.headers.get("x-amzn-ErrorType"), await response.read()
            )

    async def _connect(self) -> _Connection:
        async with self._connection_lock:
            if self._connection is None:
                self._connection = await self._resolve()
            return self._connection

    async def _resolve(self) -> _Connection:
        session = get_session()
        if self._access_key_id is not None:
            session.set_credentials(
                self._access_key_id, self._secret_access_key, self._session_token
            )
        # An SDK client, made and closed again, is the one exact source for the endpoint.
        async with session.create_client(
            "sesv2", region_name=self._region, endpoint_url=self._endpoint_url
        ) as client:
            base_url = str(client.meta.endpoint_url).rstrip("/")
            signing_name = str(client.meta.service_model.signing_name)
        credentials = await session.get_credentials()
        # cafile=None: the default trust store, which OpenSSL takes from SSL_CERT_FILE if set.
        ssl_context = ssl.create_default_context(cafile=session.get_config_variable("ca_bundle"))
        http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self._max_connections, ssl=ssl_context),
            timeout=aiohttp.ClientTimeout(total=self._timeout_s),
            cookie_jar=aiohttp.DummyCookieJar(),  # SES sets none; filtering it cost every send
        )
        proxy, proxy_headers = _proxy_from_environment(base_url)
        return _Connection(
            base_url=base_url,
            host=_host_header(base_url),
            base_path=urlsplit(base_url).path,
            signer=SigV4Signer(self._region, signing_name),
            credentials=credentials,
            session=http,
            proxy=proxy,
            proxy_headers=proxy_headers,
        )

    def _send_email_request(self, email: OutgoingEmail) -> dict[str, Any]:
        request: dict[str, Any] = {
            "FromEmailAddress": email.sender,
            "Destination": {"ToAddresses": [email.to]},
        }
        if email.attachments:
            # Attachments go as the same MIME the other transports send: one message builder
            # for every transport, and SES takes Raw content from every compatible endpoint.
            raw = build_message(email).data  # tags go in the API call
            request["Content"] = {"Raw": {"Data": base64.b64encode(raw).decode()}}
        else:
            request["Content"] = {"Simple": self._simple_content(email)}
            if email.reply_to:
                request["ReplyToAddresses"] = list(email.reply_to)
        # Sent only when present: an empty list is a needless difference from a plain send.
        if email.tags:
            request["EmailTags"] = [{"Name": name, "Value": value} for name, value in email.tags]
        if self._configuration_set is not None:
            request["ConfigurationSetName"] = self._configuration_set
        return request

    def _simple_content(self, email: OutgoingEmail) -> dict[str, Any]:
        if len(email.headers) > MAX_HEADERS:
            raise PermanentError(
                f"TooManyHeaders: {len(email.headers)} headers, SES accepts at most {MAX_HEADERS}"
            )
        simple: dict[str, Any] = {
            "Subject": {"Data": email.subject, "Charset": _UTF8},
            "Body": {
                "Text": {"Data": email.text, "Charset": _UTF8},
                "Html": {"Data": email.html, "Charset": _UTF8},
            },
        }
        if email.headers:
            simple["Headers"] = [{"Name": name, "Value": value} for name, value in email.headers]
        return simple


def _positive(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and value > 0 else None


class _ReportedBody(aiohttp.BytesPayload):
    """A request body that calls `on_sent` once it has been handed to the socket.

    After the write, not before it: lateness measured then bounds what SES sees from above, with
    nothing between the measurement and the request leaving that could hold the request back
    unseen. `write_with_length` is the method aiohttp writes every payload with.
    """

    def __init__(self, body: bytes, on_sent: Callable[[], None]) -> None:
        super().__init__(body, content_type=_JSON_CONTENT["Content-Type"])
        self._on_sent: Callable[[], None] | None = on_sent

    async def write_with_length(
        self, writer: AbstractStreamWriter, content_length: int | None
    ) -> None:
        await super().write_with_length(writer, content_length)
        if (on_sent := self._on_sent) is not None:
            self._on_sent = None  # once, should aiohttp ever write the body again
            on_sent()


def _host_header(base_url: str) -> str:
    """The Host header aiohttp sends for this URL: the port only when it is not the default."""
    parts = urlsplit(base_url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"  # IPv6
    if parts.port is not None and parts.port != _DEFAULT_PORTS.get(parts.scheme):
        host = f"{host}:{parts.port}"
    return host


def _proxy_from_environment(url: str) -> tuple[str | None, dict[str, str] | None]:
    """The proxy HTTP(S)_PROXY and NO_PROXY give for the endpoint, as the SDK honours them.

    Read once: aiohttp's `trust_env` reads them (and ~/.netrc) on every request, in a thread,
    which cost two thread round trips per email.
    """
    try:
        proxy, auth = get_env_proxy_for_url(URL(url))
    except LookupError:
        return None, None
    return str(proxy), None if auth is None else {"Proxy-Authorization": auth.encode()}


@contextmanager
def _as_send_errors() -> Iterator[None]:
    """Re-raise SES, credential and network failures as the `SendError` the queue understands."""
    try:
        yield
    except SendError:
        raise
    except Exception as exc:
        error = classify_exception(exc)
        if error is None:
            raise
        raise error from exc
