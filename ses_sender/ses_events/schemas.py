"""Parse the SES event carried, as a JSON string, in a verified SNS Notification's `Message`.

Two SES features publish to SNS with different spellings, and both come out as one `SesEvent`:

* identity feedback notifications: `notificationType` in {Bounce, Complaint, Delivery}, no tags,
  plus `AmazonSnsSubscriptionSucceeded`, the test message sent when the topic is attached;
* configuration-set event publishing: `eventType` in {Send, Reject, Bounce, Complaint, Delivery,
  Open, Click, "Rendering Failure", DeliveryDelay, Subscription}, with `mail.tags`.

SES may add fields at any time, so unknown keys are ignored. Only the fields this module reads
are required. The formats, by AWS:
https://docs.aws.amazon.com/ses/latest/dg/event-publishing-retrieving-sns-contents.html
https://docs.aws.amazon.com/ses/latest/dg/notification-contents.html
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field

from ses_sender.web.body import field_holding_nul, load_json

# SES sends one message to at most 50 recipients (To, Cc and Bcc together); each recipient an
# event names is a row: more is not SES, and would multiply what one notification stores.
MAX_RECIPIENTS_PER_EVENT: Final = 50
# The widest values the event log's columns hold (models/result.py, models/request.py): SES's
# are far shorter, so a longer one is no SES event, refused on both databases alike.
MAX_MESSAGE_ID_LENGTH: Final = 255
MAX_ADDRESS_LENGTH: Final = 998
MAX_KIND_LENGTH: Final = 64


class SesEventError(Exception):
    """The Message is not an SES event we can read."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class SesEventType(enum.StrEnum):
    """Canonical names: SES's own, except that "Rendering Failure" loses its space."""

    SEND = "Send"
    REJECT = "Reject"
    BOUNCE = "Bounce"
    COMPLAINT = "Complaint"
    DELIVERY = "Delivery"
    OPEN = "Open"
    CLICK = "Click"
    #: From eventType "Rendering Failure" (inner object `failure`).
    RENDERING_FAILURE = "RenderingFailure"
    DELIVERY_DELAY = "DeliveryDelay"
    SUBSCRIPTION = "Subscription"
    #: The test notification sent when an identity's topic is set: no mail, nothing to record.
    SUBSCRIPTION_SUCCEEDED = "AmazonSnsSubscriptionSucceeded"


@dataclass(frozen=True, slots=True)
class SesEvent:
    event_type: SesEventType
    #: `mail.messageId`, the ID SendEmail returned. None only for SUBSCRIPTION_SUCCEEDED.
    ses_message_id: str | None
    #: `occurred_at` is the inner object's timestamp if it has one, else `mail.timestamp`.
    #: None only for SUBSCRIPTION_SUCCEEDED.
    occurred_at: datetime | None
    #: The affected addresses: bounced, complained, delivered or delayed recipients for those
    #: types, else all of `mail.destination`.
    recipients: tuple[str, ...] = ()
    #: `mail.tags`; SES sends none with identity notifications.
    tags: dict[str, list[str]] = field(default_factory=dict)
    bounce_type: str | None = None
    bounce_subtype: str | None = None
    complaint_feedback_type: str | None = None
    #: The type-specific object as SES sent it (`bounce`, `click`, `failure`, ...), to store.
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def bounce_kind(self) -> str | None:
        """`Permanent/General`, `Transient` (no subtype), or None when not a bounce."""
        return "/".join(part for part in (self.bounce_type, self.bounce_subtype) if part) or None

    @property
    def is_permanent_bounce(self) -> bool:
        """A hard bounce: the address does not take mail. Transient and Undetermined are soft."""
        return self.event_type is SesEventType.BOUNCE and self.bounce_type == "Permanent"


# SES's spelling of each type -> our name and the key of its type-specific object.
_KINDS: Final[dict[str, tuple[SesEventType, str]]] = {
    "Send": (SesEventType.SEND, "send"),
    "Reject": (SesEventType.REJECT, "reject"),
    "Bounce": (SesEventType.BOUNCE, "bounce"),
    "Complaint": (SesEventType.COMPLAINT, "complaint"),
    "Delivery": (SesEventType.DELIVERY, "delivery"),
    "Open": (SesEventType.OPEN, "open"),
    "Click": (SesEventType.CLICK, "click"),
    "Rendering Failure": (SesEventType.RENDERING_FAILURE, "failure"),
    "RenderingFailure": (SesEventType.RENDERING_FAILURE, "failure"),
    "DeliveryDelay": (SesEventType.DELIVERY_DELAY, "deliveryDelay"),
    "Subscription": (SesEventType.SUBSCRIPTION, "subscription"),
}


