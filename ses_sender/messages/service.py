"""Accepting a batch of messages: validate everything, then store it all in one transaction."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from ses_sender.errors import Conflict, InvalidInput, PayloadTooLarge
from ses_sender.messages import repository
from ses_sender.messages.addresses import Recipient, parse_recipient
from ses_sender.messages.envelope import (
    SenderPolicy,
    check_attachments,
    check_headers,
    check_reply_to,
    check_sender,
    check_tags,
)
from ses_sender.messages.personalisation import (
    check_first_renders,
    check_recipients_have,
    encode_data,
    template_needs,
)
from ses_sender.messages.schemas import (
    MAX_CONTENT_BYTES,
    MAX_DATA_BYTES,
    MAX_IDEMPOTENCY_KEY_LENGTH,
    MAX_MESSAGES_PER_REQUEST,
    MAX_SUBJECT_LENGTH,
    MAX_TEXT_BYTES,
    MAX_TOPIC_ID_LENGTH,
    AcceptedMessageOut,
    MessageIn,
    MessagesAcceptedOut,
    MessagesIn,
    PreviewOut,
)
from ses_sender.stats import service as stats
from ses_sender.templates.service import TemplateParts, template_parts
from ses_sender.templating import (
    RenderError,
    TemplateKind,
    compile_parts,
    recipient_context,
    render_parts,
    text_of_html,
)
from ses_sender.text import has_line_break
from ses_sender.transports.base import Attachment

_NO_DATA: Mapping[str, Any] = {}
# A preview has no request, so no unsubscribe token: its link shows where one would go.
PREVIEW_UNSUBSCRIBE_PATH = "/v1/unsubscribe/preview"

_RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:[Zz]|[+-]\d{2}:\d{2})"
)


@dataclass(frozen=True, slots=True)
class ValidMessage:
    topic_id: str
    subject: str
    content: str
    scheduled_at: datetime
    recipients: list[Recipient]  # de-duplicated, in first-seen order
    positions: list[int]  # for each submitted address, its index in `recipients`
    text: str | None = None
    templated: bool = False
    shared_data: str | None = None  # JSON
    recipient_data: list[str | None] | None = None  # JSON, for each of `recipients`
    sender: str | None = None
    reply_to: tuple[str, ...] = ()
    headers: tuple[tuple[str, str], ...] = ()
    tags: tuple[tuple[str, str], ...] = ()
    attachments: tuple[Attachment, ...] = ()
    template: TemplateParts | None = None
    track_clicks: bool | None = None  # None: TRACK_CLICKS decides


@dataclass(frozen=True, slots=True)
class Reply:
    status_code: int
    body: dict[str, Any]


def body_fingerprint(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def check_idempotency_key(key: str | None) -> str | None:
    if key is None:
        return None
    if not key.strip() or len(key) > MAX_IDEMPOTENCY_KEY_LENGTH or not key.isprintable():
        raise InvalidInput(
            f"Idempotency-Key: must be 1 to {MAX_IDEMPOTENCY_KEY_LENGTH} printable characters"
        )
    return key


async def validate_batch(
    session: AsyncSession,
    batch: MessagesIn,
    *,
    now: datetime,
    max_recipients: int,
    senders: SenderPolicy,
) -> list[ValidMessage]:
    """Every message checked before anything is written; the first problem names its field."""
    if not batch.messages:
        raise InvalidInput("messages array cannot be empty")
    if len(batch.messages) > MAX_MESSAGES_PER_REQUEST:
        raise PayloadTooLarge(f"messages: at most {MAX_MESSAGES_PER_REQUEST} messages per request")
    submitted = sum(
        len(message.emails) + len(message.recipients or ()) for message in batch.messages
    )
    if submitted > max_recipients:
        raise PayloadTooLarge(
            f"messages: {submitted} recipients in one request, at most {max_recipients}"
        )
    return [
        await validate_message(session, message, f"messages[{index}]", now, senders)
        for index, message in enumerate(batch.messages)
    ]


def checked_topic_id(topic_id: str, where: str) -> str:
    """A topic id as topics are stored: stripped, 1 to 255 printable characters; anything else
    names no topic (a 400 naming `where`)."""
    topic_id = topic_id.strip()
    if not topic_id or len(topic_id) > MAX_TOPIC_ID_LENGTH or not topic_id.isprintable():
        raise InvalidInput(
            f"{where}: 1 to {MAX_TOPIC_ID_LENGTH} printable characters, not all spaces"
        )
    return topic_id


async def validate_message(
    session: AsyncSession,
    message: MessageIn,
    where: str,
    now: datetime,
    senders: SenderPolicy,
) -> ValidMessage:
    topic_id = checked_topic_id(message.topic_id, f"{where}.topicId")
    template = None
    if message.template_id is not None:
        for name, value in (("subject", message.subject), ("content", message.content)):
            if value.strip():
                raise InvalidInput(f"{where}.{name}: give templateId or {name}, not both")
        if message.text is not None:
            raise InvalidInput(f"{where}.text: give templateId or text, not both")
        template = await template_parts(
            session, message.template_id, message.template_version, where
        )
        subject, content, text = template.subject, template.content, template.text
    else:
        if message.template_version is not None:
            raise InvalidInput(f"{where}.templateVersion: only with templateId")
        subject, content, text = message.subject.strip(), message.content.strip(), message.text
    _check_parts(subject, content, text, where)
    templated = message.recipients is not None or message.data is not None or template is not None
    recipients, positions, own_data = _dedupe_recipients(message, where)
    shared_data = None
    recipient_data = None
    if templated:
        shared = message.data or {}
        shared_data = encode_data(shared, lambda: f"{where}.data")
        if len(shared_data) > MAX_DATA_BYTES:
            raise PayloadTooLarge(f"{where}.data: at most {MAX_DATA_BYTES} bytes as JSON")
        needs, compiled = template_needs(
            {TemplateKind.SUBJECT: subject, TemplateKind.HTML: content, TemplateKind.TEXT: text},
            where,
        )
        check_recipients_have(
            needs,
            shared,
            own_data,
            lambda submitted: _place(message, where, submitted, "data"),
            where,
        )
        recipient_data = _first_seen_data(message, where, positions, own_data)
        first = recipient_context(
            shared,
            recipient_data[0],
            email=recipients[0].key,
            request_id=0,
            unsubscribe_url=PREVIEW_UNSUBSCRIBE_PATH,
        )
        check_first_renders(compiled, first, where, _place(message, where, 0, "email"))
    return ValidMessage(
        topic_id=topic_id,
        subject=subject,
        content=content,
        scheduled_at=parse_scheduled_time(message.scheduled_at, f"{where}.scheduledAt", now),
        recipients=recipients,
        positions=positions,
        text=text,
        templated=templated,
        shared_data=shared_data,
        recipient_data=recipient_data,
        sender=check_sender(message.sender, senders, f"{where}.from"),
        reply_to=check_reply_to(message.reply_to, f"{where}.replyTo"),
        headers=check_headers(message.headers, f"{where}.headers"),
        tags=check_tags(message.tags, f"{where}.tags"),
        attachments=check_attachments(message.attachments, f"{where}.attachments"),
        template=template,
        track_clicks=message.track_clicks,
    )


def _check_parts(subject: str, content: str, text: str | None, where: str) -> None:
    if not subject:
        raise InvalidInput(f"{where}.subject: subject cannot be empty")
    if has_line_break(subject):
        raise InvalidInput(f"{where}.subject: must not contain line breaks")
    if len(subject) > MAX_SUBJECT_LENGTH:
        raise InvalidInput(f"{where}.subject: at most {MAX_SUBJECT_LENGTH} characters")
    if not content:
        raise InvalidInput(f"{where}.content: content cannot be empty")
    if len(content.encode()) > MAX_CONTENT_BYTES:
        raise PayloadTooLarge(f"{where}.content: at most {MAX_CONTENT_BYTES} bytes")
    if text is not None and len(text.encode()) > MAX_TEXT_BYTES:
        raise PayloadTooLarge(f"{where}.text: at most {MAX_TEXT_BYTES} bytes")


def _dedupe_recipients(
    message: MessageIn, where: str
) -> tuple[list[Recipient], list[int], list[Mapping[str, Any]]]:
    """The recipients without repeats, in first-seen order (`emails`, then `recipients`); for
    each address submitted, its index among them, and its own data (empty for `emails`)."""
    given = message.recipients or ()
    addresses = [*message.emails, *(entry["email"] for entry in given)]
    if not addresses:
        raise InvalidInput(f"{where}.emails: emails array cannot be empty")
    recipients: list[Recipient] = []
    index_of: dict[str, int] = {}
    positions: list[int] = []
    for submitted, raw in enumerate(addresses):
        recipient = parse_recipient(raw)
        if recipient is None:
            field = _place(message, where, submitted, "email")
            raise InvalidInput(f"{field}: invalid email address: {raw.strip()}")
        index = index_of.get(recipient.key)
        if index is None:
            index = index_of[recipient.key] = len(recipients)
            recipients.append(recipient)
        positions.append(index)
    own_data: list[Mapping[str, Any]] = [_NO_DATA] * len(message.emails)
    own_data += [entry.get("data", _NO_DATA) for entry in given]
    return recipients, positions, own_data


def _place(message: MessageIn, where: str, submitted: int, field: str) -> str:
    """Where the `submitted`th address of a message was given: an entry of `emails`, or
    `field` of an entry of `recipients`."""
    plain = len(message.emails)
    if submitted < plain:
        return f"{where}.emails[{submitted}]"
    return f"{where}.recipients[{submitted - plain}].{field}"


def _first_seen_data(
    message: MessageIn, where: str, positions: list[int], own_data: list[Mapping[str, Any]]
) -> list[str | None]:
    """Each de-duplicated recipient's data as JSON: that of its first entry (None: none)."""
    chosen: list[str | None] = []
    for submitted, index in enumerate(positions):
        if index == len(chosen):
            data = own_data[submitted]

            def place(submitted: int = submitted) -> str:
                return _place(message, where, submitted, "data")

            encoded = encode_data(data, place) if data else None
            if encoded is not None and len(encoded) > MAX_DATA_BYTES:
                raise PayloadTooLarge(f"{place()}: at most {MAX_DATA_BYTES} bytes as JSON")
            chosen.append(encoded)
    return chosen


