"""/dashboard over HTTP: sign-in and its cookie, CSRF, the headers, and what each page shows
and does (the browser tests in tests/acceptance drive the same pages in Chromium)."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import select

from ses_sender.composition import Runtime, create_app
from ses_sender.dashboard.sessions import SESSION_COOKIE, DashboardSessions
from ses_sender.models import DeliveryStatus, RequestStatus, SuppressionReason, WebhookDelivery
from ses_sender.sending.service import pause_sending
from ses_sender.suppression.service import suppress
from ses_sender.webhooks.schemas import WebhookIn
from ses_sender.webhooks.service import create_webhook
from tests.support.api import post_topic
from tests.support.clock import FakeClock
from tests.support.cursors import NOT_A_CURSOR, time_cursors
from tests.support.dashboard import csrf_of, sign_in, signed_in_token
from tests.support.rows import add_requests, suppressions
from tests.support.settings import API_KEY

PAGES = [
    "/dashboard",
    "/dashboard/topics",
    "/dashboard/topic?id=news",
    "/dashboard/suppressions",
    "/dashboard/webhooks",
]


@pytest.fixture
async def browser(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    """A client of its own, with no API key header: only what a browser sends (the `client`
    fixture stays the API's client)."""
    transport = httpx.ASGITransport(app=create_app(runtime))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as browser:
        yield browser


# -- signing in ----------------------------------------------------------------------------


@pytest.mark.parametrize("page", PAGES)
async def test_every_page_sends_a_stranger_to_the_sign_in_page(
    browser: httpx.AsyncClient, page: str
) -> None:
    response = await browser.get(page)

    assert response.status_code == 303
    assert response.headers["location"].startswith("/dashboard/sign-in?next=%2Fdashboard")


async def test_the_api_key_header_does_not_open_the_dashboard(client: httpx.AsyncClient) -> None:
    assert (await client.get("/dashboard", follow_redirects=False)).status_code == 303


async def test_signing_in_sets_a_strict_http_only_session_cookie(
    browser: httpx.AsyncClient,
) -> None:
    response = await sign_in(browser)

    assert response.status_code == 303
    assert response.headers["location"] == "/dashboard"
    cookie = next(
        header
        for header in response.headers.get_list("set-cookie")
        if header.startswith(SESSION_COOKIE + "=")
    )
    attributes = {part.strip().lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "samesite=strict", "path=/dashboard"} <= attributes
    assert "secure" not in attributes  # served over http here
    assert API_KEY not in cookie
    assert (await browser.get("/dashboard")).status_code == 200


async def test_over_https_the_cookie_is_secure(runtime: Runtime) -> None:
    transport = httpx.ASGITransport(app=create_app(runtime))
    async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as browser:
        response = await sign_in(browser)

    cookie = next(h for h in response.headers.get_list("set-cookie") if SESSION_COOKIE in h)
    assert "secure" in cookie.lower()


async def test_a_wrong_key_is_refused_and_opens_nothing(browser: httpx.AsyncClient) -> None:
    response = await sign_in(browser, key="not-the-key-0123456789")

    assert response.status_code == 401
    assert "That key is not accepted." in response.text
    assert SESSION_COOKIE not in browser.cookies
    assert (await browser.get("/dashboard")).status_code == 303


async def test_sign_in_returns_to_the_page_asked_for_and_never_elsewhere(
    browser: httpx.AsyncClient,
) -> None:
    page = await browser.get("/dashboard/sign-in", params={"next": "/dashboard/webhooks"})
    form = {"csrf": csrf_of(page.text), "key": API_KEY}

    back = await browser.post("/dashboard/sign-in", data={**form, "next": "/dashboard/webhooks"})
    assert back.headers["location"] == "/dashboard/webhooks"

    page = await browser.get("/dashboard/sign-in")
    form = {"csrf": csrf_of(page.text), "key": API_KEY}
    away = await browser.post("/dashboard/sign-in", data={**form, "next": "https://evil.example"})
    assert away.headers["location"] == "/dashboard"


async def test_a_sign_in_without_the_form_s_token_is_refused(browser: httpx.AsyncClient) -> None:
    """Login CSRF: a post from another site has neither the form nor its cookie."""
    response = await browser.post(
        "/dashboard/sign-in", data={"csrf": "forged", "key": API_KEY, "next": "/dashboard"}
    )

    assert response.status_code == 403
    assert SESSION_COOKIE not in browser.cookies


async def test_a_forged_or_foreign_cookie_opens_nothing(
    browser: httpx.AsyncClient, runtime: Runtime
) -> None:
    other_secret = DashboardSessions("another-secret-0123456789", [API_KEY])
    foreign = other_secret.sign_in(API_KEY)
    assert foreign is not None

    for value in (foreign, "garbage", foreign[:-2]):
        browser.cookies.set(SESSION_COOKIE, value, path="/dashboard")
        assert (await browser.get("/dashboard")).status_code == 303


def test_a_session_ends_when_its_key_leaves_api_key() -> None:
    before = DashboardSessions("secret-0123456789abcdef", ["old-key-0123456789", API_KEY])
    cookie = before.sign_in("old-key-0123456789")
    assert cookie is not None
    assert before.session(cookie) is not None

    after = DashboardSessions("secret-0123456789abcdef", [API_KEY])

    assert after.session(cookie) is None


async def test_sign_out_ends_the_session(browser: httpx.AsyncClient) -> None:
    token = await signed_in_token(browser)

    response = await browser.post("/dashboard/sign-out", data={"csrf": token})

    assert response.status_code == 303
    assert response.headers["location"] == "/dashboard/sign-in"
    assert (await browser.get("/dashboard")).status_code == 303


# -- CSRF ----------------------------------------------------------------------------------

ACTIONS = [
    ("/dashboard/sign-out", {}),
    ("/dashboard/sending/resume", {}),
    ("/dashboard/topic/pause", {"topic": "news"}),
    ("/dashboard/topic/resume", {"topic": "news"}),
    ("/dashboard/topic/cancel", {"topic": "news"}),
    ("/dashboard/suppressions/remove", {"email": "jane@example.com"}),
]


@pytest.mark.parametrize(("action", "fields"), ACTIONS)
async def test_an_action_without_the_session_s_csrf_token_is_refused(
    browser: httpx.AsyncClient, runtime: Runtime, action: str, fields: dict[str, str]
) -> None:
    token = await signed_in_token(browser)
    await queue_news(runtime)
    async with runtime.sessionmaker() as session, session.begin():
        await suppress(
            session,
            ["jane@example.com"],
            SuppressionReason.MANUAL,
            detail=None,
            now=runtime.clock.now(),
        )

    other = ("y" if token[0] == "x" else "x") + token[1:]  # one character off, never the same
    for forged in ({}, {"csrf": other}, {"csrf": ""}):
        response = await browser.post(action, data={**fields, **forged})
        assert response.status_code == 403, action
        assert "Reload the page" in response.text

    assert (await browser.get("/dashboard")).status_code == 200  # still signed in
    assert list(await suppressions(runtime)) == ["jane@example.com"]
    assert "Paused since" not in (await browser.get("/dashboard/topic?id=news")).text


async def test_a_signed_out_action_goes_to_sign_in(browser: httpx.AsyncClient) -> None:
    response = await browser.post("/dashboard/topic/pause", data={"topic": "news", "csrf": "x"})

    assert response.status_code == 303
    assert response.headers["location"].startswith("/dashboard/sign-in")


# -- headers -------------------------------------------------------------------------------


async def test_pages_carry_the_security_headers(browser: httpx.AsyncClient) -> None:
    await signed_in_token(browser)
    for page in ["/dashboard/sign-in", *PAGES]:
        response = await browser.get(page)
        csp = response.headers["content-security-policy"]
        assert "default-src 'none'" in csp, page
        assert "script-src 'self'" in csp
        assert "frame-ancestors 'none'" in csp
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "same-origin"
        assert response.headers["cache-control"] == "no-store"


async def test_static_files_are_cached_long_and_match_their_integrity(
    browser: httpx.AsyncClient,
) -> None:
    await signed_in_token(browser)
    page = (await browser.get("/dashboard/topic?id=news")).text
    scripts = re.findall(r'<script src="([^"]+)" integrity="sha384-([^"]+)"', page)
    assert {src.split("?")[0].rsplit("/", 1)[1] for src, _ in scripts} >= {"uPlot.iife.min.js"}

    for src, integrity in scripts:
        response = await browser.get(src)
        assert response.status_code == 200
        assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert response.headers["content-type"].startswith("text/javascript")
        digest = base64.b64encode(hashlib.sha384(response.content).digest()).decode()
        assert digest == integrity

    assert (await browser.get("/dashboard/static/nothing.js")).status_code == 404
    assert (await browser.get("/dashboard/static/..%2Fendpoints.py")).status_code == 404


async def test_the_dashboard_is_not_in_the_api_document(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]

    assert not [path for path in paths if path.startswith("/dashboard")]


# -- languages -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("accept_language", "expected", "lang"),
    [
        ("ko-KR,ko;q=0.9,en-US;q=0.8", "개요", "ko"),
        ("en-US,en;q=0.9,ko;q=0.8", "Overview", "en"),
        ("fr-FR,ko;q=0.5", "개요", "ko"),
        ("fr-FR", "Overview", "en"),
    ],
)
async def test_pages_speak_the_reader_s_language(
    browser: httpx.AsyncClient, accept_language: str, expected: str, lang: str
) -> None:
    await signed_in_token(browser)

    response = await browser.get("/dashboard", headers={"accept-language": accept_language})

    assert f'<html lang="{lang}">' in response.text
    assert f"<h1>{expected}</h1>" in response.text
    assert response.headers["vary"] == "Accept-Language"


