"""The stub itself: other test folders drive it in-process and over HTTP."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from ses_sender.transports.base import ThrottledError
from ses_sender.transports.ses import SesTransport
from tests.support.moto_server import FAKE_AWS_ENV, REGION, subprocess_env
from tests.support.ses_stub import SesStub

from .emails import make_email

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def send_body(recipients: int) -> dict[str, Any]:
    return {
        "FromEmailAddress": "noreply@example.com",
        "Destination": {"ToAddresses": [f"user{n}@example.net" for n in range(recipients)]},
        "Content": {"Simple": {"Subject": {"Data": "s"}, "Body": {"Text": {"Data": "t"}}}},
    }


async def post(url: str, body: dict[str, Any]) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session, session.post(url, json=body) as response:
        return response.status, await response.json()


async def get(url: str) -> Any:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return await response.json()


async def test_per_second_window_counts_recipients(ses_stub: SesStub) -> None:
    ses_stub.max_per_second = 3
    send_url = f"{ses_stub.url}/v2/email/outbound-emails"

    statuses = [(await post(send_url, send_body(n)))[0] for n in (2, 2, 1)]

    assert statuses == [200, 429, 200]
    assert ses_stub.throttled == 1
    assert [record["recipients"] for record in ses_stub.accepted] == [2, 1]


async def test_window_throttles_the_transport(ses_stub: SesStub) -> None:
    ses_stub.max_per_second = 2
    transport = SesTransport(
        REGION,
        access_key_id=FAKE_AWS_ENV["AWS_ACCESS_KEY_ID"],
        secret_access_key=FAKE_AWS_ENV["AWS_SECRET_ACCESS_KEY"],
        endpoint_url=ses_stub.url,
    )
    try:
        await transport.send(make_email())
        await transport.send(make_email())
        with pytest.raises(ThrottledError):
            await transport.send(make_email())
    finally:
        await transport.close()


async def test_http_controls(ses_stub: SesStub) -> None:
    send_url = f"{ses_stub.url}/v2/email/outbound-emails"
    custom = {"status": 400, "code": "MessageRejected", "message": "Nope."}

    await post(f"{ses_stub.url}/_stub/script", {"failures": ["throttled", custom]})
    await post(f"{ses_stub.url}/_stub/config", {"max_send_rate": 7, "latency_s": 0.01})
    outcomes = [await post(send_url, send_body(1)) for _ in range(3)]
    account = await get(f"{ses_stub.url}/v2/email/account")
    state = await get(f"{ses_stub.url}/_stub/received")
    counts = await get(f"{ses_stub.url}/_stub/counts")

    assert [status for status, _ in outcomes] == [429, 400, 200]
    assert outcomes[1][1] == {"message": "Nope."}
    assert outcomes[2][1]["MessageId"].endswith("-000000")
    assert account["SendQuota"] == {
        "Max24HourSend": 50_000.0,
        "MaxSendRate": 7.0,
        "SentLast24Hours": 1.0,
    }
    assert [record["status"] for record in state["received"]] == [429, 400, 200]
    assert state["throttled"] == 1
    assert counts == {"received": 3, "accepted": 1, "throttled": 1, "peak_in_flight": 1}

    await post(f"{ses_stub.url}/_stub/reset", {})

    assert await get(f"{ses_stub.url}/_stub/received") == {"received": [], "throttled": 0}
    assert ses_stub.latency_s == 0.0


async def test_runs_as_its_own_process() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.support.ses_stub",
        "--port",
        "0",
        cwd=PROJECT_ROOT,
        env=subprocess_env(),
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        port = int(await asyncio.wait_for(process.stdout.readline(), timeout=10))
        url = f"http://127.0.0.1:{port}"
        status, _ = await post(f"{url}/v2/email/outbound-emails", send_body(1))

        assert status == 200
        assert len((await get(f"{url}/_stub/received"))["received"]) == 1
    finally:
        process.terminate()
        assert await process.wait() == 0
