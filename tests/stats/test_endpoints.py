from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from sqlalchemy import update

from ses_sender.composition import Runtime
from ses_sender.models import Request, RequestStatus
from ses_sender.stats import service as stats
from tests.support.clock import FakeClock
from tests.support.cursors import NOT_A_CURSOR, time_cursors
from tests.support.rows import log_event, queue_emails

NO_OUTCOMES = {
    "complained": 0,
    "bounced": 0,
    "rejected": 0,
    "softBounced": 0,
    "delivered": 0,
    "delayed": 0,
    "sent": 0,
}
NO_ENGAGEMENT = {
    "total": 0,
    "human": 0,
    "machine": 0,
    "unique": 0,
    "uniqueHuman": 0,
    "uniqueMachine": 0,
    "rate": 0.0,
}
EMPTY = {
    "request": {
        "total": 0,
        "created": 0,
        "processing": 0,
        "sent": 0,
        "failed": 0,
        "stopped": 0,
        "suppressed": 0,
    },
    "result": {"total": 0, "statuses": {}, "outcomes": NO_OUTCOMES},
    "opens": NO_ENGAGEMENT,
    "clicks": NO_ENGAGEMENT,
}


async def set_status(runtime: Runtime, ids: list[int], status: RequestStatus) -> None:
    async with runtime.sessionmaker() as session, session.begin(), stats.counting(session, ids):
        values: dict[str, object] = {"status": status}
        if status == RequestStatus.SENT:
            values["sent_at"] = runtime.clock.now()
        await session.execute(update(Request).where(Request.id.in_(ids)).values(**values))


