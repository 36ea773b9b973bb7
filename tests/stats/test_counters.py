"""The counters equal a recount from the rows and events after long random runs of everything
that changes requests: queuing, claims, sends (confirmed or not), failures, requeues (by the
worker, by a retry of failed requests), releases, expired leases, cancels (of a request, of a
topic), opens and clicks (people's and machines', again, bursts found out later, a link longer
than a counter's key), unsubscribes and SES events (late, early, duplicated, out of order), with
folds in between."""

from __future__ import annotations

import contextlib
import io
import random
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import delete, select, update

from ses_sender.composition import Runtime
from ses_sender.control import service as control
from ses_sender.control.service import TopicHolds
from ses_sender.delivery.claimer import Claimer
from ses_sender.delivery.emails import (
    Failed,
    QueuedEmail,
    Requeued,
    SendResult,
    Sent,
    Unconfirmed,
)
from ses_sender.delivery.housekeeping import Housekeeping
from ses_sender.delivery.journal import OutcomeJournal
from ses_sender.delivery.leases import Leases
from ses_sender.delivery.recorder import Recorder, Unrecorded
from ses_sender.errors import Conflict
from ses_sender.models import Request, RequestStatus, Result, ResultSource
from ses_sender.ses_events.hooks import SesEventHooks
from ses_sender.stats import commands, counters, service
from ses_sender.stats.hooks import StatsHooks
from ses_sender.stats.schemas import EngagementCounts, LinkCounts, VerifyReport
from ses_sender.suppression.service import SuppressedAddresses
from ses_sender.unsubscribe import service as unsubscribe
from tests.support.clock import FakeClock
from tests.support.ses_events import SOFT_BOUNCES, ingest, ses_message
from tests.support.tracking import DESKTOP_BROWSER, click_path, composed, tracked_links

LEASE_S = 60.0
# Long enough to reach every status and event type; short enough for the suite's deadline.
STEPS = 250
EVENT_KINDS = (
    "Delivery",
    "Delivery",
    "Bounce",
    "Complaint",
    "Open",
    "Click",
    "DeliveryDelay",
    "Send",
)
# A URL of 1,602 bytes: its counters' key is cut (counters.MAX_LINK_BYTES).
LONG_URL = "https://shop.example/" + "ü" * 790
HTML = (
    '<p><a href="https://shop.example/sale">sale</a> <a href="https://shop.example/faq">faq</a>'
    f' <a href="{LONG_URL}">long</a></p>'
)
PERSON = {"user-agent": DESKTOP_BROWSER, "x-forwarded-for": "203.0.113.7"}
SCANNER = {"user-agent": DESKTOP_BROWSER, "x-forwarded-for": "40.107.22.60"}  # Safe Links


