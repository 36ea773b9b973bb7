"""Shared fixtures: a migrated database per backend (SQLite and PostgreSQL), a Runtime, a client.

Every database test runs twice, once per backend. PostgreSQL tests skip when no server answers
on 127.0.0.1:5432, except in CI (SES_SENDER_REQUIRE_POSTGRES=1), where that is a failure.
"""

from __future__ import annotations

import dataclasses
import os
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

import asyncpg
import httpx
import pytest
from sqlalchemy import text

from ses_sender.clock import SystemClock
from ses_sender.composition import (
    Runtime,
    TransportChoice,
    build_worker,
    create_app,
    open_runtime,
)
from ses_sender.config import Settings, TransportKind
from ses_sender.db.base import Base
from ses_sender.db.migrate import upgrade_to_head_async
from ses_sender.delivery.pacer import Pacer
from ses_sender.delivery.schedule import DatabaseSchedule
from ses_sender.delivery.worker import Worker
from tests.clock import FakeClock

os.environ["AWS_EC2_METADATA_DISABLED"] = "true"  # never probe the EC2 metadata address

POSTGRES_ADMIN_DSN = os.environ.get(
    "SES_SENDER_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)
API_KEY = "test-key-0123456789"
# The SNS topic the tests' signed notifications come from (tests/ses_events/test_endpoints.py).
TRUSTED_TOPIC_ARN = "arn:aws:sns:us-east-1:123456789012:ses-events"
BACKENDS = ["sqlite", "postgresql"]


def make_settings(database_url: str, **overrides: Any) -> Settings:
    """Settings for tests: explicit values, no .env file."""
    values: dict[str, Any] = {
        "DATABASE_URL": database_url,
        "API_KEY": API_KEY,
        "EMAIL_SENDER": "sender@example.com",
        "SERVER_HOST": "https://mail.example.com",
        "EMAIL_TRANSPORT": "outbox",
        "TRACKING_SECRET": None,
        "SNS_TOPIC_ARNS": TRUSTED_TOPIC_ARN,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


def skip_without_postgres() -> NoReturn:
    """Skip a PostgreSQL test when no server answers; in CI that is a failure instead."""
    if os.environ.get("SES_SENDER_REQUIRE_POSTGRES") == "1":
        pytest.fail(f"PostgreSQL is required but {POSTGRES_ADMIN_DSN} does not answer")
    pytest.skip(f"no PostgreSQL at {POSTGRES_ADMIN_DSN}")


async def _postgres_reachable() -> bool:
    try:
        connection = await asyncpg.connect(POSTGRES_ADMIN_DSN, timeout=3)
    except (OSError, asyncpg.PostgresError):
        return False
    await connection.close()
    return True


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
    if not await _postgres_reachable():
        skip_without_postgres()
    name = f"ses_sender_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(POSTGRES_ADMIN_DSN)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        base = POSTGRES_ADMIN_DSN.rsplit("/", 1)[0]
        url = f"{base}/{name}"
        await upgrade_to_head_async(url)
        yield url
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


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


async def empty_tables(runtime: Runtime) -> None:
    """Each test starts from empty tables (faster than a database per test)."""
    async with runtime.engine.begin() as connection:
        names = [table.name for table in reversed(Base.metadata.sorted_tables)]
        if connection.dialect.name == "postgresql":
            await connection.execute(text(f"TRUNCATE {', '.join(names)} RESTART IDENTITY CASCADE"))
        else:
            for name in names:
                await connection.execute(text(f"DELETE FROM {name}"))  # noqa: S608 - our names


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
    """A worker wired as the process wires it (`composition.build_worker`), on test settings."""

    def build(
        transport: Any,
        *,
        rate: float = 1_000.0,
        pacer: Pacer | None = None,
        sessionmaker: Any = None,
        concurrency: int = 8,
        **settings: Any,
    ) -> Worker:
        options = {
            "max_concurrent": concurrency,
            "lease_s": 60.0,
            "send_timeout_s": 5.0,
            "shutdown_grace_s": 5.0,
            "max_attempts": 3,
            **settings,
        }
        runtime = dataclasses.replace(
            live_runtime,
            settings=live_runtime.settings.model_copy(update=options),
            sessionmaker=sessionmaker or live_runtime.sessionmaker,
        )
        pacer = pacer or Pacer(rate, schedule=DatabaseSchedule(runtime.sessionmaker))
        return build_worker(runtime, transport, pacer)

    return build


@pytest.fixture
async def live_client(live_runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    """The API on the real clock, for tests where a worker sends what it accepts."""
    transport = httpx.ASGITransport(app=create_app(live_runtime))
    async with httpx.AsyncClient(
        transport=transport, base_url="http://testserver", headers={"x-api-key": API_KEY}
    ) as client:
        yield client
