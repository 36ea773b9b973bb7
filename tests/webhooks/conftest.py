from __future__ import annotations

import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from ses_sender.composition import Runtime
from ses_sender.config import Settings
from ses_sender.webhooks.retry import WebhookRetryPolicy
from ses_sender.webhooks.worker import WebhookSender
from tests.support.settings import make_settings
from tests.support.webhooks import Receiver, SenderFactory


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    """The receivers here listen on 127.0.0.1: a deployment posting inside its own network."""
    return make_settings(
        database_url, OUTBOX_DIR=str(tmp_path / "outbox"), WEBHOOK_ALLOW_PRIVATE=True
    )


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
            "allow_private": True,
        }
        options.update(overrides)
        sender = WebhookSender(**options)
        made.append(sender)
        return sender

    yield build
    for sender in made:
        await sender.close()
