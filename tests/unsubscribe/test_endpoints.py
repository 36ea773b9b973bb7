"""/v1/unsubscribe/{token}: RFC 8058 one-click by POST, a confirmation page by GET."""

from __future__ import annotations

import dataclasses
import json
import re

import httpx
import pytest
from sqlalchemy import select

from ses_sender.composition import Runtime, create_app
from ses_sender.models import Request, Result, ResultSource, SuppressionReason, WebhookDelivery
from ses_sender.suppression.service import suppress
from tests.support.clock import FakeClock
from tests.support.rows import queue_emails, suppressions
from tests.support.settings import API_KEY

ONE_CLICK = {"List-Unsubscribe": "One-Click"}


async def request_row(runtime: Runtime, request_id: int) -> Request:
    async with runtime.sessionmaker() as session:
        row = await session.get(Request, request_id)
    assert row is not None
    return row


async def results(runtime: Runtime) -> list[Result]:
    async with runtime.sessionmaker() as session:
        return list((await session.scalars(select(Result))).all())


async def nothing_changed(runtime: Runtime, request_id: int) -> None:
    assert (await request_row(runtime, request_id)).unsubscribed_at is None
    assert await suppressions(runtime) == {}
    assert await results(runtime) == []


def assert_page(response: httpx.Response, status: int) -> None:
    assert response.status_code == status
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["referrer-policy"] == "no-referrer"


@pytest.fixture
async def request_id(runtime: Runtime) -> int:
    [queued] = await queue_emails(runtime, ["jane@example.net"], topic="news")
    return queued


@pytest.fixture
def link(runtime: Runtime, request_id: int) -> str:
    return f"/v1/unsubscribe/{runtime.tokens.for_unsubscribe(request_id)}"


async def test_one_click_post_unsubscribes_at_once(
    anonymous_client: httpx.AsyncClient, runtime: Runtime, request_id: int, link: str
) -> None:
    response = await anonymous_client.post(link, data=ONE_CLICK)

    assert_page(response, 200)
    assert "You are unsubscribed" in response.text
    assert (await request_row(runtime, request_id)).unsubscribed_at == runtime.clock.now()
    assert await suppressions(runtime) == {
        "jane@example.net": (
            "unsubscribe",
            f"one-click unsubscribe from request {request_id} (topic news)",
        )
    }
    [logged] = await results(runtime)
    assert (logged.request_id, logged.status, logged.source, logged.recipient) == (
        request_id,
        "Unsubscribe",
        ResultSource.TRACKING,
        "jane@example.net",
    )


async def test_an_unsubscribe_goes_to_the_webhooks_that_asked_for_it_once(
    anonymous_client: httpx.AsyncClient, runtime: Runtime, request_id: int, link: str
) -> None:
    for url, events in (("https://hooks.example.com/x", "Unsubscribe"), ("https://y.io", "Bounce")):
        created = await anonymous_client.post(
            "/v1/webhooks", json={"url": url, "events": [events]}, headers={"x-api-key": API_KEY}
        )
        assert created.status_code == 201

    for _ in range(2):  # mailbox providers may POST twice
        assert (await anonymous_client.post(link, data=ONE_CLICK)).status_code == 200

    async with runtime.sessionmaker() as session:
        [delivery] = (await session.scalars(select(WebhookDelivery))).all()
    payload = json.loads(delivery.payload)
    assert (delivery.event_type, payload["type"], payload["requestId"]) == (
        "Unsubscribe",
        "Unsubscribe",
        request_id,
    )
    assert (payload["topicId"], payload["email"]) == ("news", "jane@example.net")


async def test_multipart_form_data_is_understood_too(
    anonymous_client: httpx.AsyncClient, runtime: Runtime, request_id: int, link: str
) -> None:
    response = await anonymous_client.post(link, files={"List-Unsubscribe": (None, "One-Click")})

    assert_page(response, 200)
    assert (await request_row(runtime, request_id)).unsubscribed_at is not None


async def test_a_repeated_post_is_answered_the_same_and_logged_once(
    anonymous_client: httpx.AsyncClient,
    runtime: Runtime,
    clock: FakeClock,
    request_id: int,
    link: str,
) -> None:
    first = clock.now()
    await anonymous_client.post(link, data=ONE_CLICK)
    clock.advance(60)

    again = await anonymous_client.post(link, data=ONE_CLICK)

    assert_page(again, 200)
    assert len(await results(runtime)) == 1
    assert (await request_row(runtime, request_id)).unsubscribed_at == first


async def test_unsubscribing_again_restores_a_lifted_suppression(
    client: httpx.AsyncClient, runtime: Runtime, link: str
) -> None:
    await client.post(link, data=ONE_CLICK)
    assert (await client.delete("/v1/suppressions/jane@example.net")).status_code == 204

    await client.post(link, data=ONE_CLICK)

    assert (await suppressions(runtime))["jane@example.net"][0] == "unsubscribe"


async def test_an_address_suppressed_for_another_reason_keeps_it(
    anonymous_client: httpx.AsyncClient, runtime: Runtime, request_id: int, link: str
) -> None:
    async with runtime.sessionmaker() as session, session.begin():
        await suppress(
            session,
            ["jane@example.net"],
            SuppressionReason.COMPLAINT,
            detail=None,
            now=runtime.clock.now(),
        )

    assert_page(await anonymous_client.post(link, data=ONE_CLICK), 200)

    assert await suppressions(runtime) == {"jane@example.net": ("complaint", None)}
    assert (await request_row(runtime, request_id)).unsubscribed_at is not None


