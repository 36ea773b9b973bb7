"""In-memory stand-ins for the network, the clocks and SES, and the rows the tests start from."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from ses_sender.composition import Runtime
from ses_sender.messages.addresses import recipient_key
from ses_sender.models import Content, Request, RequestStatus, Result
from ses_sender.ses_tags import REQUEST_ID_TAG

from .signing import sns_timestamp

SES_MESSAGE_ID = "0100018c-aaaa-bbbb-cccc-1234567890ab-000000"
RECIPIENT = "jane@example.net"


class FakeFetch:
    """An async `fetch(url) -> bytes` that records every call and never touches the network."""

    def __init__(self, body: bytes = b"", *, delay: float = 0.0) -> None:
        self.body = body
        self.delay = delay
        self.error: Exception | None = None
        self.calls: list[str] = []

    async def __call__(self, url: str) -> bytes:
        self.calls.append(url)
        await asyncio.sleep(self.delay)
        if self.error is not None:
            raise self.error
        return self.body


class ManualClock:
    """A monotonic clock (seconds) that moves only when told to."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class RecordingFetcher:
    """Stands in for `HttpsFetcher` (`get`, `close`): records GETs, never uses the network."""

    def __init__(self, body: bytes = b"<ConfirmSubscriptionResponse/>") -> None:
        self.body = body
        self.error: Exception | None = None
        self.calls: list[str] = []
        self.closed = False

    async def get(self, url: str) -> bytes:
        self.calls.append(url)
        if self.error is not None:
            raise self.error
        return self.body

    async def close(self) -> None:
        self.closed = True


# SES's spelling of each event type -> the key of its inner object.
_DETAIL_KEYS = {
    "Send": "send",
    "Reject": "reject",
    "Bounce": "bounce",
    "Complaint": "complaint",
    "Delivery": "delivery",
    "Open": "open",
    "Click": "click",
    "Rendering Failure": "failure",
    "DeliveryDelay": "deliveryDelay",
}


def ses_message(
    kind: str,
    *,
    at: datetime,
    ses_message_id: str = SES_MESSAGE_ID,
    request_id: int | str | None = None,
    identity: bool = False,
    recipient: str = RECIPIENT,
    **detail: Any,
) -> str:
    """The `Message` SES publishes for one event that happened `at`, as the docs show it.

    `identity=True` is the identity-notification form (`notificationType`, no tags); otherwise
    event publishing (`eventType`, `mail.tags`, our request-id tag when `request_id` is given).
    `detail` overrides keys of the inner object.
    """
    when = sns_timestamp(at)
    inners: dict[str, dict[str, Any]] = {
        "Send": {},
        "Reject": {"reason": "Bad content"},
        "Bounce": {
            "bounceType": "Permanent",
            "bounceSubType": "General",
            "bouncedRecipients": [
                {
                    "emailAddress": recipient,
                    "action": "failed",
                    "status": "5.1.1",
                    "diagnosticCode": "smtp; 550 5.1.1 user unknown",
                }
            ],
            "timestamp": when,
            "feedbackId": "0100018c-feedback-000000",
            "reportingMTA": "dsn; a1-2.smtp-out.amazonses.com",
        },
        "Complaint": {
            "complainedRecipients": [{"emailAddress": recipient}],
            "complaintFeedbackType": "abuse",
            "complaintSubType": None,
            "userAgent": "ExampleISP Feedback Loop (V0.01)",
            "arrivalDate": when,
            "timestamp": when,
            "feedbackId": "0100018c-feedback-000000",
        },
        "Delivery": {
            "timestamp": when,
            "processingTimeMillis": 1200,
            "recipients": [recipient],
            "smtpResponse": "250 2.0.0 OK",
            "reportingMTA": "a1-2.smtp-out.amazonses.com",
        },
        "Open": {"ipAddress": "192.0.2.1", "timestamp": when, "userAgent": "Mozilla/5.0"},
        "Click": {
            "ipAddress": "192.0.2.1",
            "link": "https://example.com/orders/12345",
            "linkTags": {},
            "timestamp": when,
            "userAgent": "Mozilla/5.0",
        },
        "Rendering Failure": {"errorMessage": "Attribute 'name' is missing", "templateName": "R"},
        "DeliveryDelay": {
            "timestamp": when,
            "delayType": "TransientCommunicationFailure",
            "expirationTime": sns_timestamp(at + timedelta(hours=6)),
            "delayedRecipients": [
                {
                    "emailAddress": recipient,
                    "status": "4.4.1",
                    "diagnosticCode": "smtp; 421 4.4.1 Unable to connect to remote host",
                }
            ],
        },
    }
    inner = {**inners[kind], **detail}
    mail: dict[str, Any] = {
        # The send is a little older than what happened to it (Send/Reject carry no own time).
        "timestamp": sns_timestamp(at - timedelta(seconds=2)),
        "source": "Shop <noreply@example.com>",
        "sendingAccountId": "123456789012",
        "messageId": ses_message_id,
        "destination": [recipient],
        "headersTruncated": False,
    }
    if not identity:
        mail["tags"] = {"ses:configuration-set": ["cs-main"], "ses:from-domain": ["example.com"]}
        if request_id is not None:
            mail["tags"][REQUEST_ID_TAG] = [str(request_id)]
    type_key = "notificationType" if identity else "eventType"
    document = {type_key: kind, "mail": mail, _DETAIL_KEYS[kind]: inner}
    # Event publishing ends its Message with a newline; identity notifications do not.
    return json.dumps(document, separators=(",", ":")) + ("" if identity else "\n")


def ses_occurred_at(message: str) -> datetime:
    """When the event in `ses_message(...)`'s output happened (its inner time, else the send's)."""
    document = json.loads(message)
    kind = document.get("eventType", document.get("notificationType"))
    inner = document[_DETAIL_KEYS[kind]]
    return datetime.fromisoformat(inner.get("timestamp", document["mail"]["timestamp"]))


# -- database rows --------------------------------------------------------------------------


async def add_request(
    runtime: Runtime,
    *,
    message_id: str | None = SES_MESSAGE_ID,
    status: RequestStatus = RequestStatus.SENT,
    to: str = RECIPIENT,
) -> int:
    """One email request (with its content), as the API and the worker would have left it."""
    now = runtime.clock.now()
    async with runtime.sessionmaker() as session, session.begin():
        content = Content(topic_id="t1", subject="Hello", content="<p>Hi</p>", created_at=now)
        session.add(content)
        await session.flush()
        request = Request(
            topic_id="t1",
            to=to,
            recipient_key=recipient_key(to),
            content_id=content.id,
            scheduled_at=now,
            status=status,
            due_at=now,
            attempts=0 if status == RequestStatus.CREATED else 1,
            message_id=message_id,
            sent_at=now if status == RequestStatus.SENT else None,
            created_at=now,
            updated_at=now,
        )
        session.add(request)
        await session.flush()
        return request.id


async def stored_results(runtime: Runtime) -> list[Result]:
    async with runtime.sessionmaker() as session:
        return list((await session.scalars(select(Result).order_by(Result.id))).all())


async def request_row(runtime: Runtime, request_id: int) -> Request:
    async with runtime.sessionmaker() as session:
        row = await session.get(Request, request_id)
    assert row is not None
    return row
