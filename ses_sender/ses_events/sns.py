"""Authenticate the messages Amazon SNS POSTs to our HTTPS endpoint.

The endpoint calls `parse_envelope(body)`, then `SnsVerifier.verify(envelope)`, then acts on the
returned `SnsMessage`. The two errors ask for different answers:

* `SnsVerificationError`: the message is malformed, forged, stale or not from a topic of ours.
  Answer 4xx; SNS does not redeliver it.
* `SnsTransientError`: it could not be verified now (the signing certificate or a SubscribeURL
  could not be fetched, the trusted topics could not be read). That is our problem, not the
  sender's: answer 5xx so SNS redelivers it later.

How SNS signs its messages, by AWS:
https://docs.aws.amazon.com/sns/latest/dg/sns-verify-signature-of-message.html
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import re
import ssl
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, Literal, TypeAlias, cast
from urllib.parse import urlsplit

import aiohttp
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from ses_sender.ses_events.schemas import MAX_MESSAGE_ID_LENGTH
from ses_sender.ses_events.topics import TopicsUnavailable, TrustedTopics
from ses_sender.sns_regions import regional_sns_hosts, topic_sns_host
from ses_sender.text import NUL
from ses_sender.web.body import load_json

MessageType: TypeAlias = Literal[
    "Notification", "SubscriptionConfirmation", "UnsubscribeConfirmation"
]
Fetch: TypeAlias = Callable[[str], Awaitable[bytes]]

DEFAULT_MAX_AGE: Final = timedelta(hours=1)  # SNS stops retrying HTTP/S after 3,600 s
MAX_CLOCK_SKEW: Final = timedelta(minutes=5)
FETCH_TIMEOUT: Final = 10.0  # seconds; SNS itself gives up on us after 15 s
MAX_FETCH_BYTES: Final = 64 * 1024  # a signing certificate is about 2 KiB
# Certificates fetched but not yet proven by a message from a topic of ours: the churn anyone
# can cause with made-up URLs. Proven ones are kept apart and never evicted.
UNPROVEN_CERTIFICATES: Final = 64  # entries
FAILURE_TTL: Final = 30.0  # seconds a failed certificate fetch is remembered
# Fetches of certificate URLs not seen before: a burst of this many, then this many a minute.
# AWS signs with one certificate per region and replaces it rarely.
NEW_CERTIFICATE_FETCHES: Final = 3
NEW_CERTIFICATE_PERIOD_S: Final = 60.0

# The certificate file AWS names in SigningCertURL: 32 hexadecimal digits, as in every message
# AWS has been seen to sign (tests/support/vectors/sns).
_CERTIFICATE_PATH: Final = re.compile(r"/SimpleNotificationService-[0-9a-f]{32}\.pem")
# Printable ASCII without space and backslash. Whitespace, control characters and backslashes are
# where URL parsers disagree (urllib silently drops tabs and newlines), so such URLs are refused.
_URL_CHARACTERS: Final = re.compile(r"[!-\[\]-~]+")

# The keys covered by the signature, in signing order; only "Subject" may be absent.
_NOTIFICATION_KEYS: Final = ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")
_CONFIRMATION_KEYS: Final = (
    "Message",
    "MessageId",
    "SubscribeURL",
    "Timestamp",
    "Token",
    "TopicArn",
    "Type",
)
_SIGNED_KEYS: Final[dict[str, tuple[str, ...]]] = {
    "Notification": _NOTIFICATION_KEYS,
    "SubscriptionConfirmation": _CONFIRMATION_KEYS,
    "UnsubscribeConfirmation": _CONFIRMATION_KEYS,
}
_OPTIONAL_KEYS: Final = frozenset({"Subject"})
_SIGNATURE_KEYS: Final = ("SignatureVersion", "Signature", "SigningCertURL")

# Envelopes relayed by AWS Lambda spell these keys differently (as does AWS's PHP validator).
_LAMBDA_SPELLINGS: Final = {
    "SigningCertUrl": "SigningCertURL",
    "SubscribeUrl": "SubscribeURL",
    "UnsubscribeUrl": "UnsubscribeURL",
}

_SIGNATURE_HASHES: Final[dict[str, Callable[[], hashes.HashAlgorithm]]] = {
    "1": hashes.SHA1,  # SHA1withRSA: the protocol's version 1 and the topic default
    "2": hashes.SHA256,
}


class SnsVerificationError(Exception):
    """The message is not an authentic, fresh SNS message for us (answer 4xx)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class SnsTransientError(Exception):
    """The message could not be verified now; transient (answer 5xx). `reason` is for the log:
    it may name hosts and proxies the sender must not see."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class SnsFetchError(SnsTransientError):
    """A certificate or SubscribeURL could not be fetched."""


@dataclass(frozen=True, slots=True)
class SnsMessage:
    """The signed fields of a verified message; unsigned fields are never copied here."""

    type: MessageType
    message_id: str
    topic_arn: str
    #: Byte-exact as sent; for SES events a JSON document (see `schemas.parse_ses_event`).
    message: str
    timestamp: datetime
    #: Notifications only.
    subject: str | None = None
    #: Subscription/UnsubscribeConfirmation only.
    subscribe_url: str | None = None
    token: str | None = None


def parse_envelope(body: bytes) -> dict[str, Any]:
    """Decode a raw POST body (SNS sends JSON as text/plain) and check its keys."""
    try:
        document = load_json(body)
    # The body is unauthenticated at this point: anything but bounded JSON is a 4xx.
    except ValueError:
        raise SnsVerificationError("body is not UTF-8 JSON") from None
    if not isinstance(document, dict):
        raise SnsVerificationError("body is not a JSON object")
    return _normalise_envelope(document)


_SNS_HOSTNAMES: Final = frozenset(regional_sns_hosts().values())


def is_trusted_sns_url(url: str) -> bool:
    """True for an https URL on an Amazon SNS regional host, and nothing that could pass for one."""
    if not _URL_CHARACTERS.fullmatch(url):
        return False
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        return False
    return (
        parts.scheme == "https"
        and "@" not in parts.netloc
        and port in (None, 443)
        and parts.hostname is not None
        and parts.hostname in _SNS_HOSTNAMES
    )


def is_trusted_cert_url(url: str) -> bool:
    """An SNS host's SimpleNotificationService-<32 hex digits>.pem, spelt the one way AWS spells
    it: https://<host>/<file>, the host in lower case, without port, userinfo, query or fragment.
    Another spelling of the same URL (HTTPS://, SNS.US-EAST-1..., :443) is refused rather than
    fetched: each would otherwise spend a fetch of the new-URL budget and a place in the cache."""
    parts = urlsplit(url)
    return (
        is_trusted_sns_url(url)
        and url == f"https://{parts.hostname}{parts.path}"
        and _CERTIFICATE_PATH.fullmatch(parts.path) is not None
    )


def load_public_key(pem: bytes) -> RSAPublicKey:
    """The RSA key of a PEM certificate.

    Expiry is not checked: trust comes from fetching over TLS from an SNS host, and AWS's own
    published test messages are signed with a certificate that expired in 2022.
    """
    certificate = x509.load_pem_x509_certificate(pem)
    key = certificate.public_key()
    if not isinstance(key, RSAPublicKey):
        raise ValueError("the signing certificate does not hold an RSA key")
    return key


@dataclass(frozen=True, slots=True)
class _Failure:
    retry_at: float
    reason: str


class CertificateStore:
    """Public keys of signing certificates, fetched once per URL.

    The store fetches whatever URL it is given: deciding which URLs are trustworthy is the
    verifier's job, done before the store is asked. What it bounds is the cost: URLs it has not
    seen are fetched at most `NEW_CERTIFICATE_FETCHES` a `NEW_CERTIFICATE_PERIOD_S`, and a key
    that has verified a message from a topic of ours (`prove`) is kept for good, apart from the
    fetched-but-unproven ones that made-up URLs can churn through.
    """

    def __init__(
        self,
        fetch: Fetch,
        *,
        max_unproven: int = UNPROVEN_CERTIFICATES,
        failure_ttl: float = FAILURE_TTL,
        new_fetches: int = NEW_CERTIFICATE_FETCHES,
        new_fetch_period_s: float = NEW_CERTIFICATE_PERIOD_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch
        self._max_unproven = max_unproven
        self._failure_ttl = failure_ttl
        self._clock = clock
        self._proven: dict[str, RSAPublicKey] = {}
        self._unproven: OrderedDict[str, RSAPublicKey] = OrderedDict()
        self._failures: OrderedDict[str, _Failure] = OrderedDict()
        self._pending: dict[str, asyncio.Task[RSAPublicKey]] = {}
        self._new_fetches = _TokenBucket(new_fetches, new_fetch_period_s, clock)

    def seed(self, url: str, pem: bytes) -> None:
        """Preload a certificate, trusted as proven (tests, or a host without egress)."""
        self._proven[url] = load_public_key(pem)

    def prove(self, url: str) -> None:
        """The key at `url` verified a message from a topic of ours: keep it for good."""
        key = self._unproven.pop(url, None)
        if key is not None:
            self._proven[url] = key

    async def public_key(self, url: str) -> RSAPublicKey:
        key = self._proven.get(url) or self._unproven.get(url)
        if key is not None:
            return key
        failure = self._failures.get(url)
        if failure is not None:
            if self._clock() < failure.retry_at:
                raise SnsFetchError(failure.reason)
            del self._failures[url]
        task = self._pending.get(url)
        if task is None:
            if not self._new_fetches.take():
                raise SnsFetchError("too many new signing certificate URLs; try again later")
            task = asyncio.create_task(self._load(url), name=f"fetch signing certificate {url}")
            self._pending[url] = task
        # Shielded: a caller that goes away must not cancel the fetch other callers wait for.
        return await asyncio.shield(task)

    async def _load(self, url: str) -> RSAPublicKey:
        try:
            key = load_public_key(await self._fetch(url))
        except Exception as exc:
            reason = f"signing certificate unavailable: {_describe(exc)}"
            self._remember_failure(url, reason)
            raise SnsFetchError(reason) from exc
        finally:
            del self._pending[url]
        self._failures.pop(url, None)
        self._unproven[url] = key
        while len(self._unproven) > self._max_unproven:
            self._unproven.popitem(last=False)
        return key

    def _remember_failure(self, url: str, reason: str) -> None:
        self._failures[url] = _Failure(self._clock() + self._failure_ttl, reason)
        self._failures.move_to_end(url)
        while len(self._failures) > self._max_unproven:
            self._failures.popitem(last=False)


class _TokenBucket:
    """`burst` takes at once, refilled evenly over `period_s`."""

    def __init__(self, burst: int, period_s: float, clock: Callable[[], float]) -> None:
        self._burst = burst
        self._per_s = burst / period_s
        self._clock = clock
        self._tokens = float(burst)
        self._at = clock()

    def take(self) -> bool:
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._at) * self._per_s)
        self._at = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True


class HttpsFetcher:
    """GETs small documents over verified TLS, without following redirects."""

    def __init__(
        self,
        *,
        ssl_cert_file: str | None = None,
        timeout: float = FETCH_TIMEOUT,
        max_bytes: int = MAX_FETCH_BYTES,
    ) -> None:
        # cafile=None loads the default trust store, which OpenSSL takes from SSL_CERT_FILE if set.
        self._ssl_context = ssl.create_default_context(cafile=ssl_cert_file)
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._max_bytes = max_bytes
        self._session: aiohttp.ClientSession | None = None

    async def get(self, url: str) -> bytes:
        try:
            async with self._client().get(url, allow_redirects=False) as response:
                if response.status != 200:
                    raise SnsFetchError(f"GET {_redact(url)} answered HTTP {response.status}")
                return await self._read_body(url, response)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise SnsFetchError(f"GET {_redact(url)} failed: {_describe(exc)}") from exc

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _client(self) -> aiohttp.ClientSession:
        # Created on first use because a ClientSession must be made inside the running loop.
        if self._session is None or self._session.closed:
            # trust_env: HTTPS_PROXY / NO_PROXY, as egress is often only through a proxy.
            self._session = aiohttp.ClientSession(
                timeout=self._timeout,
                connector=aiohttp.TCPConnector(ssl=self._ssl_context),
                trust_env=True,
            )
        return self._session

    async def _read_body(self, url: str, response: aiohttp.ClientResponse) -> bytes:
        too_large = SnsFetchError(f"GET {_redact(url)}: body over {self._max_bytes} bytes")
        if response.content_length is not None and response.content_length > self._max_bytes:
            raise too_large
        body = bytearray()
        # Counted while streaming: Content-Length may be absent (chunked) or untrue.
        async for chunk in response.content.iter_chunked(16 * 1024):
            body += chunk
            if len(body) > self._max_bytes:
                raise too_large
        return bytes(body)


class SnsVerifier:
    def __init__(
        self,
        certificates: CertificateStore,
        *,
        clock: Callable[[], datetime],
        topics: TrustedTopics,
        max_age: timedelta = DEFAULT_MAX_AGE,
    ) -> None:
        self._certificates = certificates
        self._clock = clock
        self._topics = topics
        self._max_age = max_age

    async def verify(self, envelope: dict[str, Any]) -> SnsMessage:
        """Return the signed content, or raise SnsVerificationError / SnsTransientError.

        The cheap checks run first, then the topic: no junk message, and no message from a topic
        that is not ours, causes a certificate fetch.
        """
        envelope = _normalise_envelope(envelope)
        algorithm = _SIGNATURE_HASHES.get(envelope["SignatureVersion"])
        if algorithm is None:
            raise SnsVerificationError("SignatureVersion is neither 1 nor 2")
        cert_url = envelope["SigningCertURL"]
        if not is_trusted_cert_url(cert_url):
            raise SnsVerificationError("SigningCertURL is not an Amazon SNS certificate URL")
        # SNS signs with a certificate on the topic's own regional host: a URL on another host
        # is not this topic's, and costs no fetch.
        if urlsplit(cert_url).hostname != topic_sns_host(envelope["TopicArn"]):
            raise SnsVerificationError(
                "SigningCertURL is not on the SNS host of the topic's region"
            )
        signature = _decode_signature(envelope["Signature"])
        timestamp = _parse_timestamp(envelope["Timestamp"])
        self._check_freshness(timestamp)
        await self._check_topic(envelope["TopicArn"])

        key = await self._certificates.public_key(cert_url)
        try:
            key.verify(signature, _string_to_sign(envelope), PKCS1v15(), algorithm())
        except InvalidSignature:
            raise SnsVerificationError("signature does not match") from None
        self._certificates.prove(cert_url)
        return _signed_message(envelope, timestamp)

    async def _check_topic(self, topic_arn: str) -> None:
        try:
            trusted = await self._topics.trusts(topic_arn)
        except TopicsUnavailable as error:
            raise SnsTransientError(str(error)) from error
        if not trusted:
            raise SnsVerificationError(
                "TopicArn is not a topic of ours (setup-aws records the topic it wires; "
                "SNS_TOPIC_ARNS names others)"
            )

    def _check_freshness(self, timestamp: datetime) -> None:
        now = self._clock()
        if timestamp < now - self._max_age:
            raise SnsVerificationError("Timestamp is too old")
        if timestamp > now + MAX_CLOCK_SKEW:
            raise SnsVerificationError("Timestamp is in the future")


async def confirm_subscription(message: SnsMessage, fetch: Fetch) -> None:
    """GET the SubscribeURL of a verified SubscriptionConfirmation (pass `HttpsFetcher.get`)."""
    if message.type != "SubscriptionConfirmation":
        raise SnsVerificationError("not a SubscriptionConfirmation")
    # Signed by SNS, but checked anyway: an unchecked GET target is a server-side request forgery.
    if message.subscribe_url is None or not is_trusted_sns_url(message.subscribe_url):
        raise SnsVerificationError("SubscribeURL is not an Amazon SNS URL")
    await fetch(message.subscribe_url)


def _normalise_envelope(document: dict[str, Any]) -> dict[str, Any]:
    envelope = dict(document)
    for lambda_key, key in _LAMBDA_SPELLINGS.items():
        if lambda_key in envelope:
            value = envelope.pop(lambda_key)
            if envelope.setdefault(key, value) != value:
                raise SnsVerificationError(f"{key} and {lambda_key} disagree")
    # Lambda sends an absent Subject as null.
    if "Subject" in envelope and envelope["Subject"] is None:
        del envelope["Subject"]

    message_type = envelope.get("Type")
    if not isinstance(message_type, str) or message_type not in _SIGNED_KEYS:
        raise SnsVerificationError("Type is not a known SNS message type")
    for key in (*_SIGNED_KEYS[message_type], *_SIGNATURE_KEYS):
        if key not in envelope:
            if key in _OPTIONAL_KEYS:
                continue
            raise SnsVerificationError(f"{message_type} without {key}")
        if not isinstance(envelope[key], str):
            raise SnsVerificationError(f"{key} is not a string")
        # Never SNS's, and PostgreSQL cannot store it: refused, so SNS does not retry.
        if NUL in envelope[key]:
            raise SnsVerificationError(f"{key} holds the NUL character")
    if len(envelope["MessageId"]) > MAX_MESSAGE_ID_LENGTH:
        raise SnsVerificationError(f"MessageId is longer than {MAX_MESSAGE_ID_LENGTH} characters")
    return envelope


def _string_to_sign(envelope: dict[str, Any]) -> bytes:
    # A present but empty Subject is signed too, so test for presence, not truthiness.
    keys = [key for key in _SIGNED_KEYS[envelope["Type"]] if key in envelope]
    return "".join(f"{key}\n{envelope[key]}\n" for key in keys).encode("utf-8")


def _decode_signature(text: str) -> bytes:
    try:
        signature = base64.b64decode(text, validate=True)
    except binascii.Error:
        raise SnsVerificationError("Signature is not base64") from None
    # Unused padding bits would otherwise let altered text decode to the same signature.
    if base64.b64encode(signature).decode("ascii") != text:
        raise SnsVerificationError("Signature is not canonical base64")
    return signature


def _parse_timestamp(text: str) -> datetime:
    try:
        timestamp = datetime.fromisoformat(text)
    except ValueError:
        raise SnsVerificationError("Timestamp is not an ISO 8601 time") from None
    if timestamp.tzinfo is None:
        raise SnsVerificationError("Timestamp has no time zone")
    return timestamp


def _signed_message(envelope: dict[str, Any], timestamp: datetime) -> SnsMessage:
    message_type = cast(MessageType, envelope["Type"])
    signed = {key: envelope[key] for key in _SIGNED_KEYS[message_type] if key in envelope}
    return SnsMessage(
        type=message_type,
        message_id=signed["MessageId"],
        topic_arn=signed["TopicArn"],
        message=signed["Message"],
        timestamp=timestamp,
        subject=signed.get("Subject"),
        subscribe_url=signed.get("SubscribeURL"),
        token=signed.get("Token"),
    )


def _redact(url: str) -> str:
    # A SubscribeURL carries the subscription token in its query; keep it out of logs.
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def _describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__
