from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from ses_sender.composition import Runtime
from ses_sender.delivery.worker import Worker
from ses_sender.messages.addresses import recipient_key
from ses_sender.models import Content, Request, RequestStatus
from ses_sender.transports.base import OutgoingEmail, SendError
from tests.support.fixtures import fake_aws_env, ses_stub

__all__ = ["fake_aws_env", "ses_stub"]

# A worker factory: make_worker(transport, rate=..., **Worker overrides) -> Worker.
WorkerFactory = Callable[..., Worker]


@dataclass
class RecordingTransport:
    """Accepts every email (or raises what a test scripted for an address); remembers them."""

    name: str = "recording"
    sent: list[OutgoingEmail] = field(default_factory=list)
    sent_at: list[float] = field(default_factory=list)
    failures: dict[str, list[SendError]] = field(default_factory=dict)
    latency_s: float = 0.0
    begun: int = 0  # sends begun, whether or not they have returned

    async def send(self, email: OutgoingEmail, *, on_sent: Callable[[], None] | None = None) -> str:
        self.begun += 1
        if on_sent is not None:
            on_sent()
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        scripted = self.failures.get(email.to)
        if scripted:
            raise scripted.pop(0)
        self.sent.append(email)
        self.sent_at.append(asyncio.get_running_loop().time())
        return f"ses-{email.request_id}"

    async def close(self) -> None:
        return None


async def queue_emails(
    runtime: Runtime,
    addresses: list[str],
    *,
    topic: str = "t1",
    html: str = "<html><body><p>Hi</p></body></html>",
    due_at: datetime | None = None,
) -> list[int]:
    now = datetime.now(UTC)
    async with runtime.sessionmaker() as session, session.begin():
        content = Content(topic_id=topic, subject="Hello", content=html, created_at=now)
        session.add(content)
        await session.flush()
        rows = [
            Request(
                topic_id=topic,
                to=address,
                recipient_key=recipient_key(address),
                content_id=content.id,
                scheduled_at=due_at or now,
                due_at=due_at or now,
                status=RequestStatus.CREATED,
                attempts=0,
                open_count=0,
                click_count=0,
                created_at=now,
                updated_at=now,
            )
            for address in addresses
        ]
        session.add_all(rows)
        await session.flush()
        return [row.id for row in rows]


async def requests_by_id(runtime: Runtime) -> dict[int, Request]:
    async with runtime.sessionmaker() as session:
        rows = (await session.scalars(select(Request))).all()
    return {row.id: row for row in rows}


async def wait_until(
    predicate: Callable[[], Any],
    *,
    within_s: float = 10.0,
    worker: asyncio.Task[None] | None = None,
) -> None:
    """Poll `predicate`; fail early (with its error) if the worker task stops meanwhile."""
    deadline = asyncio.get_running_loop().time() + within_s
    while not await predicate():
        if worker is not None and worker.done():
            worker.result()
            raise AssertionError("the worker stopped before the condition was met")
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)
