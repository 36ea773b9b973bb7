"""The suppression list: the addresses we never mail again, and the rules that put one there.

A permanent bounce, a complaint or an unsubscribe suppresses an address at once; soft bounces
only when `SoftBounceRule.limit` messages to it bounced within the window. The delivery claim
stops queued email to a suppressed address (delivery/repository.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from ses_sender.cursor import decode_cursor, encode_cursor
from ses_sender.errors import InvalidInput, NotFound, PayloadTooLarge
from ses_sender.messages.addresses import parse_recipient, recipient_key
from ses_sender.models import SuppressionReason
from ses_sender.ses_events.schemas import SesEvent, SesEventType
from ses_sender.suppression import repository
from ses_sender.suppression.schemas import (
    MAX_EMAILS_PER_REQUEST,
    SuppressionOut,
    SuppressionPageOut,
    SuppressionsAddedOut,
    SuppressionsIn,
)


@dataclass(frozen=True, slots=True)
class SoftBounceRule:
    """Suppress an address once `limit` messages to it bounced within `window`."""

    limit: int
    window: timedelta


async def suppress(
    session: AsyncSession,
    emails: Sequence[str],
    reason: SuppressionReason,
    *,
    detail: str | None,
    now: datetime,
) -> int:
    """Put recipient keys on the list (those already there keep their reason); how many new."""
    return await repository.add(session, emails, reason=reason.value, detail=detail, now=now)


async def record_feedback(
    session: AsyncSession,
    event: SesEvent,
    recipients: Sequence[str],
    *,
    rule: SoftBounceRule,
    now: datetime,
) -> None:
    """Act on an SES event just stored for `recipients` (recipient keys)."""
    if event.event_type is SesEventType.COMPLAINT:
        feedback = event.complaint_feedback_type or "no feedback type"
        await suppress(session, recipients, SuppressionReason.COMPLAINT, detail=feedback, now=now)
    elif event.is_permanent_bounce:
        for email in recipients:
            detail = _bounce_detail(event, email)
            await suppress(session, [email], SuppressionReason.BOUNCE, detail=detail, now=now)
    elif event.event_type is SesEventType.BOUNCE:
        since = now - rule.window
        for email in recipients:
            if await repository.bounced_messages(session, email, since=since) >= rule.limit:
                detail = (
                    f"{_count(rule.limit, 'bounce')} within {_count(rule.window.days, 'day')}, "
                    f"the last {_bounce_detail(event, email)}"
                )
                await suppress(session, [email], SuppressionReason.BOUNCE, detail=detail, now=now)


def _bounce_detail(event: SesEvent, email: str) -> str:
    """The bounce kind, and the receiving server's words for this address when SES gave them."""
    kind = event.bounce_kind or "Bounce"
    for entry in event.detail.get("bouncedRecipients", []):
        if not isinstance(entry, dict):
            continue
        address, diagnostic = entry.get("emailAddress"), entry.get("diagnosticCode")
        if isinstance(address, str) and recipient_key(address) == email and diagnostic:
            return f"{kind}: {diagnostic}"
    return kind


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


# -- the API --------------------------------------------------------------------------------


async def add_suppressions(
    session: AsyncSession, body: SuppressionsIn, *, now: datetime
) -> SuppressionsAddedOut:
    emails = _valid_keys(body.emails)
    added = await suppress(session, emails, body.reason, detail=body.detail, now=now)
    return SuppressionsAddedOut(added=added, existing=len(emails) - added)


def _valid_keys(emails: list[str]) -> list[str]:
    """Every address checked before anything is written; duplicates taken once."""
    if not emails:
        raise InvalidInput("emails: must not be empty")
    if len(emails) > MAX_EMAILS_PER_REQUEST:
        raise PayloadTooLarge(f"emails: at most {MAX_EMAILS_PER_REQUEST} addresses per request")
    keys: dict[str, None] = {}
    for position, raw in enumerate(emails):
        keys[_key(raw, f"emails[{position}]")] = None
    return list(keys)


async def list_suppressions(
    session: AsyncSession,
    *,
    email: str | None,
    reason: SuppressionReason | None,
    cursor: str | None,
    limit: int,
) -> SuppressionPageOut:
    found = await repository.page(
        session,
        email=None if email is None else _key(email, "email"),
        reason=None if reason is None else reason.value,
        after=None if cursor is None else decode_cursor(cursor, parts=1)[0],
        # One more than asked says whether another page follows.
        limit=limit + 1,
    )
    shown = found[:limit]
    return SuppressionPageOut(
        suppressions=[
            SuppressionOut(
                email=row.email, reason=row.reason, detail=row.detail, created_at=row.created_at
            )
            for row in shown
        ],
        next_cursor=encode_cursor(shown[-1].email) if len(found) > limit else None,
    )


async def remove_suppression(session: AsyncSession, email: str) -> None:
    key = _key(email, "email")
    if not await repository.remove(session, key):
        raise NotFound(f"email: {key} is not suppressed")


def _key(raw: str, field: str) -> str:
    recipient = parse_recipient(raw)
    if recipient is None:
        raise InvalidInput(f"{field}: invalid email address: {raw.strip()}")
    return recipient.key