async def test_an_unknown_topic_has_the_same_shape(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/topics/nothing-here")

    assert response.status_code == 200
    assert response.json() == EMPTY


async def test_topic_counts_every_status_and_event(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    ids = await queue_emails(runtime, [f"u{i}@example.com" for i in range(7)], topic="spring/sale")
    await queue_emails(runtime, ["other@example.com"], topic="other")
    await set_status(runtime, ids[:3], RequestStatus.SENT)
    await set_status(runtime, ids[3:4], RequestStatus.FAILED)
    await set_status(runtime, ids[4:5], RequestStatus.PROCESSING)
    await set_status(runtime, ids[5:6], RequestStatus.STOPPED)
    for request_id in ids[:3]:
        await log_event(runtime, request_id, "Delivery")
    await log_event(runtime, ids[0], "Open")
    await log_event(runtime, ids[0], "Open")  # opened twice: one request
    await log_event(runtime, ids[1], "Bounce")

    response = await client.get("/v1/topics/spring/sale")

    assert response.json() == {
        "request": {
            "total": 7,
            "created": 1,
            "processing": 1,
            "sent": 3,
            "failed": 1,
            "stopped": 1,
            "suppressed": 0,
        },
        "result": {
            "total": 3,
            "statuses": {"Delivery": 3, "Open": 1, "Bounce": 1},
            # No outcome was recorded on these rows: sent, nothing heard.
            "outcomes": {**NO_OUTCOMES, "sent": 3},
        },
        # Our own opens and clicks only: these came from SES.
        "opens": NO_ENGAGEMENT,
        "clicks": NO_ENGAGEMENT,
    }


async def test_sent_count_uses_the_sent_time(client: httpx.AsyncClient, runtime: Runtime) -> None:
    ids = await queue_emails(runtime, ["a@example.com", "b@example.com", "c@example.com"])
    await set_status(runtime, ids, RequestStatus.SENT)
    async with runtime.sessionmaker() as session, session.begin(), stats.counting(session, ids):
        await session.execute(
            update(Request)
            .where(Request.id == ids[0])
            .values(sent_at=runtime.clock.now() - timedelta(hours=30))
        )

    day = await client.get("/v1/events/counts/sent")
    week = await client.get("/v1/events/counts/sent", params={"hours": "168"})

    assert day.json() == {"count": 2, "hours": 24, "since": "2026-01-04T10:00:00Z"}
    assert week.json()["count"] == 3


@pytest.mark.parametrize(
    "hours", ["0", "-5", "169", "200", "invalid", "1.5", "", "²", "1" * 5_000, "٣", "0024"]
)
async def test_sent_count_hours_must_be_1_to_168(client: httpx.AsyncClient, hours: str) -> None:
    response = await client.get("/v1/events/counts/sent", params={"hours": hours})

    assert response.status_code == 400
    assert response.json()["error"] == "hours must be between 1 and 168"


@pytest.mark.parametrize("hours", ["²", "1" * 5000, "٣"])
async def test_sent_count_refuses_digits_that_are_not_ascii_or_too_many(
    client: httpx.AsyncClient, hours: str
) -> None:
    response = await client.get("/v1/events/counts/sent", params={"hours": hours})

    assert response.status_code == 400
    assert "hours" in response.json()["error"]


async def test_sent_count_adds_counted_minutes_to_the_seconds_before_them(
    client: httpx.AsyncClient, runtime: Runtime, clock: FakeClock
) -> None:
    clock.advance(25)  # 10:00:25: the window starts at 10:00:25 a day earlier
    ids = await queue_emails(runtime, [f"u{i}@example.com" for i in range(4)])
    await set_status(runtime, ids, RequestStatus.SENT)
    day_ago = clock.now() - timedelta(hours=24)
    sent_at = {
        ids[0]: day_ago - timedelta(seconds=1),  # just outside
        ids[1]: day_ago,  # the first second inside
        ids[2]: day_ago + timedelta(seconds=40),  # the next whole minute
        ids[3]: clock.now(),
    }
    async with runtime.sessionmaker() as session, session.begin(), stats.counting(session, ids):
        for request_id, at in sent_at.items():
            await session.execute(
                update(Request).where(Request.id == request_id).values(sent_at=at)
            )

    response = await client.get("/v1/events/counts/sent")

    assert response.json()["count"] == 3


async def post_to(client: httpx.AsyncClient, topic: str, emails: list[str]) -> list[int]:
    response = await client.post(
        "/v1/messages",
        json={"messages": [{"topicId": topic, "emails": emails, "subject": "S", "content": "C"}]},
    )
    assert response.status_code == 200, response.text
    ids: list[int] = response.json()["messages"][0]["requestIds"]
    return ids


@pytest.mark.parametrize("cursor", time_cursors("topic"))
async def test_a_topic_cursor_off_the_calendar_is_a_400(
    client: httpx.AsyncClient, cursor: str
) -> None:
    await post_to(client, "topic", ["a@example.com"])

    response = await client.get("/v1/topics", params={"cursor": cursor})

    assert response.status_code == 400
    assert response.json()["error"] == NOT_A_CURSOR


async def test_topics_are_listed_newest_first_a_page_at_a_time(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    for topic in ("first", "second", "third"):
        await post_to(client, topic, ["a@example.com"])
        clock.advance(60)
    await post_to(client, "first", ["b@example.com"])  # a topic keeps its place

    first_page = await client.get("/v1/topics", params={"limit": "2"})
    cursor = first_page.json()["nextCursor"]
    second_page = await client.get("/v1/topics", params={"limit": "2", "cursor": cursor})

    assert [t["topicId"] for t in first_page.json()["topics"]] == ["third", "second"]
    assert [t["topicId"] for t in second_page.json()["topics"]] == ["first"]
    assert second_page.json()["nextCursor"] is None
    assert second_page.json()["topics"][0]["progress"] == {
        "total": 2,
        "queued": 2,
        "processing": 0,
        "sent": 0,
        "failed": 0,
        "stopped": 0,
    }


async def test_a_listed_topic_has_its_progress_and_rates(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    ids = await post_to(client, "sale", [f"u{i}@example.com" for i in range(5)])
    await set_status(runtime, ids[:4], RequestStatus.SENT)
    await set_status(runtime, ids[4:], RequestStatus.FAILED)
    for request_id in ids[:3]:
        await log_event(runtime, request_id, "Delivery")
    await log_event(runtime, ids[3], "Bounce")
    # Opened and clicked: by a person; only by a machine (Apple's prefetch, a link scanner);
    # through SES's own tracking, which does not say who.
    await log_event(runtime, ids[0], "Open", source="tracking", machine=False)
    await log_event(runtime, ids[1], "Open", source="tracking", machine=True)
    await log_event(runtime, ids[2], "SesOpen")
    for request_id, machine in ((ids[0], True), (ids[1], False), (ids[2], False)):
        await log_event(runtime, request_id, "Click", source="tracking", machine=machine)

    response = await client.get("/v1/topics")

    [topic] = response.json()["topics"]
    assert topic["progress"] == {
        "total": 5,
        "queued": 0,
        "processing": 0,
        "sent": 4,
        "failed": 1,
        "stopped": 0,
    }
    # Shares of the sent. (The delivered and bounced rates follow the summary times, which
    # events logged straight to the table, as here, do not set.)
    # The headline rates are people's.
    assert (topic["rates"]["opened"], topic["rates"]["clicked"]) == (0.25, 0.5)


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"bucket": "week"}, "bucket"),
        ({"from": "yesterday"}, "from"),
        ({"to": "2026-13-01T00:00:00Z"}, "to"),
        ({"from": "2026-01-05T10:00:00Z", "to": "2026-01-05T09:00:00Z"}, "from"),
        (
            {"from": "2026-01-01T00:00:00Z", "to": "2026-01-05T00:00:00Z", "bucket": "minute"},
            "from",
        ),
        ({"from": "9" * 5000}, "from"),
    ],
)
async def test_a_timeline_names_the_parameter_it_refuses(
    client: httpx.AsyncClient, params: dict[str, str], named: str
) -> None:
    for path in ("/v1/topics/sale/timeline", "/v1/stats/timeline"):
        response = await client.get(path, params=params)

        assert response.status_code == 400
        assert response.json()["error"].startswith(f"{named}:")


