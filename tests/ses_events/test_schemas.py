from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from ses_sender.ses_events.schemas import SesEvent, SesEventError, SesEventType, parse_ses_event
from tests.support.sns_vectors import load_vector

MESSAGE_ID = "0100018c-aaaa-bbbb-cccc-1234567890ab-000000"
MAIL_TIME = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
TAGS = {
    "ses:configuration-set": ["cs-main"],
    "ses:from-domain": ["example.com"],
    "campaign": ["receipts"],
}


def mail(*, tags: bool = True) -> dict[str, Any]:
    document: dict[str, Any] = {
        "timestamp": "2026-01-05T10:00:00.000Z",
        "source": "Shop <noreply@example.com>",
        "sourceArn": "arn:aws:ses:us-east-1:123456789012:identity/example.com",
        "sourceIp": "192.0.2.10",
        "sendingAccountId": "123456789012",
        "messageId": MESSAGE_ID,
        "destination": ["jane@example.net", "john@example.org"],
        "headersTruncated": False,
        "commonHeaders": {
            "from": ["Shop <noreply@example.com>"],
            "to": ["jane@example.net", "john@example.org"],
            "messageId": MESSAGE_ID,
            "subject": "Your receipt",
        },
    }
    if tags:
        document["tags"] = TAGS
    return document


# Samples from AWS's example pages, "..." filled in:
# https://docs.aws.amazon.com/ses/latest/dg/notification-contents.html (identity notifications)
# https://docs.aws.amazon.com/ses/latest/dg/event-publishing-retrieving-sns-contents.html (events)
BOUNCE = {
    "bounceType": "Permanent",
    "bounceSubType": "General",
    "bouncedRecipients": [
        {
            "emailAddress": "jane@example.net",
            "action": "failed",
            "status": "5.1.1",
            "diagnosticCode": "smtp; 550 5.1.1 user unknown",
        }
    ],
    "timestamp": "2026-01-05T10:00:02.000Z",
    "feedbackId": "0100018c-dddd-000000",
    "remoteMtaIp": "198.51.100.7",
    "reportingMTA": "dsn; a1-2.smtp-out.amazonses.com",
}
COMPLAINT = {
    "complainedRecipients": [{"emailAddress": "jane@example.net"}],
    "complaintFeedbackType": "abuse",
    "complaintSubType": None,
    "userAgent": "ExampleISP Feedback Loop (V0.01)",
    "arrivalDate": "2026-01-05T11:00:00.000Z",
    "timestamp": "2026-01-05T11:00:01.000Z",
    "feedbackId": "0100018c-eeee-000000",
}
DELIVERY = {
    "timestamp": "2026-01-05T10:00:01.200Z",
    "processingTimeMillis": 1200,
    "recipients": ["jane@example.net"],
    "smtpResponse": "250 2.0.0 OK",
    "reportingMTA": "a1-2.smtp-out.amazonses.com",
    "remoteMtaIp": "198.51.100.7",
}
TRANSIENT_BOUNCE = {
    "bounceType": "Transient",
    "bounceSubType": "MailboxFull",
    "bouncedRecipients": [{"emailAddress": "john@example.org"}],
    "timestamp": "2026-01-05T10:00:03.000Z",
    "feedbackId": "0100018c-ffff-000000",
    "reportingMTA": "dsn; mta.example.net",
}
OPEN = {
    "ipAddress": "192.0.2.1",
    "timestamp": "2026-01-05T12:00:00.000Z",
    "userAgent": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X)",
}
CLICK = {
    "ipAddress": "192.0.2.1",
    "link": "https://example.com/orders/12345",
    "linkTags": {"samplekey0": ["samplevalue0"]},
    "timestamp": "2026-01-05T12:01:00.000Z",
    "userAgent": "Mozilla/5.0",
}
FAILURE = {
    "errorMessage": "Attribute 'name' is not present in the rendering data.",
    "templateName": "Receipt",
}
DELIVERY_DELAY = {
    "timestamp": "2026-01-05T10:05:00.000Z",
    "delayType": "TransientCommunicationFailure",
    "expirationTime": "2026-01-06T10:00:00.000Z",
    "delayedRecipients": [
        {
            "emailAddress": "john@example.org",
            "status": "4.4.1",
            "diagnosticCode": "smtp; 421 4.4.1 Unable to connect to remote host",
        }
    ],
}
SUBSCRIPTION = {
    "contactList": "Customers",
    "timestamp": "2026-01-05T13:00:00.000Z",
    "source": "UnsubscribeHeader",
    "newTopicPreferences": {
        "unsubscribeAll": True,
        "topicSubscriptionStatus": [{"topicName": "News", "subscriptionStatus": "OptOut"}],
    },
    "oldTopicPreferences": {
        "unsubscribeAll": False,
        "topicSubscriptionStatus": [{"topicName": "News", "subscriptionStatus": "OptIn"}],
    },
}

