"""The suppression list: the addresses we never mail again, and the rules that put one there.

A permanent bounce, a complaint or an unsubscribe suppresses an address at once; soft bounces
only when `SoftBounceRule.limit` messages to it bounced within the window. Queued email to a
suppressed address is stopped when it is claimed (`SuppressedAddresses`).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from ses_sender.cursor import decode_cursor, encode_cursor
from ses_sender.delivery.emails import QueuedEmail, Stop, Verdict
from ses_sender.errors import InvalidInput, NotFound, PayloadTooLarge
from ses_sender.messages.addresses import parse_recipient
from ses_sender.models import StopReason, SuppressionReason
from ses_sender.suppression import repository
from ses_sender.suppression.schemas import (
    MAX_EMAILS_PER_REQUEST,
    SuppressionOut,
    SuppressionPageOut,
    SuppressionsAddedOut,
    SuppressionsIn,
)

# How a request stopped because of its address starts its `error`, e.g. "suppressed: bounce".
SUPPRESSED_ERROR_PREFIX = "suppressed: "
MAX_SEARCH_LENGTH = 320  # an address's own limit


@dataclass(frozen=True, slots=True)
class SoftBounceRule:
    """Suppress an address once `limit` messages to it bounced within `window`."""

    limit: int
    window: timedelta


class FeedbackKind(enum.Enum):
    COMPLAINT = enum.auto()
    HARD_BOUNCE = enum.auto()  # the address does not take mail
    SOFT_BOUNCE = enum.auto()  # transient or undetermined: mailbox full, auto-reply, ...


@dataclass(frozen=True, slots=True)
class Feedback:
    """What a recipient's mailbox said of an email of ours."""

    address: str  # the recipient key
    kind: FeedbackKind
    detail: str  # for people: the feedback type, or the bounce kind and the server's words
    # Soft bounces only: our messages to the address that bounced within the rule's window,
    # this one included.
    recent_bounces: int = 0


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
    session: AsyncSession, feedback: Feedback, *, rule: SoftBounceRule, now: datetime
) -> None:
    """Suppress the address if the feedback says to: a complaint or a hard bounce at once, soft
    bounces once `rule.limit` of them fall within `rule.window`."""
    match feedback.kind:
        case FeedbackKind.COMPLAINT:
            reason, detail = SuppressionReason.COMPLAINT, feedback.detail
        case FeedbackKind.HARD_BOUNCE:
            reason, detail = SuppressionReason.BOUNCE, feedback.detail
        case FeedbackKind.SOFT_BOUNCE:
            if feedback.recent_bounces < rule.limit:
                return
            reason = SuppressionReason.BOUNCE
            detail = (
                f"{_count(rule.limit, 'bounce')} within {_count(rule.window.days, 'day')}, "
                f"the last {feedback.detail}"
            )
    await suppress(session, [feedback.address], reason, detail=detail, now=now)


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


class SuppressedAddresses:
    """Keeps email to a suppressed address unsent (the delivery engine's `ClaimGate` port).

    Checked on the rows just claimed, so the work is bounded by one batch whatever the size of
    the backlog or of the list: one lookup of the batch's addresses by primary key.
    """

    async def screen(
        self, session: AsyncSession, claimed: Sequence[QueuedEmail], *, now: datetime
    ) -> dict[int, Verdict]:
        reasons = await repository.reasons(session, {queued.recipient_key for queued in claimed})
        return {
            queued.request_id: Stop(
                StopReason.SUPPRESSED, f"{SUPPRESSED_ERROR_PREFIX}{reasons[queued.recipient_key]}"
            )
            for queued in claimed
            if queued.recipient_key in reasons
        }


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
    containing: str | None = None,
) -> SuppressionPageOut:
    """`containing`: only addresses with this text in them (any case)."""
    if containing is not None and len(containing) > MAX_SEARCH_LENGTH:
        raise InvalidInput(f"search: at most {MAX_SEARCH_LENGTH} characters")
    found = await repository.page(
        session,
        containing=containing or None,
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