# -- what the pages show and do ------------------------------------------------------------


def chart_of(page: str) -> list[list[int]]:
    """The rows a page's timeline chart draws: start, sent, delivered, opened, bounced."""
    data = re.search(r'<script type="application/json" id="timeline-data">([^<]*)</script>', page)
    assert data is not None
    rows: list[list[int]] = json.loads(data.group(1))
    return rows


async def queue_news(runtime: Runtime) -> list[int]:
    return await add_requests(
        runtime,
        [RequestStatus.CREATED] * 3 + [RequestStatus.SENT] * 2 + [RequestStatus.FAILED],
        topic="news",
    )


async def test_the_overview_shows_the_rates_and_resumes_paused_sending(
    browser: httpx.AsyncClient, runtime: Runtime, clock: FakeClock
) -> None:
    token = await signed_in_token(browser)
    await queue_news(runtime)
    async with runtime.sessionmaker() as session, session.begin():
        await pause_sending(session, "guardrail", "bounce rate 6.00% is too high", now=clock.now())

    page = (await browser.get("/dashboard")).text
    assert "Sending is paused" in page
    assert "guardrail: bounce rate 6.00% is too high" in page
    assert "pauses sending above 5.00%" in page  # GUARDRAIL_BOUNCE_RATE
    assert "pauses sending above 0.10%" in page  # GUARDRAIL_COMPLAINT_RATE
    assert "14 / s" in page  # EMAIL_RATE

    resumed = await browser.post("/dashboard/sending/resume", data={"csrf": token})
    assert resumed.headers["location"] == "/dashboard?done=resumed"
    page = (await browser.get(resumed.headers["location"])).text
    assert "Sending is resumed." in page
    assert "Sending is paused" not in page


