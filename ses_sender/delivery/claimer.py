"""Claiming: due emails taken under a lease, screened by the gates, each given its content."""

from __future__ import annotations

import secrets
from collections import OrderedDict, defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from types import MappingProxyType

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ses_sender.clock import Clock
from ses_sender.delivery import repository
from ses_sender.delivery.emails import ContentParts, Hold, QueuedEmail, Stop, Verdict
from ses_sender.delivery.leases import Leases
from ses_sender.delivery.ports import ChangeCounter, ClaimGate
from ses_sender.models import RequestChange, RequestStatus

LEASE_TOKEN_BITS = 63  # a positive BIGINT

CONTENT_CACHE_SIZE = 256  # contents; a campaign's recipients all share one
CONTENT_CACHE_BYTES = 64 * 1024 * 1024  # and no more than this, attachments included


class Claimer:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        gates: Sequence[ClaimGate],
        counter: ChangeCounter,
        clock: Clock,
        leases: Leases,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._gates = gates
        self._counter = counter
        self._clock = clock
        self._leases = leases
        self._lease = timedelta(seconds=leases.lease_s)
        self._contents: OrderedDict[int, ContentParts] = OrderedDict()

    async def claim(self, limit: int) -> list[tuple[QueuedEmail, ContentParts]]:
        """Up to `limit` emails to send now, each with its content, in one transaction, under a
        lease token of their own."""
        asked_at = self._clock.monotonic()
        now = self._clock.now()
        token = secrets.randbits(LEASE_TOKEN_BITS)
        async with self._sessionmaker() as session, session.begin():
            claimed = await repository.claim_due(
                session, now=now, lease_until=now + self._lease, lease_token=token, limit=limit
            )
            verdicts = await self._screen(session, claimed, lease_token=token, now=now)
            await self._counter.changed(session, _claim_changes(claimed, verdicts))
            batch = [queued for queued in claimed if queued.request_id not in verdicts]
            contents = await self._contents_of(session, batch)
        self._leases.claimed(batch, asked_at=asked_at)
        return [(queued, contents[queued.content_id]) for queued in batch]

    async def release(self, emails: Sequence[QueuedEmail]) -> None:
        """Claimed but never tried (the worker is stopping, or could not pace them)."""
        by_token: dict[int, list[int]] = defaultdict(list)
        for queued in emails:
            by_token[queued.lease_token].append(queued.request_id)
        async with self._sessionmaker() as session, session.begin():
            released: set[tuple[int, int]] = set()
            for token, request_ids in by_token.items():
                ours = await repository.release(
                    session, request_ids, lease_token=token, now=self._clock.now()
                )
                released |= {(token, request_id) for request_id in ours}
            await self._counter.changed(
                session,
                [
                    _moved(queued, RequestStatus.PROCESSING, RequestStatus.CREATED)
                    for queued in emails
                    if (queued.lease_token, queued.request_id) in released
                ],
            )
        self._leases.done(queued.request_id for queued in emails)

    async def _screen(
        self,
        session: AsyncSession,
        claimed: Sequence[QueuedEmail],
        *,
        lease_token: int,
        now: datetime,
    ) -> dict[int, Verdict]:
        """What the gates keep back: stopped or held at once, in the claim's transaction (which
        holds the rows: both statements change every one of them)."""
        verdicts: dict[int, Verdict] = {}
        for gate in self._gates:
            remaining = [queued for queued in claimed if queued.request_id not in verdicts]
            if remaining:
                verdicts.update(await gate.screen(session, remaining, now=now))
        stops = {rid: verdict for rid, verdict in verdicts.items() if isinstance(verdict, Stop)}
        holds = [rid for rid, verdict in verdicts.items() if isinstance(verdict, Hold)]
        await repository.stop(session, stops, lease_token=lease_token, now=now)
        await repository.release(session, holds, lease_token=lease_token, now=now, hold=True)
        return verdicts

    async def _contents_of(
        self, session: AsyncSession, batch: Sequence[QueuedEmail]
    ) -> dict[int, ContentParts]:
        needed = {queued.content_id for queued in batch}
        found = {i: self._contents[i] for i in needed if i in self._contents}
        if missing := needed - found.keys():
            found.update(await repository.contents(session, missing))
        for content_id, parts in found.items():
            self._contents[content_id] = parts
            self._contents.move_to_end(content_id)
        cached_size = sum(parts.size for parts in self._contents.values())
        while len(self._contents) > CONTENT_CACHE_SIZE or (
            cached_size > CONTENT_CACHE_BYTES and len(self._contents) > 1
        ):
            cached_size -= self._contents.popitem(last=False)[1].size
        return found


# Shared by every change of a batch (the counters work out a run of one change once).
_STATUS: Mapping[RequestStatus, Mapping[str, int]] = {
    status: MappingProxyType({"status": int(status)}) for status in RequestStatus
}


def _moved(queued: QueuedEmail, before: RequestStatus, after: RequestStatus) -> RequestChange:
    return RequestChange(queued.topic_id, queued.recipient_key, _STATUS[before], _STATUS[after])


def _claim_changes(
    claimed: Sequence[QueuedEmail], verdicts: Mapping[int, Verdict]
) -> list[RequestChange]:
    """What a claim did to each row, the gates' verdicts included: claimed, stopped, or held
    (queued still, which counts for nothing)."""
    changes = []
    for queued in claimed:
        verdict = verdicts.get(queued.request_id)
        if verdict is None:
            changes.append(_moved(queued, RequestStatus.CREATED, RequestStatus.PROCESSING))
        elif isinstance(verdict, Stop):
            changes.append(
                RequestChange(
                    queued.topic_id,
                    queued.recipient_key,
                    _STATUS[RequestStatus.CREATED],
                    {"status": int(RequestStatus.STOPPED), "stop_reason": int(verdict.reason)},
                )
            )
    return changes
