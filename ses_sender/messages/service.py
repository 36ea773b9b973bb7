"""Accepting a batch of messages: validate everything, then store it all in one transaction."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from ses_sender.errors import Conflict, InvalidInput, PayloadTooLarge
from ses_sender.messages import repository
from ses_sender.messages.addresses import Recipient, parse_recipient
from ses_sender.messages.schemas import (
    MAX_CONTENT_BYTES,
    MAX_IDEMPOTENCY_KEY_LENGTH,
    MAX_MESSAGES_PER_REQUEST,
    MAX_SUBJECT_LENGTH,
    MAX_TOPIC_ID_LENGTH,
    AcceptedMessageOut,
    MessageIn,
    MessagesAcceptedOut,
    MessagesIn,
)

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
    track_clicks: bool | None


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


def validate_batch(batch: MessagesIn, *, now: datetime, max_recipients: int) -> list[ValidMessage]:
    """Every message checked before anything is written; the first problem names its field."""
    if not batch.messages:
        raise InvalidInput("messages array cannot be empty")
    if len(batch.messages) > MAX_MESSAGES_PER_REQUEST:
        raise PayloadTooLarge(f"messages: at most {MAX_MESSAGES_PER_REQUEST} messages per request")
    submitted = sum(len(message.emails) for message in batch.messages)
    if submitted > max_recipients:
        raise PayloadTooLarge(
            f"messages: {submitted} recipients in one request, at most {max_recipients}"
        )
    return [
        _validate_message(message, f"messages[{index}]", now)
        for index, message in enumerate(batch.messages)
    ]


def _validate_message(message: MessageIn, where: str, now: datetime) -> ValidMessage:
    topic_id = message.topic_id.strip()
    if len(topic_id) > MAX_TOPIC_ID_LENGTH or not topic_id.isprintable():
        raise InvalidInput(f"{where}.topicId: at most {MAX_TOPIC_ID_LENGTH} printable characters")
    subject = message.subject.strip()
    if not subject:
        raise InvalidInput(f"{where}.subject: subject cannot be empty")
    if "\r" in subject or "\n" in subject:
        raise InvalidInput(f"{where}.subject: must not contain line breaks")
    if len(subject) > MAX_SUBJECT_LENGTH:
        raise InvalidInput(f"{where}.subject: at most {MAX_SUBJECT_LENGTH} characters")
    content = message.content.strip()
    if not content:
        raise InvalidInput(f"{where}.content: content cannot be empty")
    if len(content.encode()) > MAX_CONTENT_BYTES:
        raise PayloadTooLarge(f"{where}.content: at most {MAX_CONTENT_BYTES} bytes")
    recipients, positions = _dedupe_recipients(message.emails, where)
    return ValidMessage(
        topic_id=topic_id,
        subject=subject,
        content=content,
        scheduled_at=parse_scheduled_time(message.scheduled_at, f"{where}.scheduledAt", now),
        recipients=recipients,
        positions=positions,
        track_clicks=message.track_clicks,
    )


def _dedupe_recipients(emails: list[str], where: str) -> tuple[list[Recipient], list[int]]:
    if not emails:
        raise InvalidInput(f"{where}.emails: emails array cannot be empty")
    recipients: list[Recipient] = []
    index_of: dict[str, int] = {}
    positions: list[int] = []
    for position, raw in enumerate(emails):
        recipient = parse_recipient(raw)
        if recipient is None:
            raise InvalidInput(f"{where}.emails[{position}]: invalid email address: {raw.strip()}")
        index = index_of.get(recipient.key)
        if index is None:
            index = index_of[recipient.key] = len(recipients)
            recipients.append(recipient)
        positions.append(index)
    return recipients, positions


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
    return max(parsed.astimezone(UTC), now)


async def accept_messages(
    session: AsyncSession,
    batch: MessagesIn,
    *,
    body_hash: str,
    idempotency_key: str | None,
    now: datetime,
    max_recipients: int,
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
    messages = validate_batch(batch, now=now, max_recipients=max_recipients)
    accepted: list[AcceptedMessageOut] = []
    for message in messages:
        content_id = await repository.insert_content(
            session,
            topic_id=message.topic_id,
            subject=message.subject,
            content=message.content,
            track_clicks=message.track_clicks,
            now=now,
        )
        ids = await repository.insert_requests(
            session,
            topic_id=message.topic_id,
            content_id=content_id,
            scheduled_at=message.scheduled_at,
            recipients=message.recipients,
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
