"""`kill -9` of the API while it writes a 100,000-recipient request: the request is all or
nothing (no email, no content of it is left half-written), and the client's retry with the
same Idempotency-Key, to the restarted API, queues it once; another retry is answered from the
first, and queues nothing more."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import httpx
import orjson
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url

from ses_sender.composition import Runtime
from ses_sender.models import Content, Request
from tests.support.polling import wait_until
from tests.support.service_process import SERVICE_KEY, running_service

RECIPIENTS = 100_000
TOPIC = "kill-mid-request"
BODY = orjson.dumps(
    {
        "messages": [
            {
                "topicId": TOPIC,
                "emails": [f"r{i}@example.com" for i in range(RECIPIENTS)],
                "subject": "Hello",
                "content": "<p>Hi</p>",
            }
        ]
    }
)
HEADERS = {
    "x-api-key": SERVICE_KEY,
    "content-type": "application/json",
    "Idempotency-Key": "kill-9-mid-request",
}
# A writer holds the requests table (PostgreSQL: a lock of its transaction on the table).
WRITING_REQUESTS = text(
    "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
    "WHERE c.relname = 'email_requests' AND l.mode = 'RowExclusiveLock' "
    "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
    "AND l.pid <> pg_backend_pid()"
)


async def api_is_writing(runtime: Runtime, database_url: str) -> bool:
    """Whether a transaction is writing, uncommitted: SQLite's one write lock is taken."""
    url = make_url(database_url)
    if url.get_backend_name() == "postgresql":
        async with runtime.sessionmaker() as session:
            return bool(await session.scalar(WRITING_REQUESTS))
    assert url.database is not None
    probe = sqlite3.connect(url.database, timeout=0, isolation_level=None)
    try:
        probe.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError:
        return True
    finally:
        probe.close()  # a lock it took goes with it
    return False


async def queued(runtime: Runtime) -> tuple[int, int]:
    """Emails and contents of the topic in the database."""
    async with runtime.sessionmaker() as session:
        emails = await session.scalar(select(func.count()).where(Request.topic_id == TOPIC))
        contents = await session.scalar(select(func.count()).where(Content.topic_id == TOPIC))
    return emails or 0, contents or 0


@pytest.mark.timeout(420)
async def test_an_api_killed_mid_request_leaves_nothing_half_written(
    database_url: str, live_runtime: Runtime, tmp_path: Path
) -> None:
    async with (
        running_service(database_url, tmp_path, role="api") as api,
        httpx.AsyncClient(base_url=api.url, timeout=300) as client,
    ):
        posting = asyncio.create_task(client.post("/v1/messages", content=BODY, headers=HEADERS))

        async def writing_or_answered() -> bool:
            return posting.done() or await api_is_writing(live_runtime, database_url)

        await wait_until(writing_or_answered, "the API writing the request", within_s=240)
        assert not posting.done(), "answered before the kill: nothing to test"
        api.process.kill()
        with pytest.raises(httpx.TransportError):
            await posting

    assert await queued(live_runtime) == (0, 0)

    async with (
        running_service(database_url, tmp_path, role="api") as api,
        httpx.AsyncClient(base_url=api.url, timeout=300) as client,
    ):
        retried = await client.post("/v1/messages", content=BODY, headers=HEADERS)
        assert retried.status_code == 200, retried.text
        again = await client.post("/v1/messages", content=BODY, headers=HEADERS)

    assert again.status_code == 200
    assert again.json() == retried.json()
    assert retried.json()["count"] == RECIPIENTS
    assert await queued(live_runtime) == (RECIPIENTS, 1)