def parse_scheduled_time(value: str | None, where: str, now: datetime) -> datetime:
    """A missing or past time means now (the seed silently dropped past-dated messages)."""
    if value is None or not value.strip():
        return now
    text = value.strip()
    if not _RFC3339.fullmatch(text):
        raise InvalidInput(
            f"{where}: invalid scheduledAt format: expected RFC 3339 with an offset, "
            f"e.g. 2024-12-25T10:00:00+09:00"
        )
    try:
        parsed = datetime.fromisoformat(text.replace("z", "Z").replace("t", "T"))
    except ValueError as error:
        raise InvalidInput(f"{where}: invalid scheduledAt format: {error}") from None
    try:
        in_utc = parsed.astimezone(UTC)
    except OverflowError:
        raise InvalidInput(f"{where}: out of range once converted to UTC") from None
    return max(in_utc, now)


async def accept_messages(
    session: AsyncSession,
    batch: MessagesIn,
    *,
    body_hash: str,
    idempotency_key: str | None,
    now: datetime,
    max_recipients: int,
    senders: SenderPolicy,
    elapsed: Callable[[], float],
) -> Reply:
    if idempotency_key is not None:
        # Claim the key first: a concurrent retry with the same key waits here for our commit
        # (or rollback), then replays our answer instead of storing the batch twice.
        claimed = await repository.claim_idempotency_key(
            session, idempotency_key, body_hash, now=now
        )
        if not claimed:
            return await _replay(session, idempotency_key, body_hash)
    messages = await validate_batch(
        session, batch, now=now, max_recipients=max_recipients, senders=senders
    )
    accepted: list[AcceptedMessageOut] = []
    for message in messages:
        content_id = await repository.insert_content(
            session,
            topic_id=message.topic_id,
            subject=message.subject,
            content=message.content,
            text=message.text,
            templated=message.templated,
            data=message.shared_data,
            sender=message.sender,
            reply_to=message.reply_to,
            headers=message.headers,
            tags=message.tags,
            template_id=None if message.template is None else message.template.template_id,
            template_version=None if message.template is None else message.template.version,
            track_clicks=message.track_clicks,
            now=now,
        )
        await repository.insert_attachments(session, content_id, message.attachments)
        ids = await repository.insert_requests(
            session,
            topic_id=message.topic_id,
            content_id=content_id,
            scheduled_at=message.scheduled_at,
            recipients=message.recipients,
            data=message.recipient_data,
            now=now,
        )
        await stats.count_queued(
            session,
            message.topic_id,
            [recipient.key for recipient in message.recipients],
            now=now,
        )
        accepted.append(
            AcceptedMessageOut(
                topic_id=message.topic_id,
                content_id=content_id,
                scheduled_at=message.scheduled_at,
                request_ids=[ids[index] for index in message.positions],
                duplicates=len(message.positions) - len(message.recipients),
            )
        )
    body = MessagesAcceptedOut(
        count=sum(len(message.recipients) for message in messages),
        elapsed=go_duration(elapsed()),
        messages=accepted,
    ).model_dump(mode="json", by_alias=True)
    if idempotency_key is not None:
        await repository.record_idempotent_reply(session, idempotency_key, 200, json.dumps(body))
    return Reply(200, body)


