"""The click redirect against a real database: where it leads, what it records and how each
click is judged; tampered tokens answered 404 with nothing recorded."""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select, update

from ses_sender.composition import Runtime, create_app
from ses_sender.models import Content, EventType, Request, WebhookDelivery
from ses_sender.tracking.tokens import ClickToken
from tests.support.clock import FakeClock
from tests.support.rows import queue_emails, request_row, stored_results
from tests.support.settings import API_KEY
from tests.support.tracking import (
    DESKTOP_BROWSER,
    RecordedShape,
    click_path,
    composed,
    fetch_as,
    recorded_shapes,
    tampered,
    tracked_links,
)

HTML = (
    '<html><body><p>Hello <a href="https://shop.example/sale?id=1&amp;ref=mail">sale</a></p>'
    '<p><a href="https://bücher.example/straße">books</a>'
    ' <a href="mailto:help@example.com">help</a></p></body></html>'
)
SALE = "https://shop.example/sale?id=1&ref=mail"
BOOKS = "https://bücher.example/straße"
PERSON = {"user-agent": DESKTOP_BROWSER, "x-forwarded-for": "203.0.113.7"}


async def one_email(runtime: Runtime, html: str = HTML) -> tuple[int, list[str]]:
    """A queued email and its tracked links as its recipient gets them (honeypot last)."""
    [request_id] = await queue_emails(runtime, ["jane@example.com"], html=html)
    return request_id, tracked_links((await composed(runtime, request_id)).html)


async def clicks(runtime: Runtime) -> list[tuple[str | None, bool | None, str | None]]:
    return [
        (row.url, row.machine, row.reason)
        for row in await stored_results(runtime)
        if row.status == EventType.CLICK
    ]


async def test_a_click_redirects_to_the_stored_link_and_is_counted(
    anonymous_client: httpx.AsyncClient, runtime: Runtime, clock: FakeClock
) -> None:
    request_id, [sale, books, _honeypot] = await one_email(runtime)

    response = await anonymous_client.get(click_path(sale), headers=PERSON)
    await runtime.hits.settle()

    assert response.status_code == 302
    assert response.headers["location"] == SALE
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["referrer-policy"] == "no-referrer"
    row = await request_row(runtime, request_id)
    assert (row.click_count, row.first_clicked_at) == (1, clock.now())
    assert await clicks(runtime) == [(SALE, False, "direct")]

    clock.advance(60)
    again = await anonymous_client.get(click_path(books), headers=PERSON)
    await runtime.hits.settle()

    assert again.headers["location"] == "https://xn--bcher-kva.example/stra%C3%9Fe"
    row = await request_row(runtime, request_id)
    assert (row.click_count, row.first_clicked_at) == (2, clock.now() - timedelta(seconds=60))
    assert await clicks(runtime) == [(SALE, False, "direct"), (BOOKS, False, "direct")]


async def test_the_redirect_reads_the_content_once_then_from_memory(
    anonymous_client: httpx.AsyncClient, runtime: Runtime
) -> None:
    _request_id, [sale, *_] = await one_email(runtime)
    assert (await anonymous_client.get(click_path(sale), headers=PERSON)).status_code == 302
    async with runtime.sessionmaker() as session, session.begin():
        await session.execute(update(Content).values(content="<p>changed</p>"))

    response = await anonymous_client.get(click_path(sale), headers=PERSON)

    assert response.headers["location"] == SALE  # the stored content was not read again


@pytest.mark.parametrize("method", ["GET", "HEAD"])
async def test_forged_and_tampered_tokens_get_a_404_and_record_nothing(
    anonymous_client: httpx.AsyncClient, runtime: Runtime, method: str
) -> None:
    request_id, [sale, *_] = await one_email(runtime)
    token = click_path(sale).removeprefix("/v1/c/")
    real = runtime.tokens.click(token)
    assert real is not None
    forged = [
        "garbage",
        "A" * 62,
        "A" * 5000,
        runtime.tokens.for_open(request_id),  # a pixel's token
        runtime.tokens.for_unsubscribe(request_id),
        runtime.tokens.for_click(dataclasses.replace(real, position=7)),  # no such link
        runtime.tokens.for_click(dataclasses.replace(real, fingerprint=real.fingerprint ^ 1)),
        runtime.tokens.for_click(ClickToken(request_id, 999_999, 0, real.fingerprint)),
    ]
    forged += tampered(token, every=5)

    for bad in forged:
        response = await anonymous_client.request(method, f"/v1/c/{bad}", headers=PERSON)
        assert response.status_code == 404, bad
        assert "location" not in response.headers
    await runtime.hits.settle()

    assert await stored_results(runtime) == []
    assert (await request_row(runtime, request_id)).click_count == 0


