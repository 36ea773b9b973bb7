from __future__ import annotations

import random
from collections.abc import AsyncIterator
from typing import Any

import pytest

from ses_sender.composition import Runtime
from ses_sender.webhooks.retry import WebhookRetryPolicy
from ses_sender.webhooks.worker import WebhookSender
from tests.support.webhooks import Receiver, SenderFactory


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    receiver = Receiver()
    await receiver.start()
    try:
        yield receiver
    finally:
        await receiver.stop()


@pytest.fixture
async def make_sender(runtime: Runtime) -> AsyncIterator[SenderFactory]:
    """WebhookSenders on the runtime's clock; closed after the test."""
    made: list[WebhookSender] = []

    def build(**overrides: Any) -> WebhookSender:
        options: dict[str, Any] = {
            "sessionmaker": runtime.sessionmaker,
            "clock": runtime.clock,
            "retry": WebhookRetryPolicy(jitter=random.Random(7)),
            "concurrency": 4,
            "timeout_s": 5.0,
        }
        options.update(overrides)
        sender = WebhookSender(**options)
        made.append(sender)
        return sender

    yield build
    for sender in made:
        await sender.close()
