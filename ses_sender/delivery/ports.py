"""What the delivery engine needs from the features it serves. Declared here, implemented by
them (ses_events, sending, control, suppression, stats, the composer), wired by the composition
root: the engine imports no feature.

Each hook runs inside one of the engine's own transactions, so what it writes commits, or rolls
back, with the engine's own change.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from ses_sender.delivery.emails import ContentParts, ProviderSend, QueuedEmail, Sent, Verdict
from ses_sender.models import RequestChange
from ses_sender.transports.base import OutgoingEmail


class Composer(Protocol):
    def compose(self, queued: QueuedEmail, content: ContentParts) -> OutgoingEmail:
        """The email this recipient receives; raises a `SendError` (a `PermanentError` for a
        template that cannot be rendered for this recipient)."""
        ...


class ClaimGate(Protocol):
    async def screen(
        self, session: AsyncSession, claimed: Sequence[QueuedEmail], *, now: datetime
    ) -> dict[int, Verdict]:
        """Of rows just claimed, and before any is sent, those not to send now, by request id."""
        ...


class ChangeCounter(Protocol):
    """The read model's counters, which follow every change the engine makes to requests."""

    async def changed(self, session: AsyncSession, changes: Sequence[RequestChange]) -> None:
        """These rows changed so in this transaction, as the engine's own statements told it
        (`RequestChange`): the counters read nothing."""
        ...

    def counting(
        self, session: AsyncSession, request_ids: Collection[int]
    ) -> AbstractAsyncContextManager[object]:
        """Around a change to these requests that the engine cannot describe (a sweep of
        expired leases, sends of rows no longer claimed): their rows are read before and after."""
        ...


class SentHook(Protocol):
    async def after_sent(
        self, session: AsyncSession, sent: Sequence[Sent], *, now: datetime
    ) -> None:
        """In the transaction that records these sends (attach what arrived before them)."""
        ...


class SendEvidence(Protocol):
    async def provider_sends(
        self, session: AsyncSession, request_ids: Sequence[int], *, now: datetime
    ) -> dict[int, ProviderSend]:
        """Which of these requests the provider reported as sent: a worker that died between
        the send and its record left them claimed, and they must not be sent again."""
        ...


class HousekeepingJob(Protocol):
    name: str

    async def run(self, session: AsyncSession, *, now: datetime) -> None:
        """A periodic chore in a transaction of its own (see `housekeeping.py`)."""
        ...


class PauseSource(Protocol):
    """The pauses of all sending, shared by every worker (an operator's, the guardrail's, the
    provider account's), and the two the engine sets itself: when the provider refuses the
    account, and when it fails every send (`outage.py`), which only the engine lifts."""

    async def sending_paused(self, session: AsyncSession, *, now: datetime) -> bool: ...

    async def pause_for_account(
        self, session: AsyncSession, reason: str, *, now: datetime, until: datetime | None
    ) -> None: ...

    async def resume_for_account(self, session: AsyncSession) -> None: ...

    async def pause_for_outage(
        self, session: AsyncSession, reason: str, *, now: datetime
    ) -> None: ...

    async def outage_paused(self, session: AsyncSession, *, now: datetime) -> bool: ...

    async def resume_after_outage(self, session: AsyncSession) -> None: ...
