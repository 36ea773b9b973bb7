"""Opens and clicks in the topic's stats and its links, people's apart from machines'."""

from __future__ import annotations

import httpx
from sqlalchemy import select, update

from ses_sender.composition import Runtime
from ses_sender.models import Request, RequestStatus
from ses_sender.stats import service as stats
from tests.support.clock import FakeClock
from tests.support.rows import queue_emails
from tests.support.tracking import DESKTOP_BROWSER, click_path, composed, tracked_links

HTML = (
    '<p><a href="https://shop.example/sale">sale</a> <a href="https://shop.example/faq">faq</a>'
    ' <a href="https://shop.example/help">help</a></p>'
)
PERSON = {"user-agent": DESKTOP_BROWSER, "x-forwarded-for": "203.0.113.7"}
SCANNER = {"user-agent": DESKTOP_BROWSER, "x-forwarded-for": "40.107.22.60"}  # Safe Links
APPLE_PREFETCH = {"user-agent": "Mozilla/5.0", "x-forwarded-for": "17.58.101.14"}


async def sent_emails(runtime: Runtime, count: int, topic: str) -> list[list[str]]:
    """`count` sent emails of `topic`; each one's tracked links (honeypot last)."""
    ids = await queue_emails(
        runtime, [f"u{i}@example.com" for i in range(count)], topic=topic, html=HTML
    )
    async with runtime.sessionmaker() as session, session.begin(), stats.counting(session, ids):
        await session.execute(
            update(Request).values(status=RequestStatus.SENT, sent_at=runtime.clock.now())
        )
    return [tracked_links((await composed(runtime, request_id)).html) for request_id in ids]


async def test_links_and_stats_split_people_from_machines(
    client: httpx.AsyncClient, runtime: Runtime, clock: FakeClock
) -> None:
    first, second, third, fourth = await sent_emails(runtime, 4, "spring/sale")
    clock.advance(600)
    for headers, link in [
        (PERSON, first[0]),
        (PERSON, first[0]),  # the same person again
        (PERSON, second[0]),
        (SCANNER, third[0]),
        (PERSON, second[1]),
    ]:
        assert (await client.get(click_path(link), headers=headers)).status_code == 302
        clock.advance(60)
    opens = [(PERSON, 0), (APPLE_PREFETCH, 1), (APPLE_PREFETCH, 2), (PERSON, 2)]
    async with runtime.sessionmaker() as session:
        ids = (await session.scalars(select(Request.id).order_by(Request.id))).all()
    for headers, index in opens:
        token = runtime.tokens.for_open(ids[index])
        await client.get("/v1/events/open", params={"t": token}, headers=headers)
    await runtime.hits.settle()

    links = (await client.get("/v1/topics/spring/sale/links")).json()
    stats = (await client.get("/v1/topics/spring/sale")).json()

    assert links == {
        "topicId": "spring/sale",
        "links": [
            {
                "url": "https://shop.example/sale",
                "total": 4,
                "unique": 3,
                "human": 3,
                "machine": 1,
                "uniqueHuman": 2,
                "uniqueMachine": 1,
            },
            {
                "url": "https://shop.example/faq",
                "total": 1,
                "unique": 1,
                "human": 1,
                "machine": 0,
                "uniqueHuman": 1,
                "uniqueMachine": 0,
            },
        ],
    }
    assert stats["clicks"] == {
        "total": 5,
        "human": 4,
        "machine": 1,
        "unique": 3,
        "uniqueHuman": 2,
        "uniqueMachine": 1,
        "rate": 0.5,  # two of four sent emails clicked by a person
    }
    assert stats["opens"] == {
        "total": 4,
        "human": 2,
        "machine": 2,
        "unique": 3,
        "uniqueHuman": 2,
        "uniqueMachine": 2,
        "rate": 0.5,
    }
    # The seed's field keeps its meaning: emails with the event, whoever made it.
    assert stats["result"]["statuses"] == {"Click": 3, "Open": 3}
    assert fourth  # an email nobody opened or clicked


async def test_an_unknown_topic_has_no_links(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/topics/nothing-here/links")

    assert response.status_code == 200
    assert response.json() == {"topicId": "nothing-here", "links": []}


async def test_links_need_the_api_key(anonymous_client: httpx.AsyncClient) -> None:
    assert (await anonymous_client.get("/v1/topics/t/links")).status_code == 401


async def test_the_timeline_splits_each_minute_between_people_and_machines(
    client: httpx.AsyncClient, runtime: Runtime, clock: FakeClock
) -> None:
    [links] = await sent_emails(runtime, 1, "spring/sale")
    async with runtime.sessionmaker() as session:
        request_id = await session.scalar(select(Request.id))
    assert request_id is not None
    clock.advance(600 + 58)  # 10:10:58
    # A person's click, recorded as one; three seconds later, in the next minute, the rest of
    # the email's links at once: a scanner's burst, and the first click was its too.
    assert (await client.get(click_path(links[0]), headers=PERSON)).status_code == 302
    await runtime.hits.settle()
    clock.advance(3)
    for link in links[1:3]:
        assert (await client.get(click_path(link), headers=PERSON)).status_code == 302
    for headers in (APPLE_PREFETCH, PERSON):
        token = runtime.tokens.for_open(request_id)
        await client.get("/v1/events/open", params={"t": token}, headers=headers)
    await runtime.hits.settle()

    window = {"from": "2026-01-05T10:10:00Z", "to": "2026-01-05T10:11:00Z", "bucket": "minute"}
    topic = (await client.get("/v1/topics/spring/sale/timeline", params=window)).json()
    account = (await client.get("/v1/stats/timeline", params=window)).json()
    async with runtime.sessionmaker() as session, session.begin():
        report = await stats.verify(session, None)

    assert [(b["opened"], b["clicked"]) for b in topic["buckets"]] == [
        (
            {"unique": 0, "total": 0, "human": 0, "machine": 0},
            {"unique": 1, "total": 1, "human": 0, "machine": 1},  # re-judged in its own minute
        ),
        (
            {"unique": 1, "total": 2, "human": 1, "machine": 1},
            {"unique": 0, "total": 2, "human": 0, "machine": 2},
        ),
    ]
    assert account["buckets"] == topic["buckets"]
    assert report.differences == []