class RandomRun:
    """One seeded run of random changes through the real code paths."""

    def __init__(
        self,
        runtime: Runtime,
        client: httpx.AsyncClient,
        clock: FakeClock,
        seed: int,
        journal_dir: Path,
    ):
        self.runtime = runtime
        self.client = client
        self.clock = clock
        self.random = random.Random(seed)
        self.counter = StatsHooks()
        self.ses_hooks = SesEventHooks(SOFT_BOUNCES)
        self.leases = Leases(runtime.sessionmaker, clock=clock, lease_s=LEASE_S, send_timeout_s=5.0)
        self.claimer = Claimer(
            runtime.sessionmaker,
            gates=[TopicHolds(), SuppressedAddresses()],
            counter=self.counter,
            clock=clock,
            leases=self.leases,
        )
        self.journal = OutcomeJournal(journal_dir)
        self.housekeeping = Housekeeping(
            runtime.sessionmaker,
            evidence=self.ses_hooks,
            counter=self.counter,
            jobs=[self.ses_hooks, self.counter],
            clock=clock,
        )
        self.request_ids: list[int] = []
        self.claimed: list[QueuedEmail] = []
        self.delivered: list[tuple[str, str]] = []  # (SES message, SNS message id) stored
        self.retried = 0  # failed requests queued again
        self.failures = 0  # sends recorded failed
        self.paused = False  # the "news" topic

    async def queue(self) -> None:
        topic = self.random.choice(["spring/sale", "news"])
        count = self.random.randint(1, 6)
        domains = ["gmail.com", "Naver.com", "x.org"]
        emails = [
            f"u{len(self.request_ids) + i}@{self.random.choice(domains)}" for i in range(count)
        ]
        response = await self.client.post(
            "/v1/messages",
            json={
                "messages": [{"topicId": topic, "emails": emails, "subject": "S", "content": HTML}]
            },
        )
        assert response.status_code == 200, response.text
        self.request_ids += response.json()["messages"][0]["requestIds"]

    async def claim(self) -> None:
        self.claimed += [
            queued for queued, _ in await self.claimer.claim(self.random.randint(1, 8))
        ]

    def _take_claimed(self) -> list[QueuedEmail]:
        taken = self.random.sample(self.claimed, self.random.randint(0, len(self.claimed)))
        self.claimed = [queued for queued in self.claimed if queued not in taken]
        return taken

    def recorder(self) -> Recorder:
        return Recorder(
            self.runtime.sessionmaker,
            hooks=[self.ses_hooks],
            counter=self.counter,
            clock=self.clock,
            journal=self.journal,
            leases=self.leases,
            batch_size=50,
            recorded=lambda _count: None,
            every_interval=_nothing,
        )

    async def record(self) -> None:
        recorder = self.recorder()
        now = self.clock.now()
        for queued in self._take_claimed():
            choices: list[SendResult] = [
                Sent(queued.request_id, _message_id(queued.request_id), now, queued.lease_token),
                Sent(queued.request_id, _message_id(queued.request_id), now, queued.lease_token),
                Failed(queued.request_id, "MessageRejected", queued.lease_token),
                Unconfirmed(queued.request_id, now, queued.lease_token),
                Requeued(
                    queued.request_id,
                    now + timedelta(seconds=5),
                    "throttled",
                    False,
                    queued.lease_token,
                ),
            ]
            result = self.random.choice(choices)
            self.failures += isinstance(result, Failed)
            recorder.add(result)
        assert await recorder.flush_before_exit() == Unrecorded(journaled=0, lost=0)

    async def release(self) -> None:
        await self.claimer.release(self._take_claimed())

    async def expire_leases(self) -> None:
        """The worker holding the claimed rows died: their leases run out and are recovered."""
        self.clock.advance(LEASE_S + 1)
        self.claimed = []
        await self.housekeeping.recover_expired_leases()

    async def ses_event(self) -> None:
        if self.delivered and self.random.random() < 0.2:
            message, sns_id = self.random.choice(self.delivered)  # SNS delivers it again
            await ingest(self.runtime, message, message_id=sns_id)
            return
        request_id = self.random.choice(self.request_ids)
        # Anywhere within an hour either side: events arrive late, early and out of order.
        at = self.clock.now() + timedelta(seconds=self.random.randint(-3_600, 3_600))
        message = ses_message(
            self.random.choice(EVENT_KINDS),
            at=at,
            ses_message_id=_message_id(request_id),
            request_id=request_id if self.random.random() < 0.5 else None,
            recipient=await self._recipient(request_id),
        )
        sns_id = f"sns-{len(self.delivered)}"
        await ingest(self.runtime, message, message_id=sns_id)
        self.delivered.append((message, sns_id))

    async def _recipient(self, request_id: int) -> str:
        async with self.runtime.sessionmaker() as session:
            request = await session.get(Request, request_id)
            assert request is not None
            return request.recipient_key

    async def open_pixel(self) -> None:
        token = self.runtime.tokens.for_open(self.random.choice(self.request_ids))
        response = await self.client.get("/v1/events/open", params={"t": token})
        assert response.status_code == 200
        await self.runtime.hits.settle()  # written after the answer: let this step end there

    async def click(self) -> None:
        """Links followed: by a person (once or twice), by a scanner, or every link at once (a
        burst: the earlier clicks, recorded already or not, are found a machine's too)."""
        request_id = self.random.choice(self.request_ids)
        links = tracked_links((await composed(self.runtime, request_id)).html)
        how = self.random.choice(["person", "twice", "scanner", "burst", "honeypot"])
        if how == "burst":
            chosen = links[:-1]
        elif how == "honeypot":
            chosen = [links[-1]]
        else:
            chosen = [self.random.choice(links[:-1])] * (2 if how == "twice" else 1)
        for link in chosen:
            headers = SCANNER if how == "scanner" else PERSON
            response = await self.client.get(click_path(link), headers=headers)
            assert response.status_code in (204, 302), response.text
            self.clock.advance(self.random.randint(0, 2))
            if self.random.random() < 0.5:
                await self.runtime.hits.settle()  # recorded before the next click
        await self.runtime.hits.settle()

    async def retry(self) -> None:
        """An operator queues the failed requests again."""
        async with self.runtime.sessionmaker() as session, session.begin():
            if self.random.random() < 0.5:
                requeued = await control.requeue_failed(
                    session, topic_id="spring/sale", request_id=None, now=self.clock.now()
                )
            else:
                requeued = await control.requeue_failed(
                    session,
                    topic_id=None,
                    request_id=self.random.choice(self.request_ids),
                    now=self.clock.now(),
                )
        self.retried += sum(requeued.values())

    async def unsubscribe(self) -> None:
        async with self.runtime.sessionmaker() as session, session.begin():
            await unsubscribe.unsubscribe(
                session, self.random.choice(self.request_ids), now=self.clock.now()
            )

    async def cancel(self) -> None:
        async with self.runtime.sessionmaker() as session, session.begin():
            if self.random.random() < 0.2:
                await control.cancel_topic(session, "news", now=self.clock.now())
                return
            with contextlib.suppress(Conflict):  # already sent or failed
                await control.cancel_request(
                    session, self.random.choice(self.request_ids), now=self.clock.now()
                )

    async def toggle_pause(self) -> None:
        """Pause the "news" topic (its queued rows held, what is claimed of it then held by the
        claim's gate), or resume it."""
        async with self.runtime.sessionmaker() as session, session.begin():
            if self.paused:
                await control.resume_topic(session, "news", now=self.clock.now())
            else:
                await control.pause_topic(session, "news", now=self.clock.now())
        self.paused = not self.paused

    async def sweep(self) -> None:
        """The housekeeping jobs: adopt events that waited for their send, fold deltas."""
        await self.housekeeping.sweep()

    async def step(self) -> None:
        if not self.request_ids:
            await self.queue()
            return
        action = self.random.choices(
            [
                self.queue,
                self.claim,
                self.record,
                self.release,
                self.expire_leases,
                self.ses_event,
                self.open_pixel,
                self.click,
                self.unsubscribe,
                self.cancel,
                self.retry,
                self.toggle_pause,
                self.sweep,
            ],
            weights=[6, 10, 10, 2, 1, 20, 5, 5, 2, 2, 1, 1, 4],
        )[0]
        await action()
        self.clock.advance(self.random.randint(0, 90))