BOTH_RECIPIENTS = ("jane@example.net", "john@example.org")


def event_publishing(event_type: str, detail_key: str, detail: dict[str, Any]) -> str:
    return json.dumps({"eventType": event_type, "mail": mail(), detail_key: detail}) + "\n"


def identity_notification(notification_type: str, detail_key: str, detail: dict[str, Any]) -> str:
    return json.dumps(
        {"notificationType": notification_type, "mail": mail(tags=False), detail_key: detail}
    )


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


class TestEventPublishing:
    """`eventType`: all ten types a configuration set can publish."""

    def test_send(self) -> None:
        event = parse_ses_event(event_publishing("Send", "send", {}))
        assert event == SesEvent(
            event_type=SesEventType.SEND,
            ses_message_id=MESSAGE_ID,
            occurred_at=MAIL_TIME,
            recipients=BOTH_RECIPIENTS,
            tags=TAGS,
            detail={},
        )

    def test_reject(self) -> None:
        event = parse_ses_event(event_publishing("Reject", "reject", {"reason": "Bad content"}))
        assert event.event_type == "Reject"
        assert event.recipients == BOTH_RECIPIENTS
        assert event.occurred_at == MAIL_TIME
        assert event.detail == {"reason": "Bad content"}

    def test_bounce(self) -> None:
        event = parse_ses_event(event_publishing("Bounce", "bounce", TRANSIENT_BOUNCE))
        assert event == SesEvent(
            event_type=SesEventType.BOUNCE,
            ses_message_id=MESSAGE_ID,
            occurred_at=at("2026-01-05T10:00:03.000Z"),
            recipients=("john@example.org",),
            tags=TAGS,
            bounce_type="Transient",
            bounce_subtype="MailboxFull",
            detail=TRANSIENT_BOUNCE,
        )

    def test_complaint(self) -> None:
        event = parse_ses_event(event_publishing("Complaint", "complaint", COMPLAINT))
        assert event.event_type is SesEventType.COMPLAINT
        assert event.recipients == ("jane@example.net",)
        assert event.complaint_feedback_type == "abuse"
        assert event.occurred_at == at("2026-01-05T11:00:01.000Z")
        assert event.bounce_type is None

    def test_delivery(self) -> None:
        event = parse_ses_event(event_publishing("Delivery", "delivery", DELIVERY))
        assert event.event_type is SesEventType.DELIVERY
        assert event.recipients == ("jane@example.net",)
        assert event.occurred_at == at("2026-01-05T10:00:01.200Z")
        assert event.detail["smtpResponse"] == "250 2.0.0 OK"

    def test_open(self) -> None:
        event = parse_ses_event(event_publishing("Open", "open", OPEN))
        assert event.event_type is SesEventType.OPEN
        assert event.recipients == BOTH_RECIPIENTS
        assert event.occurred_at == at("2026-01-05T12:00:00.000Z")
        assert event.detail == OPEN

    def test_click(self) -> None:
        event = parse_ses_event(event_publishing("Click", "click", CLICK))
        assert event.event_type is SesEventType.CLICK
        assert event.occurred_at == at("2026-01-05T12:01:00.000Z")
        assert event.detail["link"] == "https://example.com/orders/12345"

    def test_rendering_failure(self) -> None:
        event = parse_ses_event(event_publishing("Rendering Failure", "failure", FAILURE))
        assert event.event_type is SesEventType.RENDERING_FAILURE
        assert event.event_type.value == "RenderingFailure"
        assert event.occurred_at == MAIL_TIME
        assert event.recipients == BOTH_RECIPIENTS
        assert event.detail == FAILURE

    def test_rendering_failure_without_the_space(self) -> None:
        event = parse_ses_event(event_publishing("RenderingFailure", "failure", FAILURE))
        assert event.event_type is SesEventType.RENDERING_FAILURE

    def test_delivery_delay(self) -> None:
        event = parse_ses_event(event_publishing("DeliveryDelay", "deliveryDelay", DELIVERY_DELAY))
        assert event.event_type is SesEventType.DELIVERY_DELAY
        assert event.recipients == ("john@example.org",)
        assert event.occurred_at == at("2026-01-05T10:05:00.000Z")
        assert event.detail["delayType"] == "TransientCommunicationFailure"

    def test_subscription(self) -> None:
        event = parse_ses_event(event_publishing("Subscription", "subscription", SUBSCRIPTION))
        assert event.event_type is SesEventType.SUBSCRIPTION
        assert event.recipients == BOTH_RECIPIENTS
        assert event.occurred_at == at("2026-01-05T13:00:00.000Z")
        assert event.detail["newTopicPreferences"]["unsubscribeAll"] is True


