"""The service behind PgBouncer in transaction mode, with `DATABASE_POOLER=pgbouncer`.

`ses-sender migrate`, an `ses-sender api` process and two `ses-sender worker` processes all reach
PostgreSQL through a PgBouncer of the test's own, whose few server connections every client
shares: a batch is accepted (COPY), sent exactly once, and SES events about it are taken in
(signed SNS notifications, through the endpoint of an API on the same PgBouncer in this
process).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from ses_sender.composition import create_app
from ses_sender.db.migrate import is_at_head
from ses_sender.models import Result
from tests.support.api import post_topic
from tests.support.clock import FakeClock
from tests.support.databases import postgres_database, postgresql_only
from tests.support.moto_server import subprocess_env
from tests.support.pgbouncer import PgBouncer, run_pgbouncer
from tests.support.polling import wait_until
from tests.support.ports import HOST, free_port
from tests.support.ses_events import ses_message
from tests.support.ses_stub import SesStub
from tests.support.settings import API_KEY, make_settings
from tests.support.signed_sns import post as post_to_sns
from tests.support.signed_sns import publisher, signed_sns_runtime
from tests.support.worker_processes import (
    StartWorker,
    accepted_per_request,
    roomy_account,
    worker_env,
)

SCRIPT = Path(sys.executable).with_name("ses-sender")
BATCH = 400
TOPIC = "behind-pgbouncer"
POOLER = {"DATABASE_POOLER": "pgbouncer"}


@pytest.fixture
def pgbouncer() -> Iterator[PgBouncer]:
    with run_pgbouncer() as bouncer:
        yield bouncer


@pytest.fixture
async def bounced_url(pgbouncer: PgBouncer, tmp_path: Path) -> AsyncIterator[str]:
    """A new database, migrated through PgBouncer by `ses-sender migrate`; its URL there."""
    async with postgres_database("ses_sender_pgbouncer") as direct:
        url = pgbouncer.url_for(direct)
        env = {**subprocess_env(), "DATABASE_URL": url, **POOLER}
        migrated = await asyncio.to_thread(
            subprocess.run,
            [str(SCRIPT), "migrate"],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=False,
        )
        assert migrated.returncode == 0, migrated.stderr
        yield url


@pytest.fixture
async def api(
    bounced_url: str, ses_stub: SesStub, tmp_path: Path
) -> AsyncIterator[httpx.AsyncClient]:
    """An `ses-sender api` process through PgBouncer, and a client of it."""
    port = free_port()
    env = worker_env(
        bounced_url,
        ses_stub,
        API_KEY=API_KEY,
        SERVER_PORT=str(port),
        SERVER_BIND=HOST,
        **POOLER,
    )
    log = tmp_path / "api.log"
    with log.open("w") as output:
        process = subprocess.Popen(  # noqa: ASYNC220 - started once, stopped below
            [str(SCRIPT), "api"], env=env, cwd=tmp_path, stdout=output, stderr=subprocess.STDOUT
        )
    try:
        async with httpx.AsyncClient(
            base_url=f"http://{HOST}:{port}", headers={"x-api-key": API_KEY}
        ) as client:

            async def healthy() -> bool:
                if process.poll() is not None:
                    pytest.fail(f"ses-sender api exited early:\n{log.read_text()}")
                try:
                    return (await client.get("/health")).status_code == 200
                except httpx.TransportError:
                    return False

            await wait_until(healthy, f"ses-sender api to answer /health (its log: {log})")
            yield client
    finally:
        process.terminate()
        await asyncio.to_thread(process.wait, 30)
        assert "Traceback" not in log.read_text(), log.read_text()


@postgresql_only
@pytest.mark.timeout(180)
async def test_a_batch_is_sent_once_and_its_events_taken_in_behind_pgbouncer(
    backend: str,
    pgbouncer: PgBouncer,
    bounced_url: str,
    api: httpx.AsyncClient,
    ses_stub: SesStub,
    start_worker: StartWorker,
    tmp_path: Path,
) -> None:
    roomy_account(ses_stub)
    workers = [
        start_worker(
            worker_env(bounced_url, ses_stub, EMAIL_RATE="200", MAX_CONCURRENT="20", **POOLER)
        )
        for _ in range(2)
    ]
    ids = await post_topic(api, TOPIC, BATCH)

    async def all_sent() -> bool:
        topic = (await api.get(f"/v1/topics/{TOPIC}")).json()
        return bool(topic["request"]["sent"] == BATCH)

    await wait_until(all_sent, f"the {BATCH} emails sent", within_s=120)
    for worker in workers:
        assert await worker.stop() == 0, worker.output()
        assert "Traceback" not in worker.output(), worker.output()
    accepted = accepted_per_request(ses_stub)
    assert sorted(accepted) == sorted(ids)
    assert set(accepted.values()) == {1}

    clock = FakeClock(datetime.now(UTC))
    settings = make_settings(bounced_url, OUTBOX_DIR=str(tmp_path / "outbox"), **POOLER)
    async with signed_sns_runtime(settings, clock) as runtime:
        assert await is_at_head(runtime.engine)
        transport = httpx.ASGITransport(app=create_app(runtime))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as sns:
            sign = publisher(clock)
            answers = await asyncio.gather(
                *(
                    post_to_sns(
                        sns,
                        sign.notification(ses_message("Delivery", at=clock.now(), request_id=i)),
                    )
                    for i in ids[:50]
                )
            )
        assert {answer.status_code for answer in answers} == {200}
        async with runtime.sessionmaker() as session:
            stored = await session.scalar(select(func.count()).select_from(Result))
        assert stored == 50
    assert "prepared statement" not in pgbouncer.output()
