"""Webhooks from both ends: a user's endpoint on a loopback port (`Receiver`: records what it
is sent, answers as scripted), and the service's side (creating one, building senders)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from aiohttp import web
from sqlalchemy import select

from ses_sender.composition import Runtime
from ses_sender.models import WebhookDelivery
from ses_sender.webhooks import service
from ses_sender.webhooks.worker import WebhookSender
from tests.support.rows import add_request

# A sender factory: make_sender(**WebhookSender overrides) -> WebhookSender.
SenderFactory = Callable[..., WebhookSender]


async def create_webhook(client: httpx.AsyncClient, url: str, **fields: Any) -> dict[str, Any]:
    """Through the API, as a user does; the answer holds the secret."""
    response = await client.post("/v1/webhooks", json={"url": url, **fields})
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def deliveries(runtime: Runtime) -> list[WebhookDelivery]:
    async with runtime.sessionmaker() as session:
        found = await session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id))
        return list(found.all())


async def queue_opens(runtime: Runtime, count: int) -> list[int]:
    """`count` requests, each with one of our opens queued for every webhook."""
    request_ids = []
    for index in range(count):
        request_id = await add_request(runtime, message_id=f"msg-{index}", to=f"r{index}@x.net")
        async with runtime.sessionmaker() as session, session.begin():
            now = runtime.clock.now()
            await service.enqueue_event(
                session,
                event_type="Open",
                request_id=request_id,
                occurred_at=now,
                details={},
                now=now,
            )
        request_ids.append(request_id)
    return request_ids


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]
    body: bytes

    @property
    def delivery(self) -> str:
        return self.headers["X-Ses-Sender-Delivery"]

    def document(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed

    def signed_by(self, secret: str) -> bool:
        """What a receiver does: recompute the HMAC over "<timestamp>.<body>" and compare."""
        timestamp = self.headers["X-Ses-Sender-Timestamp"]
        expected = hmac.new(
            secret.encode(), timestamp.encode() + b"." + self.body, hashlib.sha256
        ).hexdigest()
        return hmac.compare_digest(self.headers["X-Ses-Sender-Signature"], f"v1={expected}")

    def signed_v2_by(self, secret: str) -> bool:
        """The same over "<timestamp>.<delivery id>.<body>"."""
        signed = f"{self.headers['X-Ses-Sender-Timestamp']}.{self.delivery}.".encode() + self.body
        expected = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
        return hmac.compare_digest(self.headers["X-Ses-Sender-Signature-V2"], f"v2={expected}")


@dataclass
class Receiver:
    #: Statuses to answer, in order; once used up, 200.
    script: list[int] = field(default_factory=list)
    #: Or the status for each request, decided from it.
    answer: Callable[[Received], int] | None = None
    #: Where a 3xx answer points.
    redirect_to: str = ""
    #: When set, each request waits for it before answering (a slow or hung receiver).
    gate: asyncio.Event | None = None
    #: Every request, as it arrived.
    received: list[Received] = field(default_factory=list)
    #: Every request answered, with the status it got, as answered.
    answers: list[tuple[Received, int]] = field(default_factory=list)
    in_flight: int = 0
    most_in_flight: int = 0
    #: Where it listens.
    host: str = "127.0.0.1"
    _runner: web.AppRunner | None = None
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hooks", self._handle)
        self._runner = web.AppRunner(app, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        if self.gate is not None:
            self.gate.set()
        if self._runner is not None:
            await self._runner.cleanup()

    def deliveries(self) -> list[str]:
        """The delivery id of each request received that was answered 2xx."""
        return [received.delivery for received, status in self.answers if 200 <= status < 300]

    def _status_for(self, received: Received) -> int:
        if self.answer is not None:
            return self.answer(received)
        return self.script.pop(0) if self.script else 200

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            received = Received(dict(request.headers), await request.read())
            self.received.append(received)
            if self.gate is not None:
                await self.gate.wait()
            status = self._status_for(received)
            self.answers.append((received, status))
            if 300 <= status < 400:
                return web.Response(status=status, headers={"Location": self.redirect_to})
            return web.Response(status=status, text="ok" if status < 300 else "try later")
        finally:
            self.in_flight -= 1