class TestIdentityNotifications:
    """`notificationType`: the three feedback types, no tags, plus the topic test message."""

    def test_bounce(self) -> None:
        event = parse_ses_event(identity_notification("Bounce", "bounce", BOUNCE))
        assert event == SesEvent(
            event_type=SesEventType.BOUNCE,
            ses_message_id=MESSAGE_ID,
            occurred_at=at("2026-01-05T10:00:02.000Z"),
            recipients=("jane@example.net",),
            tags={},
            bounce_type="Permanent",
            bounce_subtype="General",
            detail=BOUNCE,
        )

    def test_complaint(self) -> None:
        event = parse_ses_event(identity_notification("Complaint", "complaint", COMPLAINT))
        assert event.event_type is SesEventType.COMPLAINT
        assert event.recipients == ("jane@example.net",)
        assert event.complaint_feedback_type == "abuse"
        assert event.tags == {}

    def test_delivery(self) -> None:
        event = parse_ses_event(identity_notification("Delivery", "delivery", DELIVERY))
        assert event.event_type is SesEventType.DELIVERY
        assert event.recipients == ("jane@example.net",)
        assert event.tags == {}

    def test_subscription_succeeded(self) -> None:
        text = (
            "You have successfully subscribed your Amazon SNS topic "
            "'arn:aws:sns:us-east-1:123456789012:ses-events' to receive 'Bounce' notifications "
            "from Amazon SES for identity 'example.com'."
        )
        message = json.dumps(
            {"notificationType": "AmazonSnsSubscriptionSucceeded", "message": text}
        )
        assert parse_ses_event(message) == SesEvent(
            event_type=SesEventType.SUBSCRIPTION_SUCCEEDED,
            ses_message_id=None,
            occurred_at=None,
            detail={"message": text},
        )


class TestRealVectors:
    """The `Message` of the two AWS-signed SES vectors in tests/support/vectors/sns."""

    def test_event_publishing_complaint(self, vectors_dir: Path) -> None:
        envelope = load_vector(vectors_dir, "ses-event-complaint-v1-with-subject.json")
        event = parse_ses_event(envelope["Message"])
        assert event.event_type is SesEventType.COMPLAINT
        assert (
            event.ses_message_id == "0100017fd2f875c4-c2929163-2767-49b1-8513-1a29e428e134-000000"
        )
        assert event.recipients == ("complaint@simulator.amazonses.com",)
        assert event.occurred_at == datetime(2022, 3, 28, 23, 59, 33, 564000, tzinfo=UTC)
        assert event.complaint_feedback_type == "abuse"
        assert event.tags["ses:configuration-set"] == ["test-set"]
        assert event.tags["ses:operation"] == ["SendEmail"]
        assert event.detail["feedbackId"].startswith("0100017fd2f87864")

    def test_identity_bounce(self, vectors_dir: Path) -> None:
        envelope = load_vector(vectors_dir, "ses-notification-bounce-v1-no-subject.json")
        event = parse_ses_event(envelope["Message"])
        assert event.event_type is SesEventType.BOUNCE
        assert (
            event.ses_message_id == "0100017fe7043e8e-fc9c357d-a9a4-49bc-a4b4-fa984009d568-000000"
        )
        assert event.recipients == ("bounce@simulator.amazonses.com",)
        assert event.occurred_at == datetime(2022, 4, 1, 21, 24, 49, tzinfo=UTC)
        assert (event.bounce_type, event.bounce_subtype) == ("Permanent", "General")
        assert event.tags == {}


