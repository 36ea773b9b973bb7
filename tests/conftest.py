"""Shared fixtures (a migrated database per backend, a Runtime, a client) and the suite's tiers.

Every test gets one tier marker, from what it is, so nobody has to remember a decorator:

- `acceptance`: under tests/acceptance/ or tests/resilience/, it runs the real `ses-sender`
  console script or processes (the resilience tests, against faults, are also marked
  `resilience`);
- `db`: it uses a database (the `backend` fixture, through `database_url` or directly), so it
  runs once per backend, and the PostgreSQL run is also marked `postgres`;
- `unit`: everything else: no database.

Backends: both by default; `--backend sqlite` (or SES_SENDER_TEST_BACKENDS=sqlite) runs the
database tests on SQLite only, and the PostgreSQL ones are deselected. A PostgreSQL test skips
when no server answers, except in CI (SES_SENDER_REQUIRE_POSTGRES=1), where that is a failure.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
from collections.abc import AsyncIterator, Callable, Generator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from ses_sender.clock import SystemClock
from ses_sender.composition import (
    Runtime,
    TransportChoice,
    build_worker,
    create_app,
    open_runtime,
)
from ses_sender.config import Settings, TransportKind
from ses_sender.db.migrate import upgrade_to_head_async
from ses_sender.delivery.pacer import Pacer
from ses_sender.delivery.schedule import DatabaseSchedule
from ses_sender.delivery.worker import Worker
from tests.support.built_once import (
    BOTOCORE_MODULES,
    TLS_MODULES,
    SharedBotocoreData,
    SharedTrustStores,
)
from tests.support.clock import FakeClock
from tests.support.databases import BACKENDS, BACKENDS_ENV, empty_tables, postgres_database
from tests.support.outages import Outage, database_outage
from tests.support.settings import API_KEY, make_settings

os.environ["AWS_EC2_METADATA_DISABLED"] = "true"  # never probe the EC2 metadata address

ACCEPTANCE_DIR = Path(__file__).resolve().parent / "acceptance"
RESILIENCE_DIR = Path(__file__).resolve().parent / "resilience"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--backend",
        action="append",
        choices=BACKENDS,
        dest="backends",
        help="run the database tests on this backend only; repeat for both "
        f"(default: ${BACKENDS_ENV}, comma-separated, else all of {', '.join(BACKENDS)})",
    )


def selected_backends(config: pytest.Config) -> tuple[str, ...]:
    chosen: list[str] | None = config.getoption("backends")
    if not chosen:
        chosen = [name.strip() for name in os.environ.get(BACKENDS_ENV, "").split(",")]
        chosen = [name for name in chosen if name]
        if unknown := set(chosen) - set(BACKENDS):
            raise pytest.UsageError(
                f"{BACKENDS_ENV}: unknown backend(s) {', '.join(sorted(unknown))}; "
                f"choose from {', '.join(BACKENDS)}"
            )
    return tuple(chosen) or BACKENDS


def runs_processes(item: pytest.Item) -> bool:
    return ACCEPTANCE_DIR in item.path.parents or RESILIENCE_DIR in item.path.parents


def tier_of(item: pytest.Item) -> str:
    if runs_processes(item):
        return "acceptance"
    if "backend" in getattr(item, "fixturenames", ()):
        return "db"
    return "unit"


def backend_of(item: pytest.Item) -> str | None:
    callspec = getattr(item, "callspec", None)
    backend: str | None = callspec.params.get("backend") if callspec is not None else None
    return backend


@pytest.hookimpl(wrapper=True)
def pytest_collection_modifyitems(
    config: pytest.Config, items: list[pytest.Item]
) -> Generator[None, None, None]:
    """Before any other plugin (so `-m` selects by tier): mark each test's tier, and deselect
    the backends not chosen. After them all: the order to run in."""
    backends = selected_backends(config)
    kept: list[pytest.Item] = []
    deselected: list[pytest.Item] = []
    for item in items:
        backend = backend_of(item)
        if backend is not None and backend not in backends:
            deselected.append(item)
            continue
        item.add_marker(tier_of(item))
        if RESILIENCE_DIR in item.path.parents:
            item.add_marker(pytest.mark.resilience)
        if backend == "postgresql":
            item.add_marker(pytest.mark.postgres)
        kept.append(item)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = kept
    yield
    items[:] = acceptance_first_on_every_worker(items, xdist_workers(config))


def xdist_workers(config: pytest.Config) -> int:
    workerinput: dict[str, Any] | None = getattr(config, "workerinput", None)
    return int(workerinput["workercount"]) if workerinput else 1


def acceptance_first_on_every_worker(items: list[pytest.Item], workers: int) -> list[pytest.Item]:
    """The order to run in: the acceptance tests dealt out evenly, each worker's first.

    They take seconds to minutes each, the rest milliseconds. pytest-xdist's work stealing
    (--dist worksteal) first hands each worker a contiguous share of the order, the first
    share to the first worker and so on, then lets idle workers take from the busiest one's
    end. So each share here starts with its round of acceptance tests, then its share of the
    rest in pytest's own order: every worker starts on long tests together, and the short
    ones left at the ends even out the finish. Without xdist it is acceptance tests first.
    """
    acceptance = [item for item in items if runs_processes(item)]
    rest = [item for item in items if not runs_processes(item)]
    ordered: list[pytest.Item] = []
    left = len(items)
    for worker in range(workers):
        share = left // (workers - worker)  # the size of the share xdist will hand out
        left -= share
        mine = acceptance[worker::workers]
        taken = max(0, share - len(mine))
        ordered += mine + rest[:taken]
        rest = rest[taken:]
    return ordered + rest


@pytest.fixture(scope="session", autouse=True)
def _built_once() -> Iterator[None]:
    """TLS trust stores and botocore's data built once per test process, not once per
    Runtime or transport (tests/support/built_once.py says why that changes nothing)."""
    with pytest.MonkeyPatch.context() as patch:
        trust = SharedTrustStores()
        for module in TLS_MODULES:
            patch.setattr(importlib.import_module(module), "ssl", trust)
        botocore_data = SharedBotocoreData()
        for module in BOTOCORE_MODULES:
            patch.setattr(importlib.import_module(module), "get_session", botocore_data.get_session)
        yield


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The database backend a test runs on: every test that uses it runs once per backend
    (`postgresql_only` narrows a test to PostgreSQL)."""
    name: str = request.param
    return name


