"""What SES events give the delivery engine, through its ports (`delivery/ports.py`):

- when a send is recorded, the events that arrived before it are attached (`after_sent`);
- every sweep, recent waiting events whose send was recorded meanwhile are too (`run`): an event
  and the send's record can cross in flight, in concurrent transactions;
- a row whose worker died mid-send is recorded Sent if SES reported it (`provider_sends`), not
  sent again.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from ses_sender.delivery.emails import ProviderSend, Sent
from ses_sender.ses_events import repository, service
from ses_sender.suppression.service import SoftBounceRule


class SesEventHooks:
    name = "attach SES events to sends recorded since"

    def __init__(self, soft_bounces: SoftBounceRule) -> None:
        self._soft_bounces = soft_bounces

    async def after_sent(
        self, session: AsyncSession, sent: Sequence[Sent], *, now: datetime
    ) -> None:
        by_message_id = {result.message_id: result.request_id for result in sent}
        for message_id in await service.waiting_message_ids(session, by_message_id):
            await service.adopt_waiting_events(
                session,
                by_message_id[message_id],
                message_id,
                soft_bounces=self._soft_bounces,
                now=now,
            )

    async def run(self, session: AsyncSession, *, now: datetime) -> None:
        await service.adopt_stranded_events(session, soft_bounces=self._soft_bounces, now=now)

    async def provider_sends(
        self, session: AsyncSession, request_ids: Sequence[int], *, now: datetime
    ) -> dict[int, ProviderSend]:
        reports = await repository.first_ses_reports(session, request_ids)
        return {
            request_id: ProviderSend(message_id, occurred_at, now)
            for request_id, (message_id, occurred_at) in reports.items()
        }