class TestLeniency:
    def test_unknown_fields_are_ignored(self) -> None:
        document = {
            "eventType": "Bounce",
            "mail": {**mail(), "futureField": {"x": 1}},
            "bounce": {**TRANSIENT_BOUNCE, "futureField": [1, 2]},
            "futureTopLevel": True,
        }
        assert parse_ses_event(json.dumps(document)).bounce_type == "Transient"

    def test_bounced_recipient_without_status(self) -> None:
        bounce = {**BOUNCE, "bouncedRecipients": [{"emailAddress": "jane@example.net"}]}
        event = parse_ses_event(identity_notification("Bounce", "bounce", bounce))
        assert event.recipients == ("jane@example.net",)

    def test_null_optional_fields(self) -> None:
        bounce = {**BOUNCE, "bounceSubType": None}
        assert parse_ses_event(event_publishing("Bounce", "bounce", bounce)).bounce_subtype is None
        complaint = {**COMPLAINT, "complaintFeedbackType": None}
        event = parse_ses_event(event_publishing("Complaint", "complaint", complaint))
        assert event.complaint_feedback_type is None

    def test_missing_inner_object_for_a_type_that_needs_none(self) -> None:
        document = {"eventType": "Send", "mail": mail()}
        assert parse_ses_event(json.dumps(document)).occurred_at == MAIL_TIME

    def test_missing_destination_for_a_type_that_uses_it(self) -> None:
        document: dict[str, Any] = {
            "eventType": "Open",
            "mail": {**mail(), "destination": None},
            "open": OPEN,
        }
        with pytest.raises(SesEventError, match=r"mail\.destination"):
            parse_ses_event(json.dumps(document))
        del document["mail"]["destination"]
        assert parse_ses_event(json.dumps(document)).recipients == ()


def _without(document: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in document.items() if k != key}


class TestInvalid:
    @pytest.mark.parametrize(
        "message",
        [
            "",
            "not json",
            "[]",
            '"Bounce"',
            "null",
            json.dumps({"mail": mail()}),
            json.dumps({"eventType": "Unknown", "mail": mail()}),
            json.dumps({"eventType": "bounce", "mail": mail()}),
            json.dumps({"eventType": 7, "mail": mail()}),
            json.dumps({"eventType": "Send"}),
            json.dumps({"eventType": "Send", "mail": "x"}),
            json.dumps({"eventType": "Send", "mail": _without(mail(), "messageId")}),
            json.dumps({"eventType": "Send", "mail": {**mail(), "messageId": ""}}),
            json.dumps({"eventType": "Send", "mail": {**mail(), "messageId": 12}}),
            json.dumps({"eventType": "Send", "mail": _without(mail(), "timestamp")}),
            json.dumps({"eventType": "Send", "mail": {**mail(), "timestamp": "soon"}}),
            json.dumps({"eventType": "Send", "mail": {**mail(), "timestamp": "2026-01-05T10:00"}}),
            json.dumps({"eventType": "Send", "mail": {**mail(), "tags": ["a"]}}),
            json.dumps({"eventType": "Send", "mail": {**mail(), "tags": {"a": "b"}}}),
            json.dumps({"eventType": "Send", "mail": mail(), "send": []}),
            json.dumps({"eventType": "Bounce", "mail": mail()}),
            json.dumps(
                {"eventType": "Bounce", "mail": mail(), "bounce": _without(BOUNCE, "bounceType")}
            ),
            json.dumps(
                {
                    "eventType": "Bounce",
                    "mail": mail(),
                    "bounce": {**BOUNCE, "bouncedRecipients": [{}]},
                }
            ),
            json.dumps(
                {
                    "eventType": "Bounce",
                    "mail": mail(),
                    "bounce": {**BOUNCE, "bouncedRecipients": ["a"]},
                }
            ),
            json.dumps(
                {"eventType": "Bounce", "mail": mail(), "bounce": {**BOUNCE, "timestamp": 5}}
            ),
            json.dumps({"eventType": "Complaint", "mail": mail(), "complaint": {}}),
            json.dumps(
                {
                    "eventType": "Complaint",
                    "mail": mail(),
                    "complaint": {**COMPLAINT, "complaintFeedbackType": 1},
                }
            ),
            json.dumps(
                {
                    "eventType": "Delivery",
                    "mail": mail(),
                    "delivery": {**DELIVERY, "recipients": [1]},
                }
            ),
            json.dumps({"eventType": "DeliveryDelay", "mail": mail(), "deliveryDelay": {}}),
            json.dumps({"notificationType": "Delivery", "mail": mail()}),
        ],
    )
    def test_rejected(self, message: str) -> None:
        with pytest.raises(SesEventError):
            parse_ses_event(message)

    def test_absurd_nesting(self) -> None:
        with pytest.raises(SesEventError):
            parse_ses_event("[" * 100_000)

    def test_reason_names_the_field(self) -> None:
        document = {"eventType": "Bounce", "mail": mail(), "bounce": _without(BOUNCE, "bounceType")}
        with pytest.raises(SesEventError) as caught:
            parse_ses_event(json.dumps(document))
        assert caught.value.reason == "bounce.bounceType is missing or not a string"