async def preview_message(
    session: AsyncSession,
    message: MessageIn,
    *,
    now: datetime,
    senders: SenderPolicy,
    public_base_url: str,
    track_clicks: bool,
) -> PreviewOut:
    """What the message's one recipient would get (without the open pixel), queuing nothing.
    Its links are shown as written: a preview has no request to make click links for. Where
    the email's text part would show its tracked links' URLs, the preview's shows them too.
    `track_clicks`: whether a message that does not say has its links tracked."""
    valid = await validate_message(session, message, "message", now, senders)
    if len(valid.recipients) != 1:
        raise InvalidInput("message.recipients: a preview is for exactly one recipient")
    show_links = track_clicks if valid.track_clicks is None else valid.track_clicks
    if not valid.templated:
        text = valid.text
        if text is None:
            text = text_of_html(valid.content, show_links=show_links)
        return PreviewOut(subject=valid.subject, content=valid.content, text=text)
    context = recipient_context(
        orjson.loads(valid.shared_data or "{}"),
        (valid.recipient_data or [None])[0],
        email=valid.recipients[0].key,
        request_id=0,
        unsubscribe_url=f"{public_base_url}{PREVIEW_UNSUBSCRIBE_PATH}",
    )
    try:
        subject, html, text = render_parts(
            compile_parts(valid.subject, valid.content, valid.text, show_links=show_links),
            context,
        )
    except RenderError as error:
        raise InvalidInput(f"message.{error}") from None
    return PreviewOut(subject=subject, content=html, text=text)


async def _replay(session: AsyncSession, key: str, body_hash: str) -> Reply:
    earlier = await repository.find_idempotent_reply(session, key)
    if earlier is None or earlier.status_code == 0:
        raise Conflict("Idempotency-Key: a request with this key is still being processed")
    if earlier.request_hash != body_hash:
        raise Conflict("Idempotency-Key: already used with a different request body")
    return Reply(earlier.status_code, json.loads(earlier.response))


def go_duration(seconds: float) -> str:
    """Go's time.Duration.String() form, as the seed answered `elapsed` (e.g. "1.2345ms")."""
    nanoseconds = round(seconds * 1e9)
    if nanoseconds < 1_000:
        return f"{nanoseconds}ns"
    if nanoseconds < 1_000_000:
        return f"{nanoseconds / 1e3:.9g}µs"
    if nanoseconds < 1_000_000_000:
        return f"{nanoseconds / 1e6:.9g}ms"
    minutes, rest = divmod(nanoseconds, 60_000_000_000)
    text = f"{rest / 1e9:.9g}s"
    if minutes:
        hours, minutes = divmod(minutes, 60)
        text = f"{minutes}m{text}" if not hours else f"{hours}h{minutes}m{text}"
    return text