async def test_the_overview_counts_the_last_day_s_sends(
    browser: httpx.AsyncClient, runtime: Runtime, clock: FakeClock
) -> None:
    await signed_in_token(browser)
    await add_requests(runtime, [RequestStatus.SENT] * 4, topic="news")
    clock.advance(2 * 3600)
    await add_requests(runtime, [RequestStatus.SENT] * 2, topic="news")

    page = (await browser.get("/dashboard")).text

    assert re.search(r'id="sent-last-hour">2<', page)
    assert re.search(r'id="sent-last-day">6<', page)
    minute = int(clock.now().timestamp()) // 60 * 60
    assert chart_of(page)[-1] == [minute, 2, 0, 0, 0]
    assert len(chart_of(page)) == 60


async def test_topics_are_listed_newest_first_with_their_progress(
    browser: httpx.AsyncClient, client: httpx.AsyncClient, runtime: Runtime, clock: FakeClock
) -> None:
    await signed_in_token(browser)
    await post_topic(client, "news", 6)
    clock.advance(1)
    await post_topic(client, "later/topic", 1)
    await queue_news(runtime)  # six more: three queued, two sent, one failed

    page = (await browser.get("/dashboard/topics")).text

    assert page.index("later/topic") < page.index(">news<")
    assert '<progress max="12" value="3">' in page
    progress = await browser.get(
        "/dashboard/progress", params=[("topic", "news"), ("topic", "nothing")]
    )
    assert progress.json() == {
        "topics": [
            {
                "topicId": "news",
                "total": 12,
                "queued": 9,
                "sent": 2,
                "failed": 1,
                "stopped": 0,
                "done": 3,
            },
            {
                "topicId": "nothing",
                "total": 0,
                "queued": 0,
                "sent": 0,
                "failed": 0,
                "stopped": 0,
                "done": 0,
            },
        ]
    }