async def test_another_method_gets_a_405_naming_get_and_head_and_records_nothing(
    anonymous_client: httpx.AsyncClient, runtime: Runtime
) -> None:
    request_id, [sale, *_] = await one_email(runtime)

    for method in ("POST", "PUT", "DELETE", "OPTIONS"):
        response = await anonymous_client.request(method, click_path(sale), headers=PERSON)
        assert response.status_code == 405, method
        assert response.headers["allow"] == "GET, HEAD"  # RFC 9110: a 405 names them
        assert response.json()["error"] == "Method Not Allowed"
        assert "location" not in response.headers
    await runtime.hits.settle()

    assert await stored_results(runtime) == []
    assert (await request_row(runtime, request_id)).click_count == 0


async def test_a_click_is_posted_to_webhooks_with_its_url_and_verdict(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    await client.post(
        "/v1/webhooks", json={"url": "https://hooks.example.com/in", "events": ["Click"]}
    )
    request_id, [sale, *_] = await one_email(runtime)

    await client.get(click_path(sale), headers={**PERSON, "x-api-key": ""})
    await client.head(click_path(sale), headers=PERSON)
    await runtime.hits.settle()

    queued = await _queued_payloads(runtime)
    assert [(p["type"], p["requestId"], p["details"]) for p in queued] == [
        ("Click", request_id, {"machine": False, "reason": "direct", "url": SALE}),
        ("Click", request_id, {"machine": True, "reason": "head", "url": SALE}),
    ]


async def _queued_payloads(runtime: Runtime) -> list[dict[str, object]]:
    async with runtime.sessionmaker() as session:
        rows = (
            await session.scalars(select(WebhookDelivery.payload).order_by(WebhookDelivery.id))
        ).all()
    return [json.loads(row) for row in rows]


# -- people and machines ----------------------------------------------------------------------


@pytest.mark.parametrize("recorded", recorded_shapes("clicks"), ids=str)
async def test_recorded_clicks_are_judged_by_their_request(
    anonymous_client: httpx.AsyncClient, runtime: Runtime, recorded: RecordedShape
) -> None:
    _, [sale, *_] = await one_email(runtime)

    response = await fetch_as(anonymous_client, click_path(sale), recorded.shape)
    await runtime.hits.settle()

    assert response.status_code == 302
    assert await clicks(runtime) == [(SALE, recorded.machine, recorded.reason)]


@pytest.mark.parametrize("recorded", recorded_shapes("opens"), ids=str)
async def test_recorded_opens_are_judged_by_their_request(
    anonymous_client: httpx.AsyncClient, runtime: Runtime, recorded: RecordedShape
) -> None:
    request_id, _ = await one_email(runtime)
    pixel = f"/v1/events/open?t={runtime.tokens.for_open(request_id)}"

    await fetch_as(anonymous_client, pixel, recorded.shape)
    await runtime.hits.settle()

    [opened] = await stored_results(runtime)
    assert (opened.status, opened.machine, opened.reason) == (
        "Open",
        recorded.machine,
        recorded.reason,
    )
    assert (await request_row(runtime, request_id)).open_count == 1


async def test_a_click_within_the_window_after_the_send_is_a_machines(
    anonymous_client: httpx.AsyncClient, runtime: Runtime, clock: FakeClock
) -> None:
    _request_id, [sale, books, _] = await one_email(runtime)
    async with runtime.sessionmaker() as session, session.begin():
        await session.execute(update(Request).values(sent_at=clock.now() - timedelta(seconds=3)))

    await anonymous_client.get(click_path(sale), headers=PERSON)
    clock.advance(60)
    await anonymous_client.get(click_path(books), headers=PERSON)
    await runtime.hits.settle()

    assert await clicks(runtime) == [(SALE, True, "too-soon"), (BOOKS, False, "direct")]


async def test_every_link_clicked_in_one_burst_is_a_machines(
    anonymous_client: httpx.AsyncClient, runtime: Runtime, clock: FakeClock
) -> None:
    _, [sale, books, _] = await one_email(runtime)

    await anonymous_client.get(click_path(sale), headers=PERSON)
    await runtime.hits.settle()  # the first click written before the second comes
    clock.advance(1)
    await anonymous_client.get(click_path(books), headers=PERSON)
    await runtime.hits.settle()

    assert await clicks(runtime) == [(SALE, True, "burst"), (BOOKS, True, "burst")]


async def test_a_burst_completed_by_a_click_that_is_a_machines_anyway_re_judges_the_rest(
    anonymous_client: httpx.AsyncClient, runtime: Runtime, clock: FakeClock
) -> None:
    _, [sale, books, _] = await one_email(runtime)

    await anonymous_client.get(click_path(sale), headers=PERSON)
    await runtime.hits.settle()
    clock.advance(1)
    # A checker's HEAD of the last link: a machine's by its request, and the burst is complete.
    await anonymous_client.head(click_path(books), headers=PERSON)
    await runtime.hits.settle()

    assert await clicks(runtime) == [(SALE, True, "burst"), (BOOKS, True, "head")]
    answer = await anonymous_client.get("/v1/topics/t1/links", headers={"x-api-key": API_KEY})
    links = answer.json()["links"]
    assert {(link["url"], link["human"], link["machine"]) for link in links} == {
        (SALE, 0, 1),
        (BOOKS, 0, 1),
    }


async def test_a_person_reading_between_clicks_stays_human(
    anonymous_client: httpx.AsyncClient, runtime: Runtime, clock: FakeClock
) -> None:
    _, [sale, books, _] = await one_email(runtime)

    await anonymous_client.get(click_path(sale), headers=PERSON)
    clock.advance(45)
    await anonymous_client.get(click_path(books), headers=PERSON)
    await runtime.hits.settle()

    assert await clicks(runtime) == [(SALE, False, "direct"), (BOOKS, False, "direct")]


async def test_the_honeypot_marks_the_recipients_burst_as_a_machines(
    anonymous_client: httpx.AsyncClient, runtime: Runtime, clock: FakeClock
) -> None:
    _, [sale, books, _third, honeypot] = await one_email(
        runtime, HTML.replace("</body>", '<a href="https://c.example/">c</a></body>')
    )

    await anonymous_client.get(click_path(sale), headers=PERSON)
    await runtime.hits.settle()
    clock.advance(1)
    trap = await anonymous_client.get(click_path(honeypot), headers=PERSON)
    clock.advance(1)
    await anonymous_client.get(click_path(books), headers=PERSON)
    await runtime.hits.settle()

    assert trap.status_code == 204
    assert await clicks(runtime) == [
        (SALE, True, "honeypot"),
        (None, True, "honeypot"),
        (BOOKS, True, "honeypot"),
    ]


async def test_x_forwarded_for_counts_only_from_a_trusted_proxy(runtime: Runtime) -> None:
    untrusting = dataclasses.replace(
        runtime,
        settings=runtime.settings.model_copy(update={"forwarded_allow_ips": ["10.0.0.0/8"]}),
    )
    _, [sale, *_] = await one_email(runtime)
    safe_links = {"user-agent": DESKTOP_BROWSER, "x-forwarded-for": "40.107.22.60"}

    transport = httpx.ASGITransport(app=create_app(untrusting), client=("192.0.2.9", 4000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        await client.get(click_path(sale), headers=safe_links)
    transport = httpx.ASGITransport(app=create_app(untrusting), client=("10.1.2.3", 4000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        await client.get(click_path(sale), headers=safe_links)
    await runtime.hits.settle()

    assert [verdict for _, *verdict in await clicks(runtime)] == [
        [False, "direct"],  # the header of a stranger, ignored
        [True, "scanner-network"],  # our proxy's word
    ]


async def test_a_scanner_reaching_a_dual_stack_listener_over_ipv4_is_known_by_its_range(
    runtime: Runtime,
) -> None:
    _, [sale, *_] = await one_email(runtime)
    # Listening on `::`, an IPv4 peer shows as an IPv4-mapped IPv6 address.
    transport = httpx.ASGITransport(app=create_app(runtime), client=("::ffff:40.107.22.60", 4000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        await client.get(click_path(sale), headers={"user-agent": DESKTOP_BROWSER})
    await runtime.hits.settle()

    assert [verdict for _, *verdict in await clicks(runtime)] == [[True, "scanner-network"]]


# -- opting out -----------------------------------------------------------------------------


async def test_a_message_can_opt_out_of_click_tracking(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    message = {"topicId": "t", "emails": ["a@example.com"], "subject": "S", "content": HTML}

    tracked = await client.post("/v1/messages", json={"messages": [message]})
    plain = await client.post(
        "/v1/messages", json={"messages": [{**message, "trackClicks": False}]}
    )
    wrong = await client.post("/v1/messages", json={"messages": [{**message, "trackClicks": "no"}]})

    [tracked_id] = tracked.json()["messages"][0]["requestIds"]
    [plain_id] = plain.json()["messages"][0]["requestIds"]
    assert len(tracked_links((await composed(runtime, tracked_id)).html)) == 3
    email = await composed(runtime, plain_id)
    assert tracked_links(email.html) == []
    assert email.html.startswith(HTML.removesuffix("</body></html>"))
    assert wrong.status_code == 400
    assert "trackClicks" in wrong.json()["error"]


async def test_track_clicks_off_by_setting(runtime: Runtime) -> None:
    off = dataclasses.replace(
        runtime, settings=runtime.settings.model_copy(update={"track_clicks": False})
    )
    [request_id] = await queue_emails(runtime, ["jane@example.com"], html=HTML)

    assert tracked_links((await composed(off, request_id)).html) == []