async def _nothing() -> None:
    return None


def _message_id(request_id: int) -> str:
    return f"0100018c-run-{request_id:08d}-000000"


async def engagement_from_events(runtime: Runtime, topic: str, kind: str) -> EngagementCounts:
    """Our own opens or clicks of a topic, counted from the event log (as the stats did before
    they were counters)."""
    async with runtime.sessionmaker() as session:
        sent = (await service.topic_stats(session, topic)).request.sent
        rows = (
            await session.execute(
                select(Result.request_id, Result.machine)
                .join(Request, Request.id == Result.request_id)
                .where(
                    Request.topic_id == topic,
                    Result.status == kind,
                    Result.source == ResultSource.TRACKING,
                )
            )
        ).all()
    human = {request_id for request_id, machine in rows if not machine}
    machine = {request_id for request_id, machine in rows if machine}
    return EngagementCounts(
        total=len(rows),
        human=sum(1 for _id, flagged in rows if not flagged),
        machine=sum(1 for _id, flagged in rows if flagged),
        unique=len(human | machine),
        unique_human=len(human),
        unique_machine=len(machine),
        rate=round(len(human) / sent, 4) if sent else 0.0,
    )


async def links_from_events(runtime: Runtime, topic: str) -> list[LinkCounts]:
    """The topic's links, counted from the event log (as /links did before it had counters)."""
    async with runtime.sessionmaker() as session:
        rows = (
            await session.execute(
                select(Result.url, Result.request_id, Result.machine)
                .join(Request, Request.id == Result.request_id)
                .where(
                    Request.topic_id == topic,
                    Result.status == "Click",
                    Result.source == ResultSource.TRACKING,
                    Result.url.is_not(None),
                )
            )
        ).all()
    by_link: dict[str, list[tuple[int, bool]]] = {}
    for url, request_id, machine in rows:
        assert url is not None
        assert request_id is not None
        by_link.setdefault(counters.link_key(url), []).append((request_id, bool(machine)))
    links = [
        LinkCounts(
            url=url,
            total=len(clicks),
            unique=len({request_id for request_id, _machine in clicks}),
            human=sum(not machine for _id, machine in clicks),
            machine=sum(machine for _id, machine in clicks),
            unique_human=len({request_id for request_id, machine in clicks if not machine}),
            unique_machine=len({request_id for request_id, machine in clicks if machine}),
        )
        for url, clicks in by_link.items()
    ]
    return sorted(links, key=lambda link: (-link.total, link.url))


