"""The guardrail trips on bounces taken in as SES sends them: signed SNS notifications."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest

from ses_sender.composition import Runtime
from ses_sender.config import Settings
from ses_sender.guardrail.monitor import GuardrailMonitor
from ses_sender.guardrail.service import Limits
from ses_sender.sending.service import active_pauses
from tests.support.clock import FakeClock
from tests.support.rows import add_sends
from tests.support.ses_events import ses_message
from tests.support.signed_sns import post, publisher, signed_sns_runtime


@pytest.fixture
async def runtime(settings: Settings, clock: FakeClock) -> AsyncIterator[Runtime]:
    async with signed_sns_runtime(settings, clock) as runtime:
        yield runtime


async def test_signed_hard_bounces_over_the_rate_pause_sending(
    client: httpx.AsyncClient, runtime: Runtime, clock: FakeClock
) -> None:
    sent_at = clock.now() - timedelta(minutes=30)
    request_ids = await add_sends(runtime, 200, sent_at=sent_at)
    signing = publisher(clock)
    monitor = GuardrailMonitor(
        sessionmaker=runtime.sessionmaker,
        limits=Limits(bounce_rate=0.05, complaint_rate=0.001, min_sends=200),
        clock=clock,
    )

    async def bounce(request_id: int, bounce_type: str) -> None:
        message = ses_message(
            "Bounce",
            at=sent_at + timedelta(seconds=5),
            ses_message_id=f"ses-{request_id}",
            request_id=request_id,
            recipient=f"r{request_ids.index(request_id)}@example.net",  # as add_sends made it
            bounceType=bounce_type,
        )
        response = await post(client, signing.notification(message))
        assert response.json() == {"message": "ok"}

    for request_id in request_ids[:40]:
        await bounce(request_id, "Transient")  # soft: SES does not count them, nor do we
    for request_id in request_ids[40:50]:
        await bounce(request_id, "Permanent")  # 10 of 200: 5 %, not over
    assert await monitor.check() is None

    await bounce(request_ids[50], "Permanent")
    reason = await monitor.check()

    assert reason is not None
    assert reason.startswith("bounce rate 5.50% (11 hard bounces of 200 emails")
    async with runtime.sessionmaker() as session:
        (pause,) = await active_pauses(session, now=clock.now())
    assert (pause.name, pause.reason, pause.until) == ("guardrail", reason, None)