@pytest.mark.parametrize(
    "form",
    [
        {},
        {"List-Unsubscribe": "Yes"},
        {"List-Unsubscribe": ""},
        {"list-unsubscribe": "One-Click"},
        {"unsubscribe": "One-Click"},
    ],
)
async def test_a_post_without_one_click_changes_nothing(
    anonymous_client: httpx.AsyncClient,
    runtime: Runtime,
    request_id: int,
    link: str,
    form: dict[str, str],
) -> None:
    response = await anonymous_client.post(link, data=form)

    assert_page(response, 400)
    await nothing_changed(runtime, request_id)


async def test_an_oversized_form_is_refused(
    anonymous_client: httpx.AsyncClient, runtime: Runtime, request_id: int, link: str
) -> None:
    response = await anonymous_client.post(
        link, content=b"List-Unsubscribe=One-Click&pad=" + b"x" * 10_000
    )

    assert response.status_code == 413
    await nothing_changed(runtime, request_id)


async def test_get_shows_a_page_that_changes_nothing(
    anonymous_client: httpx.AsyncClient, runtime: Runtime, request_id: int, link: str
) -> None:
    response = await anonymous_client.get(link)

    assert_page(response, 200)
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert '<form method="post">' in response.text
    await nothing_changed(runtime, request_id)


async def test_the_page_s_button_unsubscribes(
    anonymous_client: httpx.AsyncClient, runtime: Runtime, request_id: int, link: str
) -> None:
    """What a browser does with the page: submit its form, to the page's own URL."""
    page = (await anonymous_client.get(link)).text
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]+)">', page))

    response = await anonymous_client.post(link, data=fields)

    assert_page(response, 200)
    assert (await request_row(runtime, request_id)).unsubscribed_at is not None


def tampered_tokens(token: str) -> list[str]:
    flipped = [
        token[:position] + ("A" if token[position] != "A" else "B") + token[position + 1 :]
        for position in (0, len(token) // 2, len(token) - 1)
    ]
    return [*flipped, token[:-1], token + "A", "", "garbage", "1"]


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_tampered_tokens_are_refused_and_change_nothing(
    anonymous_client: httpx.AsyncClient, runtime: Runtime, request_id: int, method: str
) -> None:
    token = runtime.tokens.for_unsubscribe(request_id)
    for forged in tampered_tokens(token):
        response = await anonymous_client.request(
            method, f"/v1/unsubscribe/{forged}", data=ONE_CLICK
        )
        assert response.status_code in (404, 405), forged  # "" leaves no route at all
        assert "form" not in response.text

    await nothing_changed(runtime, request_id)


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_other_tokens_of_ours_are_refused(
    anonymous_client: httpx.AsyncClient, runtime: Runtime, request_id: int, method: str
) -> None:
    not_for_unsubscribing = runtime.tokens.for_open(request_id)
    for_a_request_that_is_gone = runtime.tokens.for_unsubscribe(request_id + 1_000)

    for token in (not_for_unsubscribing, for_a_request_that_is_gone):
        response = await anonymous_client.request(
            method, f"/v1/unsubscribe/{token}", data=ONE_CLICK
        )
        assert_page(response, 404)

    await nothing_changed(runtime, request_id)


async def test_the_topic_stats_count_unsubscribes(client: httpx.AsyncClient, link: str) -> None:
    await client.post(link, data=ONE_CLICK)

    stats = (await client.get("/v1/topics/news")).json()

    assert stats["result"]["statuses"] == {"Unsubscribe": 1}


async def test_the_page_names_the_masked_address_and_the_sender(
    anonymous_client: httpx.AsyncClient, link: str
) -> None:
    page = (await anonymous_client.get(link)).text

    assert "Stop all email from sender@example.com to j***@example.net?" in page
    assert "jane@" not in page
    assert '<html lang="en">' in page


async def test_the_pages_are_in_korean_for_a_korean_reader(
    anonymous_client: httpx.AsyncClient, runtime: Runtime, request_id: int, link: str
) -> None:
    korean = {"accept-language": "ko-KR,ko;q=0.9,en;q=0.5"}

    page = await anonymous_client.get(link, headers=korean)
    assert '<html lang="ko">' in page.text
    assert "sender@example.com에서 j***@example.net(으)로 보내는" in page.text
    assert "수신 거부</button>" in page.text
    assert page.headers["vary"] == "Accept-Language"

    done = await anonymous_client.post(link, data=ONE_CLICK, headers=korean)
    assert done.status_code == 200
    assert "수신 거부되었습니다" in done.text
    assert (await request_row(runtime, request_id)).unsubscribed_at is not None

    missing = await anonymous_client.get(link + "x", headers=korean)
    assert missing.status_code == 404
    assert "유효하지 않은 링크" in missing.text


async def test_the_sender_s_name_is_shown_when_it_has_one(
    runtime: Runtime, request_id: int, link: str
) -> None:
    named = dataclasses.replace(
        runtime,
        settings=runtime.settings.model_copy(
            update={"email_sender": "Acme News <news@acme.example>"}
        ),
    )
    transport = httpx.ASGITransport(app=create_app(named))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as browser:
        page = (await browser.get(link)).text

    assert "Stop all email from Acme News (news@acme.example) to j***@example.net?" in page


async def test_markup_in_the_sender_is_shown_as_text(runtime: Runtime, link: str) -> None:
    named = dataclasses.replace(
        runtime,
        settings=runtime.settings.model_copy(
            update={"email_sender": '"Tom & <Jerry>" <news@acme.example>'}
        ),
    )
    transport = httpx.ASGITransport(app=create_app(named))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as browser:
        page = (await browser.get(link)).text

    assert "<Jerry>" not in page
    assert "from Tom &amp; &lt;Jerry&gt; (news@acme.example) to" in page
