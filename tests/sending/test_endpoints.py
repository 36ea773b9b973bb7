"""POST /v1/sending/resume and the `sending` field of /health."""

from __future__ import annotations

import httpx
import pytest

from ses_sender.composition import Runtime
from ses_sender.sending.service import pause_sending
from tests.support.clock import FakeClock
from tests.support.settings import API_KEY

WITH_KEY = {"x-api-key": API_KEY}  # /health shows the sending state only with the key


async def pause(runtime: Runtime, clock: FakeClock, *names: str) -> None:
    async with runtime.sessionmaker() as session, session.begin():
        for name in names:
            await pause_sending(session, name, f"{name} says no", now=clock.now())


async def test_health_says_whether_sending_is_paused_and_why(
    anonymous_client: httpx.AsyncClient, runtime: Runtime, clock: FakeClock
) -> None:
    before = (await anonymous_client.get("/health", headers=WITH_KEY)).json()
    await pause(runtime, clock, "account")
    during = await anonymous_client.get("/health", headers=WITH_KEY)

    assert before["sending"] == {"paused": False, "reasons": []}
    assert during.status_code == 200  # paused is not unhealthy: nothing to restart
    assert during.json()["status"] == "ok"
    assert during.json()["sending"] == {"paused": True, "reasons": ["account: account says no"]}


async def test_resume_lifts_every_pause_and_is_idempotent(
    client: httpx.AsyncClient, runtime: Runtime, clock: FakeClock
) -> None:
    await pause(runtime, clock, "account", "guardrail")

    first = await client.post("/v1/sending/resume")
    second = await client.post("/v1/sending/resume")
    health = (await client.get("/health")).json()

    assert first.status_code == 200
    assert first.json() == {
        "resumed": ["account", "guardrail"],
        "sending": {"paused": False, "reasons": []},
    }
    assert second.json() == {"resumed": [], "sending": {"paused": False, "reasons": []}}
    assert health["sending"]["paused"] is False


async def test_resume_can_lift_one_pause_by_name(
    client: httpx.AsyncClient, runtime: Runtime, clock: FakeClock
) -> None:
    await pause(runtime, clock, "account", "guardrail")

    response = await client.post("/v1/sending/resume", json={"name": "guardrail"})

    assert response.json() == {
        "resumed": ["guardrail"],
        "sending": {"paused": True, "reasons": ["account: account says no"]},
    }


async def test_resume_needs_the_api_key(
    anonymous_client: httpx.AsyncClient, runtime: Runtime, clock: FakeClock
) -> None:
    await pause(runtime, clock, "account")

    response = await anonymous_client.post("/v1/sending/resume")
    health = (await anonymous_client.get("/health", headers=WITH_KEY)).json()

    assert response.status_code == 401
    assert health["sending"]["paused"] is True


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        (b'{"name": 5}', 400, "name: Input should be 'account', 'guardrail' or 'ses_unrea"),
        (b'{"name": ""}', 400, "name: Input should be 'account', 'guardrail' or 'ses_unrea"),
        (b'{"name": "x"}', 400, "name: Input should be 'account', 'guardrail' or 'ses_unrea"),
        (b'{"nam": "account"}', 400, "nam: Extra inputs are not permitted"),
        (b'["account"]', 400, "invalid request body: expected a JSON object"),
        (b"{name", 400, "invalid request body: key must be a string"),
        (b'{"name": "' + b"x" * 5_000 + b'"}', 413, "request body: at most 4096 bytes"),
    ],
)
async def test_bad_input_is_refused_naming_the_field_and_nothing_is_resumed(
    client: httpx.AsyncClient,
    runtime: Runtime,
    clock: FakeClock,
    body: bytes,
    status: int,
    error: str,
) -> None:
    await pause(runtime, clock, "account")

    response = await client.post(
        "/v1/sending/resume", content=body, headers={"content-type": "application/json"}
    )
    health = (await client.get("/health")).json()

    assert response.status_code == status
    assert response.json()["error"].startswith(error)
    assert response.json()["path"] == "/v1/sending/resume"
    assert health["sending"]["paused"] is True