async def verify(runtime: Runtime, topic_id: str | None = None) -> VerifyReport:
    async with runtime.sessionmaker() as session, session.begin():
        return await service.verify(session, topic_id)


@pytest.mark.parametrize("seed", [1, 2])
async def test_counters_equal_a_recount_after_a_long_random_run(
    runtime: Runtime, client: httpx.AsyncClient, clock: FakeClock, seed: int, tmp_path: Path
) -> None:
    run = RandomRun(runtime, client, clock, seed, tmp_path)
    for _ in range(STEPS):
        await run.step()

    unfolded = await verify(runtime)
    await run.sweep()
    folded = await verify(runtime)
    news = await verify(runtime, "news")
    async with runtime.sessionmaker() as session:
        sale = await service.topic_stats(session, "spring/sale")
        links = await service.topic_links(session, "spring/sale")

    assert unfolded.requests == folded.requests == len(run.request_ids)
    assert (unfolded.differences, folded.differences, news.differences) == ([], [], [])
    # No empty check: the run reached what the counters count.
    assert min(sale.request.created, sale.request.sent, run.failures) > 0
    assert {"Delivery", "Bounce", "Open", "Complaint", "Click", "SesClick"} <= set(
        sale.result.statuses
    )
    assert min(sale.clicks.human, sale.clicks.machine, sale.opens.total) > 0
    assert sale.clicks == await engagement_from_events(runtime, "spring/sale", "Click")
    assert sale.opens == await engagement_from_events(runtime, "spring/sale", "Open")
    assert links.links == await links_from_events(runtime, "spring/sale")
    assert {link.url for link in links.links} == {
        "https://shop.example/sale",
        "https://shop.example/faq",
        counters.link_key(LONG_URL),
    }
    assert (
        min(sum(link.human for link in links.links), sum(each.machine for each in links.links)) > 0
    )


async def test_verify_reports_a_change_made_behind_the_counters_back(
    runtime: Runtime, client: httpx.AsyncClient, clock: FakeClock, tmp_path: Path
) -> None:
    run = RandomRun(runtime, client, clock, 3, tmp_path)
    for _ in range(3):
        await run.queue()
    async with runtime.sessionmaker() as session, session.begin():
        await session.execute(
            update(Request)
            .where(Request.id == run.request_ids[0])
            .values(status=RequestStatus.FAILED)
        )
    out = io.StringIO()

    code = await commands.verify(runtime.settings.sqlalchemy_url, None, out=out)

    assert code == 1
    assert "failed: 0 != 1" in out.getvalue()


