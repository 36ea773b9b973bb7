"""The real `ses-sender serve` process, end to end, as a user runs it.

It sends the seed README's example through SES (our stub, over the SES v2 HTTP API), takes a
signed SNS delivery notification back (verifying it with a certificate fetched over HTTPS
through a proxy), counts the open pixel, reports it all in the stats, and stops on SIGTERM.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from ses_sender.composition import Runtime
from tests.support.api import SEED_EXAMPLE
from tests.support.moto_server import subprocess_env
from tests.support.polling import wait_until
from tests.support.ports import free_port
from tests.support.ses_stub import SesStub
from tests.support.signing import KeyPair, self_signed, sign, sns_timestamp, tls_ca, tls_server
from tests.support.sns_host import CertificateHost, ConnectProxy

API_KEY = "acceptance-key-0123456789"
REGION = "us-east-1"
SNS_HOST = f"sns.{REGION}.amazonaws.com"
CERT_PATH = "/SimpleNotificationService-acce97a9ce0acce97a9ce0acce97a9ce.pem"
TOPIC_ARN = f"arn:aws:sns:{REGION}:123456789012:ses-events"
TOPIC = SEED_EXAMPLE["messages"][0]["topicId"]


class Service:
    def __init__(self, process: subprocess.Popen[str], base_url: str, log: Path) -> None:
        self.process = process
        self.base_url = base_url
        self.log = log

    def output(self) -> str:
        return self.log.read_text()


@pytest.fixture
async def sns_signing(tmp_path: Path) -> AsyncIterator[tuple[KeyPair, ConnectProxy, Path]]:
    """The SNS signing key, and the proxy through which its certificate can be fetched."""
    signing = self_signed()
    ca = tls_ca()
    server = tls_server(ca, names=[SNS_HOST])
    (tmp_path / "ca.pem").write_bytes(ca.cert_pem)
    (tmp_path / "host.pem").write_bytes(server.cert_pem)
    (tmp_path / "host.key").write_bytes(server.key_pem)
    host = CertificateHost(
        path=CERT_PATH,
        pem=signing.cert_pem,
        cert_file=tmp_path / "host.pem",
        key_file=tmp_path / "host.key",
    )
    await host.start()
    proxy = ConnectProxy(host.port)
    await proxy.start()
    yield signing, proxy, tmp_path / "ca.pem"
    await proxy.stop()
    await host.stop()


@pytest.fixture
async def service(
    database_url: str,
    runtime: Runtime,  # empties the tables afterwards
    ses_stub: SesStub,
    sns_signing: tuple[KeyPair, ConnectProxy, Path],
    tmp_path: Path,
) -> AsyncIterator[Service]:
    _signing, proxy, ca_file = sns_signing
    port = free_port()
    env = subprocess_env()
    env.update(
        {
            "DATABASE_URL": database_url,
            "API_KEY": API_KEY,
            "EMAIL_SENDER": "sender@example.com",
            "EMAIL_TRANSPORT": "ses",
            "AWS_REGION": REGION,
            "AWS_ENDPOINT_URL_SESV2": ses_stub.url,
            "SERVER_PORT": str(port),
            "SERVER_BIND": "127.0.0.1",
            "SERVER_HOST": f"http://127.0.0.1:{port}",
            "EMAIL_RATE": "10",
            "SNS_TOPIC_ARNS": TOPIC_ARN,
            "HTTPS_PROXY": f"http://127.0.0.1:{proxy.port}",
            "NO_PROXY": "127.0.0.1,localhost",
            "SSL_CERT_FILE": str(ca_file),
        }
    )
    script = str(Path(sys.executable).with_name("ses-sender"))
    migrated = await asyncio.to_thread(
        subprocess.run, [script, "migrate"], env=env, cwd=tmp_path, capture_output=True, check=False
    )
    assert migrated.returncode == 0, migrated.stderr
    log = tmp_path / "service.log"
    with log.open("w") as output:
        process = subprocess.Popen(  # noqa: ASYNC220 - started once, waited on below
            [script, "serve"],
            env=env,
            cwd=tmp_path,
            stdout=output,
            stderr=subprocess.STDOUT,
            text=True,
        )
    running = Service(process, f"http://127.0.0.1:{port}", log)
    try:
        await _wait_for_health(running)
        yield running
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


async def _wait_for_health(service: Service) -> None:
    async with httpx.AsyncClient(base_url=service.base_url) as client:

        async def healthy() -> bool:
            if service.process.poll() is not None:
                pytest.fail(f"ses-sender exited early:\n{service.output()}")
            try:
                return (await client.get("/health")).status_code == 200
            except httpx.TransportError:
                return False

        await wait_until(healthy, f"ses-sender to answer /health (its log: {service.log})")


def stub_idle(ses_stub: SesStub) -> Callable[[], Awaitable[bool]]:
    async def idle() -> bool:
        return ses_stub.idle()

    return idle


def delivery_notification(message_id: str, request_id: int, signing: KeyPair) -> dict[str, Any]:
    delivery = {"recipients": ["recipient1@example.com"], "smtpResponse": "250 2.0.0 OK"}
    return ses_notification("Delivery", delivery, message_id, request_id, signing)


def ses_notification(
    kind: str, detail: dict[str, Any], message_id: str, request_id: int, signing: KeyPair
) -> dict[str, Any]:
    """A signed SNS envelope carrying SES's `kind` event (`detail` is its inner object)."""
    now = datetime.now(UTC)
    recipient = detail.get("recipients", ["recipient1@example.com"])[0]
    event = {
        "eventType": kind,
        "mail": {
            "timestamp": sns_timestamp(now),
            "source": "sender@example.com",
            "messageId": message_id,
            "destination": [recipient],
            "tags": {"ses-sender-request-id": [str(request_id)]},
        },
        kind.lower(): {"timestamp": sns_timestamp(now), **detail},
    }
    envelope = {
        "Type": "Notification",
        "MessageId": str(uuid.uuid4()),
        "TopicArn": TOPIC_ARN,
        "Subject": "Amazon SES Email Event Notification",
        "Message": json.dumps(event) + "\n",
        "Timestamp": sns_timestamp(now),
        "SigningCertURL": f"https://{SNS_HOST}{CERT_PATH}",
        "UnsubscribeURL": f"https://{SNS_HOST}/?Action=Unsubscribe",
    }
    return sign(envelope, signing.key, version="2")


