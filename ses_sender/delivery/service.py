"""What the engine offers the features it serves."""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy.ext.asyncio import AsyncSession

from ses_sender.delivery import repository
from ses_sender.delivery.emails import ProviderSend


async def record_provider_sends(session: AsyncSession, sends: Mapping[int, ProviderSend]) -> None:
    """The provider reported these requests sent (an SES event): each is recorded Sent, unless
    a send with a message id is recorded already, and only if we tried it — so a row requeued
    after its worker died is not sent a second time, and a row cancelled in flight or sent
    unconfirmed shows what really happened.
    """
    await repository.record_provider_sends(session, sends)
