"""SNS as it calls the service: envelopes signed with a test key, posted to the SNS endpoint,
and a runtime that trusts that key's certificate without fetching it.

`Publisher` signs the way SNS does; `post` delivers the way SNS does (text/plain, no API key).
`signed_sns_runtime` and `publisher` are for tests outside `tests/ses_events/` that post signed
notifications to the real endpoint.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric import rsa

from ses_sender.composition import Runtime, TransportChoice, create_app, open_runtime
from ses_sender.config import Settings, TransportKind
from ses_sender.ses_events.sns import CertificateStore
from tests.support.clock import FakeClock
from tests.support.databases import empty_tables
from tests.support.fakes import FakeFetch
from tests.support.ses_events import TOPIC_ARN
from tests.support.signing import self_signed, sign, sns_timestamp

PATH = "/v1/events/results"
CERT_URL = "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-5e1f7e57f1a7e57f1a7e57f1a7e57f1a.pem"
SUBSCRIBE_URL = (
    "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription"
    f"&TopicArn={TOPIC_ARN}&Token=2336412f37fb687f5d51e6e2425c464de"
)
UNSUBSCRIBE_URL = (
    "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe"
    f"&SubscriptionArn={TOPIC_ARN}:0fe0bffc-6470-4502-9414-d5e3d9fdd71e"
)
EVENT_SUBJECT = "Amazon SES Email Event Notification"

SIGNER = self_signed()


@dataclass(frozen=True)
class Publisher:
    """Signs envelopes the way SNS does, stamped with the test clock's time."""

    key: rsa.RSAPrivateKey
    clock: FakeClock
    topic_arn: str = TOPIC_ARN
    cert_url: str = CERT_URL

    def notification(
        self,
        message: str,
        *,
        version: str = "1",
        sent_at: datetime | None = None,
        subject: str | None = EVENT_SUBJECT,
        **fields: str,
    ) -> dict[str, Any]:
        envelope = {
            "Type": "Notification",
            "MessageId": str(uuid.uuid4()),
            "TopicArn": self.topic_arn,
            "Message": message,
            "Timestamp": sns_timestamp(sent_at or self.clock.now()),
            "SigningCertURL": self.cert_url,
            "UnsubscribeURL": UNSUBSCRIBE_URL,
        }
        if subject is not None:
            envelope["Subject"] = subject
        envelope.update(fields)
        return sign(envelope, self.key, version)

    def confirmation(
        self,
        message_type: str = "SubscriptionConfirmation",
        *,
        subscribe_url: str = SUBSCRIBE_URL,
        version: str = "1",
        **fields: str,
    ) -> dict[str, Any]:
        envelope = {
            "Type": message_type,
            "MessageId": str(uuid.uuid4()),
            "Token": "2336412f37fb687f5d51e6e2425c464de",
            "TopicArn": self.topic_arn,
            "Message": f"You have chosen to subscribe to the topic {self.topic_arn}.",
            "SubscribeURL": subscribe_url,
            "Timestamp": sns_timestamp(self.clock.now()),
            "SigningCertURL": self.cert_url,
        }
        envelope.update(fields)
        return sign(envelope, self.key, version)


def as_body(envelope: dict[str, Any]) -> bytes:
    return json.dumps(envelope).encode("utf-8")


async def post(client: httpx.AsyncClient, body: dict[str, Any] | bytes) -> httpx.Response:
    """POST as SNS does: the JSON document as text/plain, no API key."""
    return await client.post(
        PATH,
        content=as_body(body) if isinstance(body, dict) else body,
        headers={
            "content-type": "text/plain; charset=UTF-8",
            "user-agent": "Amazon Simple Notification Service Agent",
        },
    )


def earlier(clock: FakeClock, seconds: float = 2.0) -> datetime:
    """A moment shortly before the clock's now: when an event happened, before SNS sent it."""
    return clock.now() - timedelta(seconds=seconds)


@asynccontextmanager
async def events_runtime(
    settings: Settings, clock: FakeClock, certificates: CertificateStore
) -> AsyncIterator[Runtime]:
    """A runtime whose SNS verifier uses `certificates`; tables emptied afterwards."""
    choice = TransportChoice(TransportKind.OUTBOX, "tests")
    async with open_runtime(
        settings, transport=choice, clock=clock, certificates=certificates
    ) as runtime:
        try:
            yield runtime
        finally:
            await empty_tables(runtime)


@asynccontextmanager
async def sns_client(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    """A client without the API key: SNS has none, and the route needs none."""
    transport = httpx.ASGITransport(app=create_app(runtime))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


@asynccontextmanager
async def signed_sns_runtime(settings: Settings, clock: FakeClock) -> AsyncIterator[Runtime]:
    """A runtime trusting `SIGNER`; tables emptied afterwards, as the `runtime` fixture does."""
    store = CertificateStore(FakeFetch())
    store.seed(CERT_URL, SIGNER.cert_pem)
    async with events_runtime(settings, clock, store) as runtime:
        yield runtime


def publisher(clock: FakeClock) -> Publisher:
    """A publisher signing with `SIGNER`."""
    return Publisher(SIGNER.key, clock)
