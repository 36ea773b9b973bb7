"""The leases this worker holds: which rows, under which claim's token, and until when it is
sure of them.

A claimed row is this worker's until its lease runs out; then any worker's sweep may put it
back in the queue and another claim take it. So the worker renews the leases of every row it
has not finished with (`renew`, a few times a lease), and sends a row only while it is sure
of the lease for longer than a send may take (`may_send`). It is sure from the moment it
asked the database, not the moment it heard back: a renewal that is slow to answer shortens
what it knows, never lengthens it. A worker cut off from the database stops sending before its
leases run out, and sends nothing of a row once another claim may have it.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from collections.abc import Iterable
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ses_sender.clock import Clock
from ses_sender.delivery import repository
from ses_sender.delivery.emails import QueuedEmail

log = logging.getLogger(__name__)

RENEWALS_PER_LEASE = 4


class Leases:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        clock: Clock,
        lease_s: float,
        send_timeout_s: float,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._clock = clock
        self.lease_s = lease_s
        # A send may take this long; the lease must outlast it.
        self._needed_s = send_timeout_s
        self._tokens: dict[int, int] = {}  # request id -> its claim's token
        self._sure_until: dict[int, float] = {}  # request id -> monotonic time
        self.renew_every_s = lease_s / RENEWALS_PER_LEASE

    def __len__(self) -> int:
        return len(self._tokens)

    def claimed(self, emails: Iterable[QueuedEmail], *, asked_at: float) -> None:
        """Rows claimed by a statement sent at `asked_at` (monotonic)."""
        for email in emails:
            self._tokens[email.request_id] = email.lease_token
            self._sure_until[email.request_id] = asked_at + self.lease_s

    def may_send(self, request_id: int) -> bool:
        """Whether the lease surely lasts longer than a send may take."""
        sure_until = self._sure_until.get(request_id, -math.inf)
        return sure_until - self._clock.monotonic() > self._needed_s

    def done(self, request_ids: Iterable[int]) -> None:
        """Recorded or given back: no longer this worker's to renew."""
        for request_id in request_ids:
            self._tokens.pop(request_id, None)
            self._sure_until.pop(request_id, None)

    async def renew(self) -> None:
        """Extend every held lease; a row no longer claimed under its token (cancelled, or put
        back in the queue after its lease ran out) is never sent by this worker."""
        if not self._tokens:
            return
        by_token: dict[int, list[int]] = defaultdict(list)
        for request_id, token in self._tokens.items():
            by_token[token].append(request_id)
        asked_at = self._clock.monotonic()
        now = self._clock.now()
        until = now + timedelta(seconds=self.lease_s)
        renewed: set[int] = set()
        async with self._sessionmaker() as session, session.begin():
            for token, request_ids in by_token.items():
                renewed |= await repository.renew_leases(
                    session, request_ids, lease_token=token, until=until, now=now
                )
        lost = 0
        for request_ids in by_token.values():
            for request_id in request_ids:
                if request_id not in self._tokens:
                    continue  # finished while the renewal ran
                if request_id in renewed:
                    self._sure_until[request_id] = max(
                        self._sure_until[request_id], asked_at + self.lease_s
                    )
                else:
                    self._sure_until[request_id] = -math.inf
                    lost += 1
        if lost:
            log.info("%d claimed emails are no longer this worker's (cancelled or reclaimed)", lost)