def parse_ses_event(message: str) -> SesEvent:
    try:
        document = load_json(message)
    except ValueError:
        raise SesEventError("Message is not JSON") from None
    document = _object(document, "Message")
    # In JSON a NUL can only be written as this escape; PostgreSQL cannot store it.
    if "\\u0000" in message and (where := field_holding_nul(document, "Message")):
        raise SesEventError(f"{where} holds the NUL character")
    type_name = document.get("eventType", document.get("notificationType"))
    if type_name == SesEventType.SUBSCRIPTION_SUCCEEDED:
        return _subscription_succeeded(document)
    if not isinstance(type_name, str) or type_name not in _KINDS:
        raise SesEventError("neither eventType nor notificationType is a known SES event type")
    event_type, detail_key = _KINDS[type_name]

    mail = _object(document.get("mail"), "mail")
    detail = _object(document.get(detail_key, {}), detail_key)
    is_bounce = event_type is SesEventType.BOUNCE
    is_complaint = event_type is SesEventType.COMPLAINT
    event = SesEvent(
        event_type=event_type,
        ses_message_id=_string(mail, "messageId", "mail", max_length=MAX_MESSAGE_ID_LENGTH),
        occurred_at=_occurred_at(detail, detail_key, mail),
        recipients=_at_most(
            MAX_RECIPIENTS_PER_EVENT, _affected_recipients(event_type, detail, detail_key, mail)
        ),
        tags=_tags(mail),
        bounce_type=_string(detail, "bounceType", detail_key) if is_bounce else None,
        bounce_subtype=_optional_string(detail, "bounceSubType", detail_key) if is_bounce else None,
        complaint_feedback_type=(
            _optional_string(detail, "complaintFeedbackType", detail_key) if is_complaint else None
        ),
        detail=detail,
    )
    for kind, where in (
        (event.bounce_kind, f"{detail_key}.bounceType/bounceSubType"),
        (event.complaint_feedback_type, f"{detail_key}.complaintFeedbackType"),
    ):
        if kind is not None and len(kind) > MAX_KIND_LENGTH:
            raise SesEventError(f"{where} is longer than {MAX_KIND_LENGTH} characters")
    return event


def _subscription_succeeded(document: dict[str, Any]) -> SesEvent:
    text = _optional_string(document, "message", "Message")
    return SesEvent(
        event_type=SesEventType.SUBSCRIPTION_SUCCEEDED,
        ses_message_id=None,
        occurred_at=None,
        detail={} if text is None else {"message": text},
    )


def _affected_recipients(
    event_type: SesEventType, detail: dict[str, Any], detail_key: str, mail: dict[str, Any]
) -> tuple[str, ...]:
    # mail.destination lists every recipient of the message; these types name the affected ones.
    match event_type:
        case SesEventType.BOUNCE:
            return _addresses(detail, "bouncedRecipients", detail_key)
        case SesEventType.COMPLAINT:
            return _addresses(detail, "complainedRecipients", detail_key)
        case SesEventType.DELIVERY:
            return _addresses_in(detail.get("recipients"), f"{detail_key}.recipients")
        case SesEventType.DELIVERY_DELAY:
            return _addresses(detail, "delayedRecipients", detail_key)
        case _:
            return _addresses_in(mail.get("destination", []), "mail.destination")


def _at_most(limit: int, recipients: tuple[str, ...]) -> tuple[str, ...]:
    if len(recipients) > limit:
        raise SesEventError(f"names {len(recipients)} recipients; SES mail has at most {limit}")
    return recipients


def _addresses(detail: dict[str, Any], key: str, where: str) -> tuple[str, ...]:
    entries = detail.get(key)
    if not isinstance(entries, list):
        raise SesEventError(f"{where}.{key} is not a list")
    return tuple(
        _string(
            _object(entry, f"{where}.{key}[]"),
            "emailAddress",
            f"{where}.{key}[]",
            max_length=MAX_ADDRESS_LENGTH,
        )
        for entry in entries
    )


def _addresses_in(value: Any, where: str) -> tuple[str, ...]:
    addresses = _strings(value, where)
    if any(len(address) > MAX_ADDRESS_LENGTH for address in addresses):
        raise SesEventError(f"{where} holds an address longer than {MAX_ADDRESS_LENGTH} characters")
    return addresses


def _tags(mail: dict[str, Any]) -> dict[str, list[str]]:
    tags = _object(mail.get("tags", {}), "mail.tags")
    return {name: list(_strings(values, f"mail.tags.{name}")) for name, values in tags.items()}


def _occurred_at(detail: dict[str, Any], detail_key: str, mail: dict[str, Any]) -> datetime:
    # Send, Reject and Rendering Failure objects carry no time of their own.
    if "timestamp" in detail:
        return _timestamp(detail, detail_key)
    return _timestamp(mail, "mail")


def _timestamp(container: dict[str, Any], where: str) -> datetime:
    text = _string(container, "timestamp", where)
    try:
        timestamp = datetime.fromisoformat(text)
    except ValueError:
        raise SesEventError(f"{where}.timestamp is not an ISO 8601 time") from None
    if timestamp.tzinfo is None:
        raise SesEventError(f"{where}.timestamp has no time zone")
    try:
        return timestamp.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00+14:00 and 9999-12-31T23:59-14:00 have no UTC time
        raise SesEventError(f"{where}.timestamp is out of range") from None


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise SesEventError(f"{where} is not a JSON object")
    return value


def _string(
    container: dict[str, Any], key: str, where: str, *, max_length: int | None = None
) -> str:
    value = container.get(key)
    if not isinstance(value, str) or not value:
        raise SesEventError(f"{where}.{key} is missing or not a string")
    if max_length is not None and len(value) > max_length:
        raise SesEventError(f"{where}.{key} is longer than {max_length} characters")
    return value


def _optional_string(container: dict[str, Any], key: str, where: str) -> str | None:
    # SES writes some absent values as null (complaintSubType), so null means absent.
    value = container.get(key)
    if value is None or isinstance(value, str):
        return value
    raise SesEventError(f"{where}.{key} is not a string")


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise SesEventError(f"{where} is not a list of strings")
    return tuple(value)


# -- the API --------------------------------------------------------------------------------

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1_000


class UnmatchedEventOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    id: int
    type: str
    recipient: str  # as the event names it; "" when it names nobody
    ses_message_id: str | None = Field(alias="sesMessageId")
    occurred_at: datetime = Field(alias="occurredAt")
    received_at: datetime = Field(alias="receivedAt")


class UnmatchedEventsOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    events: list[UnmatchedEventOut]
    # Pass as `cursor` for the next page; null on the last page.
    next_cursor: str | None = Field(alias="nextCursor")
