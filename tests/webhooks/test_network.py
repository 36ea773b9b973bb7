"""Webhooks reach only the outside world: refused at registration, and again on every
connection, on the address the connection would really use (WEBHOOK_ALLOW_PRIVATE off)."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from ses_sender.composition import Runtime
from ses_sender.config import Settings
from ses_sender.models import DeliveryStatus
from ses_sender.webhooks import repository
from ses_sender.webhooks.signing import new_secret
from tests.support.settings import make_settings
from tests.support.webhooks import Receiver, SenderFactory, deliveries, queue_opens


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return make_settings(database_url, OUTBOX_DIR=str(tmp_path / "outbox"))


async def stored_webhook(runtime: Runtime, url: str) -> int:
    """A webhook as registered while its host was allowed (by WEBHOOK_ALLOW_PRIVATE, or before
    its name pointed inside)."""
    async with runtime.sessionmaker() as session, session.begin():
        now = runtime.clock.now()
        webhook = await repository.insert_webhook(
            session, url=url, secret=new_secret(), events=None, now=now
        )
        return webhook.id


@pytest.mark.parametrize(
    "url",
    [
        "https://169.254.169.254/latest/meta-data/",
        "https://10.0.0.5/",
        "https://192.168.1.10/hooks",
        "https://172.16.0.1/",
        "https://100.64.0.1/",
        "https://224.0.0.1/",
        "https://[fd00::1]/",
        "https://[fd00:ec2::254]/",
        "https://[fe80::1]/",
        "https://[::ffff:10.0.0.5]/",
        "https://[::127.0.0.1]/",  # IPv4-compatible IPv6, ::7f00:1
        "https://[::8.8.8.8]/",  # the same form names no host outside either
        "https://[::ffff:0:7f00:1]/",  # IPv4-translated, ::ffff:0:127.0.0.1
        "https://[::ffff:0:8.8.8.8]/",
        "https://[64:ff9b:1::a9fe:a9fe]/",  # local-use NAT64
        "https://192.88.99.1/",  # 6to4 relay anycast
        "https://metadata.google.internal/computeMetadata/v1/",
        "https://localhost/",
        "https://127.0.0.1/",
        "http://127.0.0.1:8080/hooks",
        "http://[::1]:9000/",
        "https://2130706433/",  # 127.0.0.1 written as one number
    ],
)
async def test_registration_refuses_addresses_inside_the_network(
    client: httpx.AsyncClient, url: str
) -> None:
    response = await client.post("/v1/webhooks", json={"url": url})

    assert response.status_code == 400
    error = response.json()["error"]
    assert error.startswith("url: ")
    assert "inside the network" in error
    assert "WEBHOOK_ALLOW_PRIVATE" in error
    assert (await client.get("/v1/webhooks")).json()["webhooks"] == []


async def test_registration_refuses_port_0(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/webhooks", json={"url": "https://example.com:0/"})

    assert response.status_code == 400
    assert response.json()["error"] == "url: port 0 is no port a receiver listens on"
    assert (await client.get("/v1/webhooks")).json()["webhooks"] == []


@pytest.mark.parametrize(
    "url", ["https://user:secret@hooks.example.com/", "https://token@hooks.example.com/"]
)
async def test_registration_refuses_credentials_in_the_url(
    client: httpx.AsyncClient, url: str
) -> None:
    response = await client.post("/v1/webhooks", json={"url": url})

    assert response.status_code == 400
    assert response.json()["error"].startswith("url: must not hold credentials")
    assert "secret" not in response.text


async def test_credentials_stored_earlier_are_neither_shown_nor_sent(
    client: httpx.AsyncClient, runtime: Runtime, make_sender: SenderFactory
) -> None:
    await stored_webhook(runtime, "https://user:secret@hooks.example.com/ses")
    await queue_opens(runtime, 1)

    listed = (await client.get("/v1/webhooks")).json()["webhooks"]
    await make_sender(allow_private=False).deliver_due()

    assert [hook["url"] for hook in listed] == ["https://hooks.example.com/ses"]
    (row,) = await deliveries(runtime)
    assert (row.status, row.last_error) == (
        DeliveryStatus.PENDING,
        "the URL holds credentials, which are not sent",
    )


async def test_a_stored_address_inside_is_not_connected_to(
    runtime: Runtime, receiver: Receiver, make_sender: SenderFactory
) -> None:
    await stored_webhook(runtime, receiver.url)
    await queue_opens(runtime, 1)

    await make_sender(allow_private=False).deliver_due()

    assert receiver.received == []
    (row,) = await deliveries(runtime)
    assert row.status == DeliveryStatus.PENDING
    assert row.last_error == "127.0.0.1 is an address inside the network"


@pytest.fixture
async def receiver_on_every_address() -> AsyncIterator[Receiver]:
    receiver = Receiver(host="0.0.0.0")  # noqa: S104 - reached through this machine's name
    await receiver.start()
    try:
        yield receiver
    finally:
        await receiver.stop()


async def test_a_name_that_resolves_inside_is_refused_at_connection_time(
    runtime: Runtime, receiver_on_every_address: Receiver, make_sender: SenderFactory
) -> None:
    """DNS rebinding: the name passed registration; what counts is where it resolves when
    the connection is made. This machine's own name resolves to one of its addresses."""
    name = socket.gethostname()
    url = f"http://{name}:{receiver_on_every_address.port}/hooks"
    await stored_webhook(runtime, url)
    await queue_opens(runtime, 2)

    await make_sender(allow_private=False, concurrency=1).deliver_due()
    assert receiver_on_every_address.received == []
    refused = (await deliveries(runtime))[0]
    assert refused.last_error is not None
    assert f"{name} resolves to " in refused.last_error
    assert refused.last_error.endswith("inside the network")

    # The same name and port do reach the receiver once inside addresses are allowed.
    await make_sender(allow_private=True, concurrency=1).deliver_due()
    assert len(receiver_on_every_address.received) == 1
