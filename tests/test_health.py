from __future__ import annotations

from pathlib import Path

import httpx

from ses_sender.composition import TransportChoice, create_app, open_runtime
from ses_sender.config import TransportKind
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
    assert body["transport"] == {"kind": "outbox", "detail": "tests"}
    assert body["sending"] == {"paused": False, "reasons": []}
    assert body["sns"] == {"accepting": True, "trustedTopics": [TRUSTED_TOPIC_ARN]}


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