async def test_a_send_in_the_last_half_millisecond_of_a_minute_counts_in_that_minute(
    runtime: Runtime, client: httpx.AsyncClient, clock: FakeClock, tmp_path: Path
) -> None:
    # SQLite's date functions keep milliseconds: 59.9998 s would round up to the next minute.
    run = RandomRun(runtime, client, clock, 5, tmp_path)
    await run.queue()
    await run.claim()
    queued = run.claimed[0]
    at = clock.now().replace(second=59, microsecond=999_800)
    recorder = run.recorder()
    recorder.add(Sent(queued.request_id, _message_id(queued.request_id), at, queued.lease_token))
    assert await recorder.flush_before_exit() == Unrecorded(journaled=0, lost=0)
    out = io.StringIO()

    code = await commands.verify(runtime.settings.sqlalchemy_url, None, out=out)

    assert (code, out.getvalue().count(" != ")) == (0, 0), out.getvalue()


async def test_verify_reports_a_click_removed_behind_the_link_counters_back(
    runtime: Runtime, client: httpx.AsyncClient, clock: FakeClock, tmp_path: Path
) -> None:
    run = RandomRun(runtime, client, clock, 4, tmp_path)
    await run.queue()
    links = tracked_links((await composed(runtime, run.request_ids[0])).html)
    response = await client.get(click_path(links[0]), headers=PERSON)
    assert response.status_code == 302
    await runtime.hits.settle()
    async with runtime.sessionmaker() as session, session.begin():
        await session.execute(delete(Result).where(Result.url == "https://shop.example/sale"))
    out = io.StringIO()

    code = await commands.verify(runtime.settings.sqlalchemy_url, None, out=out)

    assert code == 1
    assert "link 'https://shop.example/sale': tracked:clicks: 1 != 0" in out.getvalue()


# A recipient's clicks, each recorded in a batch of its own: (the link's position, the seconds
# since the last click). A batch reads the clicks of its burst window, and counts a link's
# clicks from them when they are all of the request's; else it reads the link's clicks.
CLICK_SEQUENCES = {
    "first-click": [(0, 0)],
    "again-within-the-burst-window": [(0, 0), (0, 2)],
    "again-after-the-burst-window": [(0, 0), (0, 60)],
    "a-burst-found-out-from-clicks-read": [(0, 0), (1, 1), (2, 1)],
    "a-burst-found-out-after-an-older-click": [(0, 0), (0, 60), (1, 1), (2, 1)],
    "the-honeypot-after-a-click": [(0, 0), (3, 1), (1, 1)],
}


@pytest.mark.parametrize("clicks", CLICK_SEQUENCES.values(), ids=CLICK_SEQUENCES.keys())
async def test_link_counters_equal_a_recount_whether_a_batch_read_every_earlier_click_or_not(
    runtime: Runtime, client: httpx.AsyncClient, clock: FakeClock, clicks: list[tuple[int, int]]
) -> None:
    response = await client.post(
        "/v1/messages",
        json={
            "messages": [
                {"topicId": "spring/sale", "emails": ["u@x.org"], "subject": "S", "content": HTML}
            ]
        },
    )
    (request_id,) = response.json()["messages"][0]["requestIds"]
    links = tracked_links((await composed(runtime, request_id)).html)
    for position, seconds in clicks:
        clock.advance(seconds)
        response = await client.get(click_path(links[position]), headers=PERSON)
        assert response.status_code in (204, 302), response.text
        await runtime.hits.settle()

    report = await verify(runtime)
    async with runtime.sessionmaker() as session:
        found = await service.topic_links(session, "spring/sale")

    assert report.differences == []
    assert found.links == await links_from_events(runtime, "spring/sale")