@pytest.fixture(scope="session")
async def sqlite_database(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A migrated SQLite database for the whole session (of this xdist worker)."""
    url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"
    await upgrade_to_head_async(url)
    return url


@pytest.fixture(scope="session")
async def postgresql_database() -> AsyncIterator[str]:
    """A migrated PostgreSQL database for the whole session (of this xdist worker), dropped
    at its end."""
    async with postgres_database("ses_sender_test") as url:
        await upgrade_to_head_async(url)
        yield url


@pytest.fixture
def database_url(backend: str, request: pytest.FixtureRequest) -> str:
    """The session's migrated database on this test's backend.

    One per backend for the whole session, kept while tests of the other backend run: a
    PostgreSQL database dropped and made again costs a checkpoint and a migration."""
    url: str = request.getfixturevalue(f"{backend}_database")
    return url


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 1, 5, 10, 0, tzinfo=UTC))


@pytest.fixture
async def outage(
    backend: str, database_url: str, tmp_path: Path, clock: FakeClock
) -> AsyncIterator[Outage]:
    """A runtime whose database the test can take away (`tests.support.outages`)."""
    async with database_outage(backend, database_url, tmp_path, clock) as outage:
        yield outage


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return make_settings(
        database_url,
        OUTBOX_DIR=str(tmp_path / "outbox"),
        OUTCOME_JOURNAL_DIR=str(tmp_path / "journal"),
    )


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
