from __future__ import annotations

import httpx

from ses_sender.app import create_app
from ses_sender.config import TransportKind
from ses_sender.runtime import TransportChoice, open_runtime
from tests.support.settings import make_settings


async def test_health_reports_database_and_transport(
    anonymous_client: httpx.AsyncClient,
) -> None:
    response = await anonymous_client.get("/health")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["service"] == "aws-ses-sender"
    assert body["time"] == "2026-01-05T10:00:00Z"
    assert body["database"] == "ok"
    assert body["transport"] == {"kind": "outbox", "detail": "tests"}
    assert body["sending"] == {"paused": False, "reasons": []}


async def test_health_is_503_when_the_database_is_unreachable() -> None:
    # Port 1 on loopback: nothing listens, the connection is refused at once.
    settings = make_settings("postgresql://postgres@127.0.0.1:1/none", TRACKING_SECRET="s" * 32)
    choice = TransportChoice(TransportKind.OUTBOX, "tests")
    async with open_runtime(settings, transport=choice) as runtime:
        transport = httpx.ASGITransport(app=create_app(runtime))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            response = await client.get("/health")

    assert response.status_code == 503
    assert response.json()["status"] == "degraded"
    assert response.json()["database"].startswith("unavailable: ")
    assert response.json()["sending"] == {"paused": None, "reasons": []}
