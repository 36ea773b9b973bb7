"""The stub itself: other test folders drive it in-process and over HTTP."""

from __future__ import annotations

import asyncio
import http.client
import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from ses_sender.transports.base import ThrottledError
from ses_sender.transports.ses import SesTransport
from tests.support.emails import make_email
from tests.support.moto_server import FAKE_AWS_ENV, REGION, subprocess_env
from tests.support.ses_stub import RecipientWindow, SesStub

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


def test_window_counts_any_second_even_for_sends_handled_out_of_arrival_order() -> None:
    window = RecipientWindow()
    window.add(1.0, 1)
    window.add(1.9, 1)  # handled before a send that arrived at 0.95

    assert not window.would_exceed(2, 0.5, 1)  # (0.0, 1.0]: 0.5 and 1.0
    assert window.would_exceed(2, 0.95, 1)  # (0.9, 1.9]: 0.95, 1.0 and 1.9
    assert not window.would_exceed(3, 0.95, 1)
    assert window.would_exceed(2, 1.5, 1)  # (0.5, 1.5]: 1.0, 1.5; (0.9, 1.9]: 1.0, 1.5, 1.9
    assert not window.would_exceed(2, 2.95, 1)  # (1.95, 2.95]: only itself


def test_window_counts_recipients_not_requests() -> None:
    window = RecipientWindow()
    window.add(0.0, 3)

    assert window.would_exceed(4, 0.5, 2)
    assert not window.would_exceed(4, 1.0, 2)  # the first send left the window at 1.0


async def test_sends_are_stamped_as_they_arrive_not_as_the_stub_gets_to_them(
    ses_stub: SesStub,
) -> None:
    host, port = ses_stub.url.removeprefix("http://").split(":")
    sending: list[float] = []  # when the request was started and when it was written
    written = threading.Event()

    def send_from_another_thread() -> None:
        connection = http.client.HTTPConnection(host, int(port))
        try:
            sending.append(time.time())
            connection.request("POST", "/v2/email/outbound-emails", json.dumps(send_body(1)))
            sending.append(time.time())
            written.set()
            assert connection.getresponse().status == 200
        finally:
            connection.close()

    sender = threading.Thread(target=send_from_another_thread)
    sender.start()
    # Holding up the stub's event loop (this test's) is the point: until the request is on the
    # stub's socket (however long a busy machine takes to run the thread), and well after.
    assert written.wait(timeout=30)
    time.sleep(0.3)  # noqa: ASYNC251
    await asyncio.to_thread(sender.join)

    [record] = ses_stub.accepted
    started, was_written = sending
    # Stamped by the kernel as it came in, not 0.3 s later when the loop read it.
    assert started <= record["at"] <= was_written


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


async def test_a_body_that_is_not_a_json_object_is_a_400(ses_stub: SesStub) -> None:
    send_url = f"{ses_stub.url}/v2/email/outbound-emails"
    async with aiohttp.ClientSession() as session:
        for body in (b"not json", b"[1, 2]"):
            async with session.post(send_url, data=body) as response:
                assert response.status == 400
                assert "JSON" in (await response.json())["message"]

    assert ses_stub.received == []


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"GARBAGE\r\n\r\n", b"400"),
        # Not UTF-8, but any byte is valid ISO-8859-1, which HTTP/1.1 header values are.
        (b"GET /_stub/counts HTTP/1.1\r\nHost: x\r\nX-Odd: \xff\xfe\r\n\r\n", b"200"),
    ],
)
async def test_malformed_http_is_answered_not_dropped(
    ses_stub: SesStub, raw: bytes, status: bytes
) -> None:
    host, port = ses_stub.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(raw)
        status_line = await reader.readline()
    finally:
        writer.close()
        await writer.wait_closed()

    assert status_line.split()[1] == status


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
    assert counts == {
        "received": 3,
        "accepted": 1,
        "throttled": 1,
        "peak_in_flight": 1,
        "account_checks": 1,
    }

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