async def test_send_track_report_and_stop(
    service: Service, ses_stub: SesStub, sns_signing: tuple[KeyPair, ConnectProxy, Path]
) -> None:
    signing, proxy, _ca = sns_signing
    [trusted] = [line for line in service.output().splitlines() if "SES events are taken" in line]
    assert TOPIC_ARN in trusted.split("SNS topics ", 1)[1].split(", ")
    async with httpx.AsyncClient(
        base_url=service.base_url, headers={"x-api-key": API_KEY}
    ) as client:
        # 1. The seed README's example, unchanged.
        accepted = await client.post("/v1/messages", json=SEED_EXAMPLE)
        assert accepted.status_code == 200, accepted.text
        assert accepted.json()["count"] == 2
        request_ids = accepted.json()["messages"][0]["requestIds"]

        # 2. Both emails reach SES (once each: see 6.), with our tags and without internal ids.
        async def both_sent() -> list[dict[str, Any]]:
            return ses_stub.accepted if len(ses_stub.accepted) >= 2 else []

        sent = await wait_until(both_sent, "both emails at SES")
        by_recipient = {record["to"][0]: record for record in sent}
        assert set(by_recipient) == {"recipient1@example.com", "recipient2@example.com"}
        first = by_recipient["recipient1@example.com"]
        assert first["from"] == "sender@example.com"
        assert first["subject"] == "Special promotion"
        assert "See our special promotion." in first["text"]
        assert first["tags"]["ses-sender-request-id"] == str(request_ids[0])
        assert first["tags"]["ses-sender-topic"] == TOPIC
        assert all("Request" not in name for name, _value in first["headers"])

        async def recorded() -> dict[str, Any]:
            stats = (await client.get(f"/v1/topics/{TOPIC}")).json()
            return stats if stats["request"]["sent"] == 2 else {}

        await wait_until(recorded, "both sends recorded")

        # 3. SES reports a delivery through SNS: verified (certificate over HTTPS), stored.
        notification = delivery_notification(first["message_id"], request_ids[0], signing)
        reply = await client.post(
            "/v1/events/results",
            content=json.dumps(notification),
            headers={"content-type": "text/plain; charset=UTF-8"},
        )
        assert reply.status_code == 200, reply.text
        assert reply.json() == {"message": "ok"}
        assert proxy.tunnels == [f"{SNS_HOST}:443"]
        forged = {**notification, "Message": notification["Message"].replace("Delivery", "Bounce")}
        refused = await client.post("/v1/events/results", content=json.dumps(forged))
        assert refused.status_code == 400

        # 4. The recipient opens the email: the pixel in the HTML counts it.
        pixel = first["html"].split('<img src="', 1)[1].split('"', 1)[0]
        opened = await client.get(pixel)
        assert opened.headers["content-type"] == "image/png"

        # The open is recorded after the pixel is answered.
        async def open_counted() -> dict[str, Any]:
            stats = (await client.get(f"/v1/topics/{TOPIC}")).json()
            return stats if "Open" in stats["result"]["statuses"] else {}

        stats = await wait_until(open_counted, "the open counted")
        assert stats["request"] == {
            "total": 2,
            "created": 0,
            "processing": 0,
            "sent": 2,
            "failed": 0,
            "stopped": 0,
            "suppressed": 0,
        }
        assert stats["result"]["statuses"] == {"Delivery": 1, "Open": 1}
        counts = (await client.get("/v1/events/counts/sent", params={"hours": 1})).json()
        assert counts["count"] == 2

    # 5. SIGTERM: a clean stop, exit code 0.
    service.process.send_signal(signal.SIGTERM)
    code = await asyncio.to_thread(service.process.wait, 20)
    assert code == 0, service.output()
    assert "Traceback" not in service.output()

    # 6. The process is gone, so what SES received is final: each email exactly once.
    await wait_until(stub_idle(ses_stub), "the SES stub to read all the service sent")
    assert len(ses_stub.received) == 2


