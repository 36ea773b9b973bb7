"""The dashboard in a real browser (headless Chromium) against a real `ses-sender serve`
sending to the SES stub: sign in, hold a campaign, watch it go from queued to sent, see its
chart, work the suppression list, in English and Korean; and a forged form is refused.

One test per backend, one serve process each: starting one is the slow part."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, BrowserContext, Page, expect

from ses_sender.composition import Runtime
from tests.support.browser import BROWSER_TIMEOUT_MS, ServeProcess, chromium, screenshot
from tests.support.ses_stub import SesStub
from tests.support.tracking import DESKTOP_BROWSER
from tests.support.worker_processes import roomy_account, worker_env

API_KEY = "browser-key-0123456789"
# How long the campaign may take to send, watched in the page: seconds on a quiet machine.
CAMPAIGN_TIMEOUT_MS = 300_000
TOPIC = "spring-sale"
CAMPAIGN = 12

# How many pixels of the chart are the "sent" series' blue (its bars): the axes and grid are
# grey, the other series other colours.
BLUE_PIXELS = """() => {
  const canvas = document.querySelector("#timeline canvas");
  if (!canvas) return 0;
  const pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  let blue = 0;
  for (let i = 0; i < pixels.length; i += 4) {
    if (pixels[i + 3] > 0 && pixels[i + 2] > 200 && pixels[i + 2] - pixels[i] > 60) blue++;
  }
  return blue;
}"""


@pytest.fixture
async def service(
    database_url: str,
    runtime: Runtime,  # empties the tables afterwards
    ses_stub: SesStub,
    tmp_path: Path,
) -> AsyncIterator[ServeProcess]:
    roomy_account(ses_stub)
    env = worker_env(database_url, ses_stub, API_KEY=API_KEY, EMAIL_RATE="10")
    process = ServeProcess(env, tmp_path / "serve.log")
    try:
        await process.ready()
        yield process
    finally:
        process.ensure_gone()


@pytest.fixture
async def api(service: ServeProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=service.base_url, headers={"x-api-key": API_KEY}
    ) as client:
        yield client


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as browser:
        yield browser


async def open_context(browser: Browser, service: ServeProcess, language: str) -> BrowserContext:
    context = await browser.new_context(
        base_url=service.base_url,
        locale=language,
        extra_http_headers={"Accept-Language": language},
        viewport={"width": 1280, "height": 800},
    )
    context.set_default_timeout(BROWSER_TIMEOUT_MS)
    return context


async def until_opens_counted(api: httpx.AsyncClient, total: int) -> None:
    """The topic's opens are recorded after the pixel's answer, in batches: wait for them."""
    for _ in range(600):
        stats = (await api.get(f"/v1/topics/{TOPIC}")).json()
        if stats["opens"]["total"] >= total:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"opens never counted: {stats['opens']}")


async def sign_in(page: Page, key: str) -> None:
    await page.goto("/dashboard")
    await expect(page).to_have_url(re.compile(r"/dashboard/sign-in\?next=%2Fdashboard$"))
    await page.fill("#key", key)
    await page.click("form.stack button[type=submit]")


# Generous: a serve process, a browser and a campaign on a shared two-CPU machine.
@pytest.mark.timeout(900)
async def test_a_campaign_is_held_sent_and_charted_from_the_dashboard(
    service: ServeProcess, api: httpx.AsyncClient, browser: Browser, backend: str, ses_stub: SesStub
) -> None:
    context = await open_context(browser, service, "en-US")
    page = await context.new_page()

    # A wrong key opens nothing; the right one opens the overview.
    await sign_in(page, "not-the-key-0123456789")
    await expect(page.get_by_role("alert")).to_have_text("That key is not accepted.")
    await page.fill("#key", API_KEY)
    await page.click("form.stack button[type=submit]")
    await expect(page).to_have_url(service.base_url + "/dashboard")
    await expect(page.locator("h1")).to_have_text("Overview")

    # Paused before it has a single email: everything queued to it is held.
    await page.goto(f"/dashboard/topic?id={TOPIC}")
    await page.get_by_role("button", name="Pause").click()
    await expect(page.locator("#paused")).to_contain_text("Paused since")
    emails = [f"person{i}@example.com" for i in range(CAMPAIGN)]
    message = {"topicId": TOPIC, "emails": emails, "subject": "Hi", "content": "<p>Hi</p>"}
    queued = await api.post("/v1/messages", json={"messages": [message]})
    assert queued.status_code == 200, queued.text

    await page.goto("/dashboard/topics")
    row = page.locator(f'.progress[data-topic="{TOPIC}"]')
    await expect(row.locator('[data-count="queued"]')).to_have_text(str(CAMPAIGN))
    await expect(row.locator('[data-count="sent"]')).to_have_text("0")
    await screenshot(page, f"topics-queued-{backend}")

    # Resumed: the bar follows the campaign until every email is sent.
    await page.get_by_role("link", name=TOPIC).click()
    await page.get_by_role("button", name="Resume").click()
    await expect(page.get_by_role("status")).to_contain_text("The topic is resumed")
    sent = page.locator('.progress [data-count="sent"]')
    await expect(sent).to_have_text(str(CAMPAIGN), timeout=CAMPAIGN_TIMEOUT_MS)
    await expect(page.locator(".progress progress")).to_have_attribute("value", str(CAMPAIGN))

    # The chart draws the sends.
    await page.reload()
    await expect(page.locator("#timeline canvas")).to_be_visible()
    assert await page.evaluate(BLUE_PIXELS) > 200
    await expect(page.locator("#domains")).to_contain_text("example.com")

    # One email opened by its reader, another only prefetched by Apple's proxy: the funnel
    # counts the person, and the machine beside.
    for sent_email, agent in zip(
        ses_stub.accepted[:2], (DESKTOP_BROWSER, "Mozilla/5.0"), strict=True
    ):
        pixel = re.search(r"/v1/events/open\?t=[^\"]+", sent_email["html"])
        assert pixel is not None
        assert (await api.get(pixel.group(0), headers={"user-agent": agent})).status_code == 200
    await until_opens_counted(api, 2)
    await page.reload()
    opened = page.locator('[data-step="count.opened"]')
    await expect(opened.locator(".num")).to_have_text("1")
    await expect(opened.locator(".machines")).to_have_text("+ 1 by machines only")
    await screenshot(page, f"topic-sent-{backend}")

    await page.goto("/dashboard")
    await expect(page.locator("#sent-last-hour")).to_have_text(str(CAMPAIGN))
    assert await page.evaluate(BLUE_PIXELS) > 200
    await screenshot(page, f"overview-{backend}")

    # A form posted without the page's CSRF token is refused, with the session's cookie.
    forged = await context.request.post(
        "/dashboard/topic/pause", form={"topic": TOPIC, "csrf": "forged"}
    )
    assert forged.status == 403
    await page.goto(f"/dashboard/topic?id={TOPIC}")
    await expect(page.locator("#paused")).to_have_count(0)

    # The suppression list: searched, and an address taken off it.
    added = await api.post(
        "/v1/suppressions",
        json={
            "emails": ["jane@example.com", "kim@naver.com", "lee@naver.com"],
            "reason": "manual",
            "detail": "asked by phone",
        },
    )
    assert added.status_code == 200, added.text
    await page.goto("/dashboard/suppressions")
    await page.get_by_role("searchbox").fill("naver")
    await page.get_by_role("button", name="Search").click()
    rows = page.locator("tr[data-email]")
    await expect(rows).to_have_count(2)
    await rows.filter(has_text="kim@naver.com").get_by_role("button", name="Remove").click()
    await expect(page.get_by_role("status")).to_have_text("kim@naver.com can be mailed again.")
    await expect(rows).to_have_count(1)
    await expect(rows).to_contain_text("lee@naver.com")
    await screenshot(page, f"suppressions-{backend}")

    await page.goto("/dashboard/webhooks")
    await expect(page.locator("h1")).to_have_text("Webhooks")
    await screenshot(page, f"webhooks-{backend}")

    # Signed out: the pages ask for the key again.
    await page.get_by_role("button", name="Sign out").click()
    await expect(page.locator("h1")).to_have_text("Sign in")
    await page.goto("/dashboard/topics")
    await expect(page).to_have_url(
        service.base_url + "/dashboard/sign-in?next=%2Fdashboard%2Ftopics"
    )
    await context.close()

    # A Korean browser reads it all in Korean.
    context = await open_context(browser, service, "ko-KR")
    page = await context.new_page()
    await sign_in(page, API_KEY)
    await expect(page.locator("html")).to_have_attribute("lang", "ko")
    await expect(page.locator("h1")).to_have_text("개요")
    await expect(page.locator("header nav")).to_contain_text("수신 차단 목록")
    await expect(page.locator("#bounce-rate h2")).to_have_text("반송률")
    await screenshot(page, f"overview-ko-{backend}")
    await page.goto(f"/dashboard/topic?id={TOPIC}")
    await expect(page.get_by_role("button", name="일시 중지")).to_be_visible()
    await screenshot(page, f"topic-ko-{backend}")
    await context.close()