async def test_the_timelines_count_each_fact_in_the_bucket_it_happened_in(
    client: httpx.AsyncClient, runtime: Runtime, clock: FakeClock
) -> None:
    sale = await post_to(client, "sale", ["a@example.com", "b@example.com", "c@example.com"])
    news = await post_to(client, "news", ["d@example.com"])
    await set_status(runtime, sale[:2] + news, RequestStatus.SENT)  # at 10:00
    clock.advance(3_600)
    await set_status(runtime, sale[2:], RequestStatus.SENT)  # at 11:00
    await log_event(runtime, sale[0], "Open", source="tracking", machine=True)  # at 11:00
    await log_event(runtime, sale[0], "Open", source="tracking", machine=False)
    await log_event(runtime, sale[1], "SesOpen")  # SES does not say who

    window = {"from": "2026-01-05T09:30:00Z", "to": "2026-01-05T11:10:00Z", "bucket": "hour"}
    topic = (await client.get("/v1/topics/sale/timeline", params=window)).json()
    account = (await client.get("/v1/stats/timeline", params=window)).json()

    assert topic["from"] == "2026-01-05T09:00:00Z"
    assert topic["to"] == "2026-01-05T12:00:00Z"
    assert [(b["start"], b["sent"]) for b in topic["buckets"]] == [
        ("2026-01-05T09:00:00Z", 0),
        ("2026-01-05T10:00:00Z", 2),
        ("2026-01-05T11:00:00Z", 1),
    ]
    assert topic["buckets"][2]["opened"] == {"unique": 2, "total": 3, "human": 2, "machine": 1}
    assert [b["sent"] for b in account["buckets"]] == [0, 3, 1]
    assert account["topicId"] is None