async def test_bounced_and_unsubscribed_addresses_are_never_mailed_again(
    service: Service, ses_stub: SesStub, sns_signing: tuple[KeyPair, ConnectProxy, Path]
) -> None:
    signing, _proxy, _ca = sns_signing
    async with httpx.AsyncClient(
        base_url=service.base_url, headers={"x-api-key": API_KEY}
    ) as client:
        accepted = await client.post("/v1/messages", json=SEED_EXAMPLE)
        _first_id, second_id = accepted.json()["messages"][0]["requestIds"]

        async def both_sent() -> dict[str, dict[str, Any]]:
            stats = (await client.get(f"/v1/topics/{TOPIC}")).json()
            done = stats["request"]["sent"] == 2
            return {record["to"][0]: record for record in ses_stub.accepted} if done else {}

        sent = await wait_until(both_sent, "both emails sent and recorded")

        # 1. Every email carries RFC 8058 one-click unsubscribe headers.
        headers = dict(sent["recipient1@example.com"]["headers"])
        assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        link = headers["List-Unsubscribe"].removeprefix("<").removesuffix(">")
        assert link.startswith(f"{service.base_url}/v1/unsubscribe/")

        # 2. recipient1 unsubscribes the way a mailbox provider does it: one POST, no key.
        async with httpx.AsyncClient() as provider:
            unsubscribed = await provider.post(link, data={"List-Unsubscribe": "One-Click"})
        assert unsubscribed.status_code == 200

        # 3. SES reports a permanent bounce for recipient2, signed and delivered by SNS.
        bounce = {
            "bounceType": "Permanent",
            "bounceSubType": "General",
            "bouncedRecipients": [{"emailAddress": "recipient2@example.com"}],
        }
        message_id = sent["recipient2@example.com"]["message_id"]
        reply = await client.post(
            "/v1/events/results",
            content=json.dumps(ses_notification("Bounce", bounce, message_id, second_id, signing)),
            headers={"content-type": "text/plain; charset=UTF-8"},
        )
        assert reply.json() == {"message": "ok"}

        listed = (await client.get("/v1/suppressions")).json()["suppressions"]
        assert [(entry["email"], entry["reason"]) for entry in listed] == [
            ("recipient1@example.com", "unsubscribe"),
            ("recipient2@example.com", "bounce"),
        ]

        # 4. The same campaign again: accepted, never sent, counted as suppressed.
        again = await client.post("/v1/messages", json=SEED_EXAMPLE)
        assert again.status_code == 200
        assert again.json()["count"] == 2

        async def stopped() -> dict[str, Any]:
            stats = (await client.get(f"/v1/topics/{TOPIC}")).json()
            return stats if stats["request"]["stopped"] == 2 else {}

        stats = await wait_until(stopped, "both new emails stopped")
        # Stopped is final: a suppressed email is stopped instead of sent, never after it.
        assert len(ses_stub.received) == 2  # the first two only
        assert stats["request"] == {
            "total": 4,
            "created": 0,
            "processing": 0,
            "sent": 2,
            "failed": 0,
            "stopped": 2,
            "suppressed": 2,
        }
        assert stats["result"]["statuses"] == {"Bounce": 1, "Unsubscribe": 1}
        assert stats["result"]["outcomes"]["bounced"] == 1
        assert stats["result"]["outcomes"]["sent"] == 1