async def test_progress_data_needs_a_session(browser: httpx.AsyncClient) -> None:
    response = await browser.get("/dashboard/progress", params={"topic": "news"})

    assert response.status_code == 401
    assert response.json()["error"] == "Unauthorized: sign in to the dashboard"


async def test_a_topic_is_paused_resumed_and_cancelled(
    browser: httpx.AsyncClient, runtime: Runtime
) -> None:
    token = await signed_in_token(browser)
    await queue_news(runtime)

    paused = await browser.post("/dashboard/topic/pause", data={"csrf": token, "topic": "news"})
    assert paused.status_code == 303
    page = (await browser.get(paused.headers["location"])).text
    assert "Paused since" in page
    assert "The topic is paused" in page
    assert 'action="/dashboard/topic/resume"' in page
    # Cancelling cannot be undone: its button is behind a disclosure.
    assert re.search(r'<details class="confirm">\s*<summary>Cancel unsent</summary>', page)

    resumed = await browser.post("/dashboard/topic/resume", data={"csrf": token, "topic": "news"})
    page = (await browser.get(resumed.headers["location"])).text
    assert "Paused since" not in page
    assert 'action="/dashboard/topic/pause"' in page

    cancelled = await browser.post("/dashboard/topic/cancel", data={"csrf": token, "topic": "news"})
    page = (await browser.get(cancelled.headers["location"])).text
    assert "Cancelled 3 unsent emails." in page
    progress = await browser.get("/dashboard/progress", params={"topic": "news"})
    assert progress.json()["topics"][0]["stopped"] == 3