async def test_domains_are_listed_largest_first(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    ids = await post_to(
        client,
        "sale",
        ["a@naver.com", "b@gmail.com", "c@Naver.com", "d@example.com", "e@naver.com"],
    )
    await set_status(runtime, ids, RequestStatus.SENT)
    # At naver.com: one email opened and clicked by a person, one only by machines.
    for status in ("Open", "Click"):
        await log_event(runtime, ids[0], status, source="tracking", machine=False)
        await log_event(runtime, ids[2], status, source="tracking", machine=True)

    response = await client.get("/v1/topics/sale/domains", params={"limit": "2"})

    body = response.json()
    assert [
        (d["domain"], d["total"], d["sent"], d["opened"], d["humanOpened"], d["humanClicked"])
        for d in body["domains"]
    ] == [
        ("naver.com", 3, 3, 2, 1, 1),
        ("example.com", 1, 1, 0, 0, 0),
    ]
    assert body["more"] == 1


async def fold_some(runtime: Runtime, deltas: int) -> None:
    async with runtime.sessionmaker() as session, session.begin():
        await stats.fold(session, limit=deltas)


async def test_domains_of_equal_size_go_by_name_folded_or_not(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    # "a-b" before "a.": character by character, whatever the database's collation says.
    for emails in (["a@b.example", "b@b.example"], ["c@a.example", "d@a-b.example"]):
        await post_to(client, "sale", emails)
    await post_to(client, "sale", ["e@a.example", "f@c.example", "g@a-b.example"])
    expected = {
        "topicId": "sale",
        "domains": [
            {**dict.fromkeys(_DOMAIN_FIELDS, 0), "domain": domain, "total": 2, "queued": 2}
            for domain in ("a-b.example", "a.example")
        ],
        "more": 2,
    }

    answers = []
    for deltas in (0, 1, 1_000):  # none folded, some, all
        await fold_some(runtime, deltas)
        answers.append((await client.get("/v1/topics/sale/domains", params={"limit": 2})).json())

    assert answers == [expected] * 3


_DOMAIN_FIELDS = (
    "total",
    "queued",
    "sent",
    "failed",
    "stopped",
    "delivered",
    "bounced",
    "complained",
    "opened",
    "clicked",
    "humanOpened",
    "humanClicked",
    "unsubscribed",
)


async def test_a_minute_timeline_adds_pending_deltas_to_folded_counters(
    client: httpx.AsyncClient, runtime: Runtime, clock: FakeClock
) -> None:
    sale = await post_to(client, "sale", ["a@example.com", "b@example.com", "c@example.com"])
    await set_status(runtime, sale[:1], RequestStatus.SENT)  # at 10:00
    await log_event(runtime, sale[0], "Open", source="tracking", machine=True)
    clock.advance(60)
    await set_status(runtime, sale[1:], RequestStatus.SENT)  # at 10:01
    window = {"from": "2026-01-05T09:59:00Z", "to": "2026-01-05T10:01:00Z", "bucket": "minute"}

    answers = []
    for deltas in (0, 1, 1_000):
        await fold_some(runtime, deltas)
        answer = (await client.get("/v1/topics/sale/timeline", params=window)).json()
        answers.append([(b["start"], b["sent"], b["opened"]) for b in answer["buckets"]])

    expected = [
        ("2026-01-05T09:59:00Z", 0, {"unique": 0, "total": 0, "human": 0, "machine": 0}),
        ("2026-01-05T10:00:00Z", 1, {"unique": 1, "total": 1, "human": 0, "machine": 1}),
        ("2026-01-05T10:01:00Z", 2, {"unique": 0, "total": 0, "human": 0, "machine": 0}),
    ]
    assert answers == [expected] * 3


async def test_topics_first_queued_at_once_are_paged_by_id(
    client: httpx.AsyncClient,
) -> None:
    for topic in ("b", "c", "a"):
        await post_to(client, topic, ["a@example.com"])

    listed: list[str] = []
    cursor = None
    while True:
        params = {"limit": "1"} if cursor is None else {"limit": "1", "cursor": cursor}
        page = (await client.get("/v1/topics", params=params)).json()
        listed += [topic["topicId"] for topic in page["topics"]]
        cursor = page["nextCursor"]
        if cursor is None:
            break

    assert listed == ["c", "b", "a"]
