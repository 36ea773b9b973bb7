"""Shared fixtures: a migrated database per backend (SQLite and PostgreSQL), a Runtime, a client.

Every database test runs twice, once per backend. PostgreSQL tests skip when no server answers
on 127.0.0.1:5432, except in CI (SES_SENDER_REQUIRE_POSTGRES=1), where that is a failure.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from ses_sender.app import create_app
from ses_sender.clock import SystemClock
from ses_sender.config import Settings, TransportKind
from ses_sender.db.migrate import upgrade_to_head_async
from ses_sender.delivery.compose import Composer
from ses_sender.delivery.pacer import Pacer
from ses_sender.delivery.retry import RetryPolicy
from ses_sender.delivery.schedule import DatabaseSchedule
from ses_sender.delivery.worker import Worker
from ses_sender.runtime import Runtime, TransportChoice, open_runtime
from tests.support.clock import FakeClock
from tests.support.databases import BACKENDS, empty_tables, postgres_database
from tests.support.settings import API_KEY, make_settings

os.environ["AWS_EC2_METADATA_DISABLED"] = "true"  # never probe the EC2 metadata address


@pytest.fixture(scope="session", params=BACKENDS)
async def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[str]:
    """A fresh, migrated database for the whole session, one per backend."""
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("db") / "test.db"
        url = f"sqlite:///{path}"
        await upgrade_to_head_async(url)
        yield url
        return
    async with postgres_database("ses_sender_test") as url:
        await upgrade_to_head_async(url)
        yield url


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 1, 5, 10, 0, tzinfo=UTC))


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return make_settings(database_url, OUTBOX_DIR=str(tmp_path / "outbox"))


@pytest.fixture
async def runtime(settings: Settings, clock: FakeClock) -> AsyncIterator[Runtime]:
    choice = TransportChoice(TransportKind.OUTBOX, "tests")
    async with open_runtime(settings, transport=choice, clock=clock) as runtime:
        yield runtime
        await empty_tables(runtime)


@pytest.fixture
async def client(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(runtime))
    async with httpx.AsyncClient(
        transport=transport, base_url="http://testserver", headers={"x-api-key": API_KEY}
    ) as client:
        yield client


@pytest.fixture
def anonymous_client(client: httpx.AsyncClient) -> httpx.AsyncClient:
    """The same app, without the API key header."""
    del client.headers["x-api-key"]
    return client


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and callspec.params.get("database_url") == "postgresql":
            item.add_marker(pytest.mark.postgres)


@pytest.fixture
async def live_runtime(settings: Settings) -> AsyncIterator[Runtime]:
    """A runtime on the real clock: the worker paces and waits in real time."""
    choice = TransportChoice(TransportKind.OUTBOX, "tests")
    async with open_runtime(settings, transport=choice, clock=SystemClock()) as runtime:
        yield runtime
        await empty_tables(runtime)


@pytest.fixture
def make_worker(live_runtime: Runtime) -> Callable[..., Worker]:
    def build(transport: Any, *, rate: float = 1_000.0, **overrides: Any) -> Worker:
        options: dict[str, Any] = {
            "sessionmaker": live_runtime.sessionmaker,
            "transport": transport,
            "composer": Composer(
                sender="sender@example.com",
                public_base_url="https://mail.example.com",
                tokens=live_runtime.tokens,
            ),
            "pacer": Pacer(rate, schedule=DatabaseSchedule(live_runtime.sessionmaker)),
            "retry": RetryPolicy(3),
            "clock": live_runtime.clock,
            "concurrency": 8,
            "lease_s": 60.0,
            "send_timeout_s": 5.0,
            "shutdown_grace_s": 5.0,
            "work_available": live_runtime.work_available,
        }
        options.update(overrides)
        return Worker(**options)

    return build


@pytest.fixture
async def live_client(live_runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    """The API on the real clock, for tests where a worker sends what it accepts."""
    transport = httpx.ASGITransport(app=create_app(live_runtime))
    async with httpx.AsyncClient(
        transport=transport, base_url="http://testserver", headers={"x-api-key": API_KEY}
    ) as client:
        yield client
