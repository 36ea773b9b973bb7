"""Personal messages from the API to the wire: one request to many recipients with their own
data, sent by a worker, arrives rendered for each recipient at SES (the stub, which keeps what
moto drops: headers, tags, raw MIME) and in the outbox; a seed message goes out as it was sent."""

from __future__ import annotations

import asyncio
import base64
import email
import email.policy
from collections.abc import AsyncIterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import pytest

from ses_sender.composition import Runtime, create_app
from ses_sender.messages.dependencies import SENDER_POLICY
from ses_sender.messages.envelope import SenderPolicy
from ses_sender.models import RequestStatus
from ses_sender.ses_tags import REQUEST_ID_TAG
from ses_sender.transports.outbox import OutboxTransport
from ses_sender.transports.ses import SesTransport
from tests.support.polling import wait_until, while_running
from tests.support.rows import requests_by_id
from tests.support.ses_stub import SesStub
from tests.support.settings import API_KEY
from tests.support.workers import RecordingTransport, WorkerFactory, send_with_worker

RECIPIENTS = 40
OUTBOX_RECIPIENTS = 8  # each a file written in a thread: slow on a busy machine
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32


@pytest.fixture
async def api(live_runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    """The API on the real clock, allowing example.org as a sender domain."""
    app = create_app(live_runtime)
    SENDER_POLICY.provide(app, SenderPolicy.of("sender@example.com", ["example.org"]))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://testserver",
        headers={"x-api-key": API_KEY},
    ) as client:
        yield client


def people(count: int) -> list[dict[str, Any]]:
    return [
        {"email": f"user{i}@example.com", "data": {"name": f"User <{i}>", "order": i}}
        for i in range(count)
    ]


def personal_message(**overrides: Any) -> dict[str, Any]:
    message: dict[str, Any] = {
        "topicId": "orders",
        "recipients": people(RECIPIENTS),
        "data": {"shop": "Corner Shop", "name": "customer"},
        "subject": "{{ shop }}: order {{ order }} for {{ name }}",
        "content": "<html><body><p>Hello {{ name }}, order {{ order }}.</p>"
        '<a href="{{ unsubscribe_url }}">Unsubscribe</a></body></html>',
    }
    message.update(overrides)
    return message


async def accept(api: httpx.AsyncClient, *messages: dict[str, Any]) -> list[int]:
    response = await api.post("/v1/messages", json={"messages": list(messages)})
    assert response.status_code == 200, response.text
    return [i for accepted in response.json()["messages"] for i in accepted["requestIds"]]


async def test_each_recipient_gets_their_own_email_at_ses(
    live_runtime: Runtime,
    make_worker: WorkerFactory,
    api: httpx.AsyncClient,
    ses: SesTransport,
    ses_stub: SesStub,
) -> None:
    ids = await accept(
        api,
        personal_message(
            **{"from": "Corner Shop <orders@example.org>"},
            replyTo=["help@example.org", "sales@example.org"],
            headers={"X-Campaign": "spring"},
            tags={"campaign": "spring-2026"},
        ),
    )

    await send_with_worker(live_runtime, make_worker(ses), ids)

    by_recipient = {record["to"][0]: record for record in ses_stub.accepted}
    assert len(by_recipient) == RECIPIENTS
    for i, request_id in enumerate(ids):
        record = by_recipient[f"user{i}@example.com"]
        assert record["subject"] == f"Corner Shop: order {i} for User <{i}>"
        assert f"<p>Hello User &lt;{i}&gt;, order {i}.</p>" in record["html"]
        assert record["text"].startswith(f"Hello User <{i}>, order {i}.")
        # The built-in unsubscribe link is this recipient's, the same as the header's.
        [unsubscribe] = [value for name, value in record["headers"] if name == "List-Unsubscribe"]
        assert f'href="{unsubscribe.strip("<>")}"' in record["html"]
        assert record["from"] == "Corner Shop <orders@example.org>"
        assert record["reply_to"] == ["help@example.org", "sales@example.org"]
        assert ["X-Campaign", "spring"] in record["headers"]
        assert record["tags"] == {
            REQUEST_ID_TAG: str(request_id),
            "ses-sender-topic": "orders",
            "campaign": "spring-2026",
        }


async def test_a_seed_message_goes_out_byte_for_byte(
    live_runtime: Runtime,
    make_worker: WorkerFactory,
    api: httpx.AsyncClient,
    ses: SesTransport,
    ses_stub: SesStub,
) -> None:
    content = "<p>Hi {{ name }} {% if x %}</p>"
    ids = await accept(
        api,
        {"topicId": "t", "emails": ["a@example.com"], "subject": "{{ s }}", "content": content},
    )

    await send_with_worker(live_runtime, make_worker(ses), ids)

    [record] = ses_stub.accepted
    assert record["subject"] == "{{ s }}"
    assert "<p>Hi {{ name }} {% if x %}</p>" in record["html"]  # links tracked, nothing rendered
    assert record["text"] == "Hi {{ name }} {% if x %}"
    assert record["from"] == "sender@example.com"
    assert record["raw"] is None


