"""Errors reach Sentry: a local HTTP endpoint stands in for sentry.io as the DSN."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest
import sentry_sdk
from aiohttp import web

from ses_sender.composition import Runtime, create_app
from ses_sender.config import Settings
from ses_sender.observability import flush_sentry, init_sentry
from ses_sender.transports.base import OutgoingEmail
from tests.support.polling import wait_until, while_running
from tests.support.rows import queue_emails, requests_by_id
from tests.support.workers import RecordingTransport, WorkerFactory


class SentryInbox:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    async def receive(self, request: web.Request) -> web.Response:
        body = await request.read()  # aiohttp has already undone Content-Encoding
        for line in body.splitlines():
            item = json.loads(line) if line.startswith(b"{") else None
            if isinstance(item, dict) and ("exception" in item or "logentry" in item):
                self.events.append(item)
        return web.json_response({})

    def exception_types(self) -> list[str]:
        return [
            value["type"]
            for event in self.events
            for value in event.get("exception", {}).get("values", [])
        ]

    def messages(self) -> list[str]:
        return [event.get("logentry", {}).get("message", "") for event in self.events]


@pytest.fixture
async def sentry_inbox() -> AsyncIterator[tuple[SentryInbox, str]]:
    inbox = SentryInbox()
    app = web.Application()
    app.router.add_post("/api/{project}/envelope/", inbox.receive)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield inbox, f"http://public@127.0.0.1:{port}/1"
    await runner.cleanup()


@pytest.fixture
def sentry_on(sentry_inbox: tuple[SentryInbox, str], settings: Settings) -> Iterator[SentryInbox]:
    inbox, dsn = sentry_inbox
    init_sentry(settings.model_copy(update={"sentry_dsn": dsn, "env": "test"}))
    yield inbox
    sentry_sdk.get_client().close()
    sentry_sdk.init()  # back to a client that sends nothing


async def received(inbox: SentryInbox) -> bool:
    await asyncio.to_thread(flush_sentry)
    return bool(inbox.events)


async def test_an_unhandled_api_error_reaches_sentry(
    sentry_on: SentryInbox, runtime: Runtime
) -> None:
    app = create_app(runtime)

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("kaboom in the API")

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        response = await client.get("/boom")

    assert response.status_code == 500
    await wait_until(lambda: received(sentry_on), "the event at Sentry")
    assert "RuntimeError" in sentry_on.exception_types()
    assert sentry_on.events[0]["environment"] == "test"


async def test_an_unexpected_worker_error_reaches_sentry(
    sentry_on: SentryInbox, live_runtime: Runtime, make_worker: WorkerFactory
) -> None:
    class Broken(RecordingTransport):
        async def send(
            self, email: OutgoingEmail, *, on_sent: Callable[[], None] | None = None
        ) -> str:
            raise ValueError("kaboom in a transport")

    worker = make_worker(Broken())
    [request_id] = await queue_emails(live_runtime, ["a@example.com"])
    task = asyncio.create_task(worker.run())

    async def failed_once() -> bool:
        return "kaboom" in ((await requests_by_id(live_runtime))[request_id].error or "")

    await wait_until(while_running(task, failed_once), "the send failed once")
    worker.stop()
    await task
    await wait_until(lambda: received(sentry_on), "the event at Sentry")
    assert "ValueError" in sentry_on.exception_types()