async def test_a_topic_page_shows_its_funnel_and_sends_per_minute(
    browser: httpx.AsyncClient, runtime: Runtime, clock: FakeClock
) -> None:
    await signed_in_token(browser)
    await add_requests(runtime, [RequestStatus.SENT] * 3, topic="news")
    clock.advance(2 * 60)
    await add_requests(runtime, [RequestStatus.SENT], topic="news")

    page = (await browser.get("/dashboard/topic", params={"id": "news"})).text

    minute = int(runtime.clock.now().timestamp()) // 60 * 60
    assert chart_of(page)[-3:] == [
        [minute - 120, 3, 0, 0, 0],
        [minute - 60, 0, 0, 0, 0],
        [minute, 1, 0, 0, 0],
    ]
    assert "<td>example.com</td>" in page  # the domain table
    by_hour = (await browser.get("/dashboard/topic", params={"id": "news", "bucket": "hour"})).text
    assert chart_of(by_hour)[-1] == [minute // 3600 * 3600, 4, 0, 0, 0]
    refused = await browser.get("/dashboard/topic", params={"id": "news", "bucket": "week"})
    assert refused.status_code == 400


async def test_a_topic_id_with_control_characters_is_a_400(browser: httpx.AsyncClient) -> None:
    await signed_in_token(browser)

    response = await browser.get("/dashboard/topic", params={"id": "a\nb"})

    assert response.status_code == 400
    assert "topicId" in response.json()["error"]


async def test_a_cursor_of_nul_bytes_is_a_400(browser: httpx.AsyncClient) -> None:
    await signed_in_token(browser)

    response = await browser.get("/dashboard/suppressions", params={"cursor": "AAAA"})

    assert response.status_code == 400
    assert response.json()["error"] == "cursor: not a cursor from a previous page"


@pytest.mark.parametrize("cursor", time_cursors("topic"))
async def test_a_topic_cursor_off_the_calendar_is_a_400(
    browser: httpx.AsyncClient, cursor: str
) -> None:
    await signed_in_token(browser)

    response = await browser.get("/dashboard/topics", params={"cursor": cursor})

    assert response.status_code == 400
    assert response.json()["error"] == NOT_A_CURSOR


async def test_the_suppression_list_is_searched_and_an_address_removed(
    browser: httpx.AsyncClient, runtime: Runtime, clock: FakeClock
) -> None:
    token = await signed_in_token(browser)
    async with runtime.sessionmaker() as session, session.begin():
        await suppress(
            session,
            ["jane@example.com", "kim@naver.com", "Lee@naver.com"],
            SuppressionReason.BOUNCE,
            detail="550 5.1.1 user unknown",
            now=clock.now(),
        )

    page = (await browser.get("/dashboard/suppressions", params={"q": "NAVER"})).text
    assert "kim@naver.com" in page
    assert "Lee@naver.com" in page
    assert "jane@example.com" not in page
    assert "550 5.1.1 user unknown" in page

    removed = await browser.post(
        "/dashboard/suppressions/remove",
        data={"csrf": token, "email": "kim@naver.com", "q": "naver"},
    )
    assert removed.headers["location"] == (
        "/dashboard/suppressions?q=naver&removed=kim%40naver.com"
    )
    page = (await browser.get(removed.headers["location"])).text
    assert "kim@naver.com can be mailed again." in page
    assert "kim@naver.com</td>" not in page
    assert sorted(await suppressions(runtime)) == ["Lee@naver.com", "jane@example.com"]

    again = await browser.post(
        "/dashboard/suppressions/remove", data={"csrf": token, "email": "kim@naver.com"}
    )
    page = (await browser.get(again.headers["location"])).text
    assert "kim@naver.com was not on the list." in page

    nothing = (await browser.get("/dashboard/suppressions", params={"q": "%"})).text
    assert "No suppressed address matches." in nothing  # % is text, not a wildcard


async def test_webhooks_are_shown_with_their_recent_failures(
    browser: httpx.AsyncClient, runtime: Runtime, clock: FakeClock
) -> None:
    await signed_in_token(browser)
    now = clock.now()
    async with runtime.sessionmaker() as session, session.begin():
        hook = await create_webhook(
            session,
            WebhookIn(url="https://hooks.example.com/ses", events=["Bounce"]),
            now=now,
            allow_private=True,  # no lookup of the receiver's address: not what this tests
        )
        for status, error in [
            (DeliveryStatus.FAILED, "HTTP 500 from the receiver"),
            (DeliveryStatus.PENDING, "connection refused"),
            (DeliveryStatus.DELIVERED, None),
        ]:
            session.add(
                WebhookDelivery(
                    webhook_id=hook.id,
                    event_type="Bounce",
                    payload="{}",
                    status=status,
                    attempts=3,
                    due_at=now,
                    last_error=error,
                    created_at=now,
                )
            )

    page = (await browser.get("/dashboard/webhooks")).text

    assert "https://hooks.example.com/ses" in page
    assert "HTTP 500 from the receiver" in page
    assert "Gave up" in page
    assert "connection refused" in page
    assert "Retrying" in page
    async with runtime.sessionmaker() as session:
        assert len((await session.scalars(select(WebhookDelivery))).all()) == 3
    assert page.count("<tr>") == 1 + 1 + 1 + 2  # two headers, the webhook, two failures


async def test_what_people_wrote_is_escaped(
    browser: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    message = {
        "topicId": "<script>alert(1)</script>",
        "emails": ["a@example.com"],
        "subject": "Hi",
        "content": "<p>Hi</p>",
    }
    assert (await client.post("/v1/messages", json={"messages": [message]})).status_code == 200
    await signed_in_token(browser)

    page = (await browser.get("/dashboard/topics")).text

    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