async def test_attachments_reach_ses_as_mime_parts(
    live_runtime: Runtime,
    make_worker: WorkerFactory,
    api: httpx.AsyncClient,
    ses: SesTransport,
    ses_stub: SesStub,
) -> None:
    ids = await accept(
        api,
        personal_message(
            recipients=[{"email": "jane@example.com", "data": {"name": "Jane", "order": 1}}],
            content='<html><body><img src="cid:logo">Hi {{ name }}</body></html>',
            tags={"kind": "invoice"},
            attachments=[
                {
                    "filename": "invoice.pdf",
                    "contentType": "application/pdf",
                    "content": base64.b64encode(b"%PDF-1.4 one").decode(),
                },
                {
                    "filename": "logo.png",
                    "contentType": "image/png",
                    "content": base64.b64encode(PNG).decode(),
                    "contentId": "logo",
                },
            ],
        ),
    )

    await send_with_worker(live_runtime, make_worker(ses), ids)

    [record] = ses_stub.accepted
    assert record["tags"]["kind"] == "invoice"
    message = email.message_from_string(record["raw"], policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    assert_invoice_structure(message, "Jane")


async def test_the_outbox_gets_each_rendered_email_with_its_parts(
    live_runtime: Runtime, make_worker: WorkerFactory, api: httpx.AsyncClient, tmp_path: Path
) -> None:
    outbox = tmp_path / "rendered"
    ids = await accept(
        api,
        personal_message(
            recipients=people(OUTBOX_RECIPIENTS),
            content='<html><body><img src="cid:logo">Hi {{ name }}</body></html>',
            text="Dear {{ name }}, see order {{ order }}.",
            replyTo="help@example.org",
            attachments=[
                {
                    "filename": "invoice.pdf",
                    "contentType": "application/pdf",
                    "content": base64.b64encode(b"%PDF-1.4 one").decode(),
                },
                {
                    "filename": "logo.png",
                    "contentType": "image/png",
                    "content": base64.b64encode(PNG).decode(),
                    "contentId": "logo",
                },
            ],
        ),
    )

    rows = await send_with_worker(live_runtime, make_worker(OutboxTransport(outbox)), ids)

    assert {row.status for row in rows.values()} == {RequestStatus.SENT}
    files = sorted(outbox.glob("*.eml"))
    assert len(files) == OUTBOX_RECIPIENTS
    seen = set()
    for path in files:
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        order = int(str(message["To"]).removeprefix("user").removesuffix("@example.com"))
        seen.add(order)
        assert message["Subject"] == f"Corner Shop: order {order} for User <{order}>"
        assert message["Reply-To"] == "help@example.org"
        plain = message.get_body(("plain",))
        assert plain is not None
        assert plain.get_content().strip() == f"Dear User <{order}>, see order {order}."
        assert_invoice_structure(message, f"User &lt;{order}&gt;")
    assert seen == set(range(OUTBOX_RECIPIENTS))


def assert_invoice_structure(message: EmailMessage, name_in_html: str) -> None:
    """multipart/mixed: the alternatives (text, and the HTML related to its inline logo), then
    the PDF."""
    assert message.get_content_type() == "multipart/mixed"
    alternative, pdf = message.iter_parts()
    assert alternative.get_content_type() == "multipart/alternative"
    text, related = alternative.iter_parts()
    assert text.get_content_type() == "text/plain"
    assert related.get_content_type() == "multipart/related"
    html, logo = related.iter_parts()
    assert html.get_content_type() == "text/html"
    assert f"Hi {name_in_html}" in html.get_content()
    assert logo.get_content_type() == "image/png"
    assert logo["Content-ID"] == "<logo>"
    assert logo.get_content_disposition() == "inline"
    assert logo.get_content() == PNG
    assert pdf.get_content_type() == "application/pdf"
    assert pdf.get_filename() == "invoice.pdf"
    assert pdf.get_content_disposition() == "attachment"
    assert pdf.get_content() == b"%PDF-1.4 one"


# Each runs away only for the second recipient's data (n); the first and third stay within
# the budget.
RUNAWAY_FOR_ONE = {
    # 4 x 10^8 iterations.
    "nested loops": (
        "{% for i in range(n) %}{% for j in range(n) %}{% endfor %}{% endfor %}<p>{{ n }}</p>",
        (1, 20_000, 2),
    ),
    # Each call reads 120,000 characters of tags, 15,000 steps: the fourth is refused.
    "a heavy filter called a few times": (
        "{% set s = '<a>' * 40000 %}{% for i in range(n) %}{{ (s | striptags) | length }}"
        "{% endfor %}<p>{{ n }}</p>",
        (1, 4, 2),
    ),
}


@pytest.mark.parametrize(("content", "data"), RUNAWAY_FOR_ONE.values(), ids=RUNAWAY_FOR_ONE.keys())
async def test_a_runaway_template_fails_its_email_and_the_process_keeps_answering(
    live_runtime: Runtime,
    make_worker: WorkerFactory,
    api: httpx.AsyncClient,
    content: str,
    data: tuple[int, int, int],
) -> None:
    """The message is accepted, and the one email that runs away fails for good while the
    others go out."""
    ids = await accept(
        api,
        {
            "topicId": "orders",
            "recipients": [
                {"email": f"user{i}@example.com", "data": {"n": n}} for i, n in enumerate(data)
            ],
            "subject": "Hello",
            "content": content,
            "text": "{{ n }}",
        },
    )
    transport = RecordingTransport()
    worker = make_worker(transport)
    health: list[int] = []
    task = asyncio.create_task(worker.run())

    async def finished() -> bool:
        health.append((await api.get("/health")).status_code)
        rows = await requests_by_id(live_runtime)
        return all(rows[i].status in (RequestStatus.SENT, RequestStatus.FAILED) for i in ids)

    try:
        await wait_until(while_running(task, finished), "every email sent or failed")
    finally:
        worker.stop()
        await asyncio.wait_for(task, 10)
    rows = await requests_by_id(live_runtime)
    first, runaway, third = (rows[i] for i in ids)
    assert (first.status, third.status) == (RequestStatus.SENT, RequestStatus.SENT)
    assert runaway.status == RequestStatus.FAILED
    assert "RenderingFailed" in (runaway.error or "")
    assert "template work over" in (runaway.error or "")
    assert sorted(email.to for email in transport.sent) == [
        "user0@example.com",
        "user2@example.com",
    ]
    assert health
    assert set(health) == {200}
