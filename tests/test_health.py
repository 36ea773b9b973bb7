from __future__ import annotations

from pathlib import Path

import asyncpg
import httpx
from sqlalchemy.engine import make_url

from ses_sender.composition import Runtime, TransportChoice, create_app, open_runtime
from ses_sender.config import TransportKind
from ses_sender.db.migrate import upgrade_to_head_async
from ses_sender.sending.service import SendingPauses, pause_sending
from tests.support.clock import FakeClock
from tests.support.databases import POSTGRES_ADMIN_DSN, postgres_database, postgresql_only
from tests.support.outages import Outage
from tests.support.settings import API_KEY, TRUSTED_TOPIC_ARN, make_settings


async def test_anyone_sees_the_status_and_nothing_more(
    anonymous_client: httpx.AsyncClient,
) -> None:
    response = await anonymous_client.get("/health")

    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "service": "aws-ses-sender",
        "time": "2026-01-05T10:00:00Z",
    }
    wrong_key = await anonymous_client.get("/health", headers={"x-api-key": "not-the-key"})
    assert wrong_key.json() == response.json()


async def test_the_api_key_shows_database_transport_sending_and_sns(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/health")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["database"] == "ok"
    assert body["transport"] == {"kind": "outbox", "detail": "tests", "reachable": True}
    assert body["sending"] == {"paused": False, "reasons": []}
    assert body["sns"] == {"accepting": True, "trustedTopics": [TRUSTED_TOPIC_ARN]}


async def test_ses_not_answering_makes_the_status_degraded_not_unhealthy(
    runtime: Runtime,
    clock: FakeClock,
    client: httpx.AsyncClient,
) -> None:
    async with runtime.sessionmaker() as session, session.begin():
        await pause_sending(session, "guardrail", "bounce rate 6%", now=clock.now())
        await SendingPauses().pause_for_outage(session, "5 emails in a row failed", now=clock.now())

    anonymous = await client.get("/health", headers={"x-api-key": ""})
    detailed = (await client.get("/health")).json()

    assert anonymous.status_code == 200  # a restart would not bring SES back
    assert anonymous.json()["status"] == "degraded"
    assert detailed["transport"]["reachable"] is False
    assert detailed["sending"] == {
        "paused": True,
        "reasons": ["guardrail: bounce rate 6%", "ses_unreachable: 5 emails in a row failed"],
    }
    async with runtime.sessionmaker() as session, session.begin():
        await SendingPauses().resume_after_outage(session)
    after = (await client.get("/health")).json()
    assert (after["status"], after["transport"]["reachable"]) == ("ok", True)
    assert after["sending"]["reasons"] == ["guardrail: bounce rate 6%"]  # not the probe's to lift


async def test_with_no_trusted_topic_health_says_events_are_refused(
    database_url: str, tmp_path: Path
) -> None:
    settings = make_settings(database_url, OUTBOX_DIR=str(tmp_path), SNS_TOPIC_ARNS="")
    choice = TransportChoice(TransportKind.OUTBOX, "tests")
    async with open_runtime(settings, transport=choice) as runtime:
        transport = httpx.ASGITransport(app=create_app(runtime))
        async with httpx.AsyncClient(
            transport=transport, base_url="http://t", headers={"x-api-key": API_KEY}
        ) as client:
            body = (await client.get("/health")).json()

    assert body["sns"] == {"accepting": False, "trustedTopics": []}


async def test_health_is_503_when_the_database_is_unreachable() -> None:
    # Port 1 on loopback: nothing listens, the connection is refused at once.
    settings = make_settings("postgresql://postgres@127.0.0.1:1/none", TRACKING_SECRET="s" * 32)
    choice = TransportChoice(TransportKind.OUTBOX, "tests")
    async with open_runtime(settings, transport=choice) as runtime:
        transport = httpx.ASGITransport(app=create_app(runtime))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            anonymous = await client.get("/health")
            detailed = await client.get("/health", headers={"x-api-key": API_KEY})

    assert anonymous.status_code == 503
    assert anonymous.json()["status"] == "degraded"
    assert "database" not in anonymous.json()
    assert detailed.status_code == 503
    assert detailed.json()["database"].startswith("unavailable: ")
    assert detailed.json()["sending"] == {"paused": None, "reasons": []}
    # The configured topics are known without the database; recorded ones are not.
    assert detailed.json()["sns"] == {"accepting": None, "trustedTopics": [TRUSTED_TOPIC_ARN]}


async def test_health_is_503_when_the_database_cannot_write(outage: Outage) -> None:
    """On SQLite the disk is full and reads still work; on PostgreSQL the server is gone."""
    transport = httpx.ASGITransport(app=create_app(outage.runtime))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        before = await client.get("/health")
        await outage.start()
        anonymous = await client.get("/health")
        detailed = await client.get("/health", headers={"x-api-key": API_KEY})
        await outage.end()
        after = await client.get("/health")

    assert before.status_code == 200
    assert anonymous.status_code == 503
    assert anonymous.json()["status"] == "degraded"
    assert detailed.status_code == 503
    assert detailed.json()["database"] in (
        "unavailable: OperationalError: database or disk is full",
        "unavailable: ConnectionRefusedError: [Errno 111] Connect call failed "
        f"('127.0.0.1', {make_url(outage.runtime.settings.sqlalchemy_url).port})",
    )
    assert after.status_code == 200


@postgresql_only
async def test_health_is_503_when_the_database_is_read_only(backend: str, tmp_path: Path) -> None:
    async with postgres_database("ses_sender_read_only") as url:
        await upgrade_to_head_async(url)
        admin = await asyncpg.connect(POSTGRES_ADMIN_DSN)
        try:
            name = make_url(url).database
            await admin.execute(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
            settings = make_settings(url, OUTBOX_DIR=str(tmp_path), TRACKING_SECRET="s" * 32)
            choice = TransportChoice(TransportKind.OUTBOX, "tests")
            async with open_runtime(settings, transport=choice) as runtime:
                transport = httpx.ASGITransport(app=create_app(runtime))
                async with httpx.AsyncClient(
                    transport=transport, base_url="http://t", headers={"x-api-key": API_KEY}
                ) as client:
                    response = await client.get("/health")
        finally:
            await admin.close()

    assert response.status_code == 503
    assert response.json()["database"] == (
        "unavailable: ReadOnlySQLTransactionError: cannot execute INSERT in a read-only transaction"
    )
