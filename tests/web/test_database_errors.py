"""A database that goes away under a running API: every endpoint that needs it answers 503 in
the JSON envelope with `Retry-After`, and says why in one log line (tests/support/outages.py:
on SQLite the disk fills, on PostgreSQL the server is cut off)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import httpx
import pytest
from prometheus_client import REGISTRY

from ses_sender.composition import create_app
from ses_sender.models import EventType
from ses_sender.tracking.endpoints import PIXEL_PNG
from tests.support.api import post_topic
from tests.support.clock import FakeClock
from tests.support.databases import postgresql_only
from tests.support.outages import Outage
from tests.support.rows import queue_emails, stored_results
from tests.support.ses_events import ses_message
from tests.support.settings import API_KEY
from tests.support.signed_sns import post as post_to_sns
from tests.support.signed_sns import publisher
from tests.support.tracking import DESKTOP_BROWSER, click_path, composed, tracked_links

RECIPIENT_PREFIX = "outage-topic"
ONE_CLICK = {"List-Unsubscribe": "One-Click"}
LINKED = '<html><body><p><a href="https://shop.example/sale">sale</a></p></body></html>'
PERSON = {"user-agent": DESKTOP_BROWSER}


@pytest.fixture
async def api(outage: Outage) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(outage.runtime))
    async with httpx.AsyncClient(
        transport=transport, base_url="http://testserver", headers={"x-api-key": API_KEY}
    ) as client:
        yield client


def assert_database_unavailable(response: httpx.Response, method: str, path: str) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"] == "5"
    body = response.json()
    assert body["error"] == "the database is unavailable: try again later"
    assert (body["method"], body["path"]) == (method, path)
    assert body["timestamp"].endswith("Z")


def database_unavailable() -> dict[str, float]:
    """The counter on `/metrics`, where the API meets the outage (its registry is per process)."""
    return {
        at: REGISTRY.get_sample_value("ses_sender_database_unavailable_total", {"at": at}) or 0.0
        for at in ("request", "open")
    }


def outage_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if "database unavailable" in record.getMessage()]


async def test_writes_answer_503_with_retry_after_and_one_log_line_each(
    outage: Outage, api: httpx.AsyncClient, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    [request_id] = await post_topic(api, RECIPIENT_PREFIX, 1)
    unsubscribe = f"/v1/unsubscribe/{outage.runtime.tokens.for_unsubscribe(request_id)}"
    pixel = f"/v1/events/open?t={outage.runtime.tokens.for_open(request_id)}"
    event = publisher(clock).notification(
        ses_message("Delivery", at=clock.now(), request_id=request_id)
    )
    message = {
        "topicId": "after",
        "emails": ["secret-person@example.com"],
        "subject": "Private subject",
        "content": "<p>x</p>",
    }

    before = database_unavailable()
    await outage.start()
    with caplog.at_level(logging.INFO):
        posted = await api.post("/v1/messages", json={"messages": [message]})
        from_sns = await post_to_sns(api, event)
        unsubscribed = await api.post(unsubscribe, data=ONE_CLICK)
        opened = await api.get(pixel)
        await outage.runtime.hits.settle()  # the open is written after the answer

    assert_database_unavailable(posted, "POST", "/v1/messages")
    assert_database_unavailable(from_sns, "POST", "/v1/events/results")
    assert_database_unavailable(unsubscribed, "POST", unsubscribe)
    # The pixel never waits on the database: the image goes out, the open is lost and logged.
    assert opened.status_code == 200
    assert opened.content == PIXEL_PNG
    lines = outage_lines(caplog)
    assert [line.getMessage().split(":")[0] for line in lines] == [
        "POST /v1/messages",
        "POST /v1/events/results",
        "POST /v1/unsubscribe/{token}",
        "an open was not recorded",
    ]
    for line in lines:
        assert line.levelno == logging.WARNING
        assert line.exc_info is None  # one line, no traceback
        text = line.getMessage()
        assert "Error" in text  # the driver's exception names the cause
        for private in ("secret-person@example.com", "Private subject", "INSERT", "UPDATE"):
            assert private not in text
    assert not [record for record in caplog.records if record.exc_info]
    assert database_unavailable() == {
        "request": before["request"] + 3,
        "open": before["open"] + 1,
    }

    await outage.end()
    again = await api.post("/v1/messages", json={"messages": [message]})
    assert again.status_code == 200, again.text


@postgresql_only
async def test_with_the_server_gone_reads_answer_503_too(
    outage: Outage, api: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    [request_id] = await post_topic(api, RECIPIENT_PREFIX, 1)
    unsubscribe = f"/v1/unsubscribe/{outage.runtime.tokens.for_unsubscribe(request_id)}"

    await outage.start()
    with caplog.at_level(logging.INFO):
        topic = await api.get(f"/v1/topics/{RECIPIENT_PREFIX}")
        page = await api.get(unsubscribe)

    assert_database_unavailable(topic, "GET", f"/v1/topics/{RECIPIENT_PREFIX}")
    assert_database_unavailable(page, "GET", unsubscribe)
    assert [line.getMessage().split(": ")[0] for line in outage_lines(caplog)] == [
        "GET /v1/topics/{topic_id:path}",
        "GET /v1/unsubscribe/{token}",
    ]
    assert not [record for record in caplog.records if record.exc_info]


def clicks_lost() -> float:
    lost = REGISTRY.get_sample_value("ses_sender_database_unavailable_total", {"at": "click"})
    return lost or 0.0


async def test_a_click_on_a_content_read_before_is_redirected_and_lost(
    outage: Outage, api: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    runtime = outage.runtime
    [request_id] = await queue_emails(runtime, ["jane@example.com"], html=LINKED)
    [sale, _honeypot] = tracked_links((await composed(runtime, request_id)).html)
    first = await api.get(click_path(sale), headers=PERSON)  # reads the content, kept since
    await runtime.hits.settle()
    before = clicks_lost()

    await outage.start()
    with caplog.at_level(logging.INFO):
        during = await api.get(click_path(sale), headers=PERSON)
        await runtime.hits.settle()
    await outage.end()

    assert (first.status_code, during.status_code) == (302, 302)
    assert during.headers["location"] == "https://shop.example/sale"
    # Lost, not kept for later: logged and counted, and not written once the database is back.
    assert [line.getMessage().split(":")[0] for line in outage_lines(caplog)] == [
        "a click was not recorded"
    ]
    assert clicks_lost() == before + 1
    await runtime.hits.settle()
    clicked = [row for row in await stored_results(runtime) if row.status == EventType.CLICK]
    assert len(clicked) == 1


@postgresql_only
async def test_a_first_click_on_a_content_answers_503_with_the_server_gone(
    outage: Outage, api: httpx.AsyncClient
) -> None:
    runtime = outage.runtime
    [request_id] = await queue_emails(runtime, ["jane@example.com"], html=LINKED)
    [sale, _honeypot] = tracked_links((await composed(runtime, request_id)).html)

    await outage.start()
    response = await api.get(click_path(sale), headers=PERSON)

    assert_database_unavailable(response, "GET", click_path(sale))
