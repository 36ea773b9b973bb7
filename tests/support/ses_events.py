"""What SES publishes through SNS, as its documentation shows it, and its taking in as the
endpoint does it (verified already: no signature here, see `signed_sns` for that)."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta
from typing import Any

from ses_sender.composition import Runtime
from ses_sender.ses_events import service
from ses_sender.ses_events.service import Ingested
from ses_sender.ses_events.sns import SnsMessage
from ses_sender.ses_tags import REQUEST_ID_TAG
from ses_sender.suppression.service import SoftBounceRule
from tests.support.signing import sns_timestamp

SES_MESSAGE_ID = "0100018c-aaaa-bbbb-cccc-1234567890ab-000000"
RECIPIENT = "jane@example.net"
TOPIC_ARN = "arn:aws:sns:us-east-1:123456789012:ses-events"
SOFT_BOUNCES = SoftBounceRule(limit=3, window=timedelta(days=7))


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


def notification(message: str, *, sent_at: datetime, message_id: str | None = None) -> SnsMessage:
    """A verified SNS Notification, as `SnsVerifier.verify` returns it."""
    return SnsMessage(
        type="Notification",
        message_id=message_id or str(uuid.uuid4()),
        topic_arn=TOPIC_ARN,
        message=message,
        timestamp=sent_at,
    )


async def ingest(
    runtime: Runtime,
    message: str,
    *,
    message_id: str | None = None,
    soft_bounces: SoftBounceRule = SOFT_BOUNCES,
) -> Ingested:
    """One ingestion in its own transaction, as the endpoint does it, at the runtime's time."""
    now = runtime.clock.now()
    async with runtime.sessionmaker() as session, session.begin():
        return await service.ingest_notification(
            session,
            notification(message, sent_at=now, message_id=message_id),
            soft_bounces=soft_bounces,
            now=now,
        )
