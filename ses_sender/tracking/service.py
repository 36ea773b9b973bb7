"""Opens and clicks: where a click leads, and recording what the pixel and the links saw,
each event judged a person's or a machine's."""

from __future__ import annotations

import asyncio
from collections import Counter, OrderedDict
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

import orjson
from jinja2 import TemplateError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ses_sender.db.engine import begin_read_only
from ses_sender.models import EventType, RequestChange, ResultSource
from ses_sender.stats import service as stats
from ses_sender.stats.counters import EVENT_BITS, LinkChange, link_key
from ses_sender.templating import RenderError, recipient_context
from ses_sender.tracking import repository
from ses_sender.tracking.classify import Reason, RequestShape, Signatures, Verdict
from ses_sender.tracking.links import ClickLinks, LinkTemplate, Target, TrackedContent
from ses_sender.tracking.repository import (
    Counts,
    RecentClick,
    RecipientData,
    RequestFacts,
    StoredLinks,
)
from ses_sender.tracking.tokens import ClickToken
from ses_sender.webhooks.service import RequestEvent, enqueue_events

LINK_CACHE_SIZE = 1_024  # contents; a campaign's clicks all land on one
RECIPIENT_CACHE_SIZE = 16_384  # recipients whose personal links were clicked lately
# A link's read that takes longer answers 503: a database that does not answer (a connection
# gone dead without closing) must not hold the redirect. A read takes milliseconds.
READ_TIMEOUT_S = 5.0
# Clicks of one recipient this close together are one burst: a scanner follows every link of
# an email within a second or two, a person reads between two clicks.
BURST_WINDOW = timedelta(seconds=5)


@dataclass(frozen=True, slots=True)
class Destination:
    """Where a click goes, and how many different links its email has."""

    url: str
    location: str
    links_in_email: int


@dataclass(frozen=True, slots=True)
class _ContentLinks:
    """A content's tracked links, as kept between clicks."""

    tracked: TrackedContent
    shared: dict[str, Any]  # the template data its recipients share; empty unless templated
    distinct_links: int


Key = TypeVar("Key")
Value = TypeVar("Value")


class _Kept(Generic[Key, Value]):
    """The `size` values used last, by key."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._values: OrderedDict[Key, Value] = OrderedDict()

    def get(self, key: Key) -> Value | None:
        value = self._values.get(key)
        if value is not None:
            self._values.move_to_end(key)
        return value

    def keep(self, key: Key, value: Value) -> Value:
        self._values[key] = value
        if len(self._values) > self._size:
            self._values.popitem(last=False)
        return value


class ReadTogether(Generic[Key, Value]):
    """Values read from the database many keys at a time, one read at once: a key asked for
    while a read is under way waits for the next, which takes every key asked meanwhile in one
    statement, and callers asking for the same key share its read. A campaign's first clicks
    come all at once: read one by one, each holding a pooled connection, they queued for the
    pool, and on SQLite the slowest waited hundreds of milliseconds. Two reads at once were
    slower still (bench.redirect --personal, p99 15-16 ms against 12-14).

    A read that takes longer than `timeout_s` fails its callers with a `TimeoutError` (the
    redirect answers 503) and is left to end on its own, so that one read stuck on a dead
    connection holds up no later one."""

    def __init__(
        self,
        read: Callable[[set[Key]], Coroutine[Any, Any, dict[Key, Value]]],
        *,
        timeout_s: float = READ_TIMEOUT_S,
    ) -> None:
        self._read = read
        self._timeout_s = timeout_s
        self._futures: dict[Key, asyncio.Future[Value | None]] = {}  # asked, or being read
        self._asked: set[Key] = set()
        self._reading: asyncio.Task[None] | None = None
        self._overdue: set[asyncio.Task[dict[Key, Value]]] = set()  # given up on, still running

    async def get(self, key: Key) -> Value | None:
        future = self._futures.get(key)
        if future is None:
            future = self._futures[key] = asyncio.get_running_loop().create_future()
            self._asked.add(key)
            if self._reading is None:
                self._reading = asyncio.create_task(self._read_asked(), name="link reads")
        # A caller that goes away (its client hung up) leaves the read to the others.
        return await asyncio.shield(future)

    async def _read_asked(self) -> None:
        reading: asyncio.Task[dict[Key, Value]] | None = None
        try:
            while self._asked:
                keys, self._asked = self._asked, set()
                reading = asyncio.create_task(self._read(keys), name="link read")
                try:
                    async with asyncio.timeout(self._timeout_s):
                        found = await asyncio.shield(reading)
                except TimeoutError:
                    self._overdue.add(reading)
                    reading.add_done_callback(_ended_overdue(self._overdue))
                    self._fail(keys, TimeoutError("the database did not answer the read in time"))
                except Exception as error:  # each caller fails as its own read would have
                    self._fail(keys, error)
                else:
                    for key in keys:
                        self._futures.pop(key).set_result(found.get(key))
                reading = None
        except BaseException:  # stopped: no caller may wait for a read that will not come
            if reading is not None:
                reading.cancel()
            for future in self._futures.values():
                future.cancel()
            self._futures.clear()
            self._asked.clear()
            raise
        finally:
            self._reading = None

    def _fail(self, keys: set[Key], error: Exception) -> None:
        for key in keys:
            future = self._futures.pop(key)
            future.set_exception(error)
            future.exception()  # retrieved: no warning if every caller went away


def _ended_overdue(overdue: set[asyncio.Task[Any]]) -> Callable[[asyncio.Task[Any]], None]:
    def ended(task: asyncio.Task[Any]) -> None:
        overdue.discard(task)
        if not task.cancelled():
            task.exception()  # its callers were answered already: nothing more to say

    return ended


class LinkTargets:
    """Where each tracked link of a content leads, read from the stored content on its first
    click and kept: the redirect reads no database while its content is cached. A link rendered
    for its recipient (its URL holds template tags) also needs the recipient's stored data, read
    on their first click and kept too: a scanner that follows every link of an email reads it
    once. Both reads are read-only transactions: on SQLite they do not wait for the write lock
    that the recorder and the worker take."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        links: ClickLinks,
        *,
        size: int = LINK_CACHE_SIZE,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._links = links
        self._contents = _Kept[int, _ContentLinks](size)
        self._recipients = _Kept[int, RecipientData](RECIPIENT_CACHE_SIZE)
        self._content_reads = ReadTogether(self._read_contents)
        self._recipient_reads = ReadTogether(self._read_recipients)

    async def target(self, click: ClickToken) -> Destination | None:
        """The link the token names, if its content still has it there and it still leads
        where it led."""
        content = self._contents.get(click.content_id) or await self._content_reads.get(
            click.content_id
        )
        if content is None:
            return None
        links = content.tracked.links
        if click.position >= len(links):
            return None
        link = links[click.position]
        target = (
            await self._rendered(link, click, content.shared)
            if isinstance(link, LinkTemplate)
            else link
        )
        if target is None or target.fingerprint != click.fingerprint:
            return None
        return Destination(target.url, target.location, content.distinct_links)

    async def _rendered(
        self, link: LinkTemplate, click: ClickToken, shared: dict[str, Any]
    ) -> Target | None:
        """The link rendered again for the click's recipient, from their stored data."""
        recipient = self._recipients.get(click.request_id) or await self._recipient_reads.get(
            click.request_id
        )
        if recipient is None:
            return None
        if recipient.content_id != click.content_id:
            return None
        context = recipient_context(
            shared,
            recipient.data,
            email=recipient.recipient_key,
            request_id=click.request_id,
            unsubscribe_url=None,
        )
        try:
            _url, target = link.render(context, self._links.untracked_prefix)
        except RenderError:
            return None
        return target

    async def _read_recipients(self, request_ids: set[int]) -> dict[int, RecipientData]:
        async with self._sessionmaker() as session:
            await begin_read_only(session)
            found = await repository.recipients_data(session, request_ids)
        for request_id, recipient in found.items():
            self._recipients.keep(request_id, recipient)
        return found

    async def _read_contents(self, content_ids: set[int]) -> dict[int, _ContentLinks]:
        async with self._sessionmaker() as session:
            await begin_read_only(session)
            stored = {
                content_id: await repository.content_links_source(session, content_id)
                for content_id in content_ids
            }
        return {
            content_id: self._contents.keep(content_id, self._tracked(source))
            for content_id, source in stored.items()
        }

    def _tracked(self, stored: StoredLinks | None) -> _ContentLinks:
        if stored is not None:
            try:
                tracked = self._links.track(stored.html, stored.text, templated=stored.templated)
            except TemplateError:
                pass  # no longer compiles: none of its emails was sent with links
            else:
                shared = orjson.loads(stored.data) if stored.data else {}
                return _ContentLinks(tracked, shared, tracked.distinct_links)
        return _ContentLinks(TrackedContent("", None, "", ()), {}, 0)


@dataclass(frozen=True, slots=True)
class Hit:
    """An open or a click as its request showed it, before it is judged and recorded."""

    kind: EventType  # OPEN or CLICK
    request_id: int
    at: datetime
    shape: RequestShape
    url: str | None = None  # a click's target; None for an open and for the honeypot
    links_in_email: int = 0  # a click's: the tracked links of its email

    @property
    def honeypot(self) -> bool:
        return self.kind is EventType.CLICK and self.url is None


@dataclass(frozen=True, slots=True)
class Judge:
    """What a batch of hits is judged with."""

    signatures: Signatures
    machine_click_window: timedelta


async def record_hits(
    session: AsyncSession, hits: Sequence[Hit], *, judge: Judge, now: datetime
) -> int:
    """Record opens and clicks, each judged human or machine: the event log, the request's
    counts and first times, and the webhooks. The one place where an open or a click is
    counted; how many were (hits for requests that do not exist are dropped)."""
    facts = await repository.request_facts(session, {hit.request_id for hit in hits})
    hits = [hit for hit in hits if hit.request_id in facts]
    clicks = [hit for hit in hits if hit.kind is EventType.CLICK]
    recent: dict[int, list[RecentClick]] = {}
    written: list[RecentClick] = []  # as read: the bursts in `recent` lose their older clicks
    if clicks:
        since = min(hit.at for hit in clicks) - BURST_WINDOW
        written = await repository.clicks_since(session, {hit.request_id for hit in clicks}, since)
        for earlier in written:
            recent.setdefault(earlier.request_id, []).append(earlier)
    verdicts: list[Verdict | RecentClick] = [
        judge.signatures.judge_open(hit.shape)
        if hit.kind is EventType.OPEN
        else _judge_click(hit, facts[hit.request_id], recent.setdefault(hit.request_id, []), judge)
        for hit in hits
    ]
    # A burst or a honeypot seen now re-judges the burst's earlier clicks, written or not.
    await repository.mark_machine(
        session,
        {
            click.result_id: click.reason
            for burst in recent.values()
            for click in burst
            if click.result_id is not None and click.rejudged
        },
    )
    final = [
        Verdict(verdict.machine, Reason(verdict.reason))
        if isinstance(verdict, RecentClick)
        else verdict
        for verdict in verdicts
    ]
    await repository.insert_events(
        session,
        [
            {
                "request_id": hit.request_id,
                "status": hit.kind,
                "source": ResultSource.TRACKING,
                "recipient": facts[hit.request_id].recipient_key,
                "occurred_at": hit.at,
                "created_at": now,
                "url": hit.url,
                "machine": verdict.machine,
                "reason": verdict.reason,
            }
            for hit, verdict in zip(hits, final, strict=True)
        ],
    )
    # Earlier clicks, written a person's, found a machine's now.
    unmasked = [
        click
        for burst in recent.values()
        for click in burst
        if click.result_id is not None and click.unmasked
    ]
    unmasked_by_request = Counter(click.request_id for click in unmasked)
    counts = {
        kind: _counts(
            hits, final, kind, unmasked_by_request if kind is EventType.CLICK else Counter()
        )
        for kind in (EventType.OPEN, EventType.CLICK)
    }
    for kind, kind_counts in counts.items():
        await repository.count_events(session, kind, kind_counts)
    await stats.count_changes(
        session,
        _changes(hits, final, unmasked, facts, counts),
        links=await _link_changes(session, hits, final, unmasked, written, facts),
    )
    await enqueue_events(
        session,
        [
            RequestEvent(
                event_type=hit.kind,
                request_id=hit.request_id,
                topic_id=facts[hit.request_id].topic_id,
                email=facts[hit.request_id].recipient_key,
                occurred_at=hit.at,
                details=_details(hit, verdict),
                now=now,
            )
            for hit, verdict in zip(hits, final, strict=True)
        ],
    )
    return len(hits)


def _judge_click(
    hit: Hit, facts: RequestFacts, burst: list[RecentClick], judge: Judge
) -> RecentClick:
    """Judge a click by its request, its time since the send and the recipient's other clicks
    (`burst`, to which it is added: a later click may still re-judge it)."""
    window_start = hit.at - BURST_WINDOW
    burst[:] = [click for click in burst if click.occurred_at >= window_start]
    verdict = judge.signatures.judge_click(hit.shape)
    if hit.honeypot:
        verdict = Verdict(True, Reason.HONEYPOT)
        for click in burst:
            click.rejudge(Reason.HONEYPOT)
    elif (
        verdict is None
        and facts.sent_at is not None
        and (hit.at - facts.sent_at < judge.machine_click_window)
    ):
        verdict = Verdict(True, Reason.TOO_SOON)
    elif verdict is None and any(click.url is None for click in burst):
        verdict = Verdict(True, Reason.HONEYPOT)
    clicked = {click.url for click in burst if click.url is not None} | {hit.url}
    if hit.links_in_email > 1 and len(clicked) >= hit.links_in_email:
        # The burst is a machine's even when this click is one by its own request (a HEAD, a
        # scanner's agent): it keeps its own reason, the rest of the burst is re-judged.
        verdict = verdict or Verdict(True, Reason.BURST)
        for click in burst:
            if not click.machine:
                click.rejudge(Reason.BURST)
    final = verdict or Verdict(False, Reason.DIRECT)
    judged = RecentClick(None, hit.request_id, hit.url, hit.at, final.machine, final.reason)
    burst.append(judged)
    return judged


def _counts(
    hits: Sequence[Hit], verdicts: Sequence[Verdict], kind: EventType, unmasked: Counter[int]
) -> dict[int, Counts]:
    counts: dict[int, Counts] = {}
    for hit, verdict in zip(hits, verdicts, strict=True):
        if hit.kind is kind:
            found = counts.get(hit.request_id)
            if found is None:
                found = Counts(0, unmasked.get(hit.request_id, 0), hit.at)
            counts[hit.request_id] = Counts(
                found.added + 1, found.machine + verdict.machine, min(found.first, hit.at)
            )
    return counts


_COUNT_COLUMNS = {
    EventType.OPEN: ("open_count", "machine_open_count", "opened_at"),
    EventType.CLICK: ("click_count", "machine_click_count", "clicked_at"),
}


def _changes(
    hits: Sequence[Hit],
    verdicts: Sequence[Verdict],
    unmasked: Sequence[RecentClick],
    facts: dict[int, RequestFacts],
    counts: dict[EventType, dict[int, Counts]],
) -> list[RequestChange]:
    """What `count_events` did to each request, for the counters: from its row as it was
    (locked since), the hits and their verdicts, and the earlier clicks found a machine's now
    (`unmasked`), not read again."""
    attached: dict[int, list[tuple[str, datetime]]] = {}
    by_machines: dict[int, list[tuple[str, datetime]]] = {}
    for hit, verdict in zip(hits, verdicts, strict=True):
        attached.setdefault(hit.request_id, []).append((hit.kind.value, hit.at))
        if verdict.machine:
            by_machines.setdefault(hit.request_id, []).append((hit.kind.value, hit.at))
    for click in unmasked:
        by_machines.setdefault(click.request_id, []).append(
            (EventType.CLICK.value, click.occurred_at)
        )
    changes = []
    for request_id, events in attached.items():
        request = facts[request_id]
        before = request.counted
        after = dict(before)
        for kind, (count, machine, earliest) in _COUNT_COLUMNS.items():
            found = counts[kind].get(request_id)
            if found is None:
                continue
            after[count] += found.added
            after[machine] += found.machine
            if after[earliest] is None or after[earliest] > found.first:
                after[earliest] = found.first
            after["event_types"] |= EVENT_BITS[kind]
        changes.append(
            RequestChange(
                request.topic_id,
                request.recipient_key,
                before,
                after,
                tuple(events),
                tuple(by_machines.get(request_id, ())),
            )
        )
    return changes


async def _link_changes(
    session: AsyncSession,
    hits: Sequence[Hit],
    verdicts: Sequence[Verdict],
    unmasked: Sequence[RecentClick],
    written: Sequence[RecentClick],
    facts: dict[int, RequestFacts],
) -> list[LinkChange]:
    """What this batch did to each request's clicks of each link (by its key, `link_key`), for
    the links' counters: its clicks and a machine's as they were before it, and after, with
    what the batch added and re-judged.

    A request whose every earlier click the batch read already (`written`, since the burst
    window began: its first clicks, a scanner's burst) is counted from them; for the others,
    their clicks are read after the batch was written (`link_clicks`), and the batch's share
    taken off."""
    added: dict[tuple[int, str], list[int]] = {}  # (request, link) -> [clicks, a machine's]
    for hit, verdict in zip(hits, verdicts, strict=True):
        if hit.kind is EventType.CLICK and hit.url is not None:
            found = added.setdefault((hit.request_id, link_key(hit.url)), [0, 0])
            found[0] += 1
            found[1] += verdict.machine
    for click in unmasked:  # as recorded above
        if click.url is not None:
            added.setdefault((click.request_id, link_key(click.url)), [0, 0])[1] += 1
    if not added:
        return []
    read = Counter(click.request_id for click in written)
    # Every click of a request counts in its `click_count` (the honeypot's too): where as many
    # were read, the batch read them all.
    unread = {
        request_id
        for request_id, _link in added
        if facts[request_id].counted["click_count"] != read[request_id]
    }
    before = _clicks_before(written, unread)
    after: dict[tuple[int, str], list[int]] = {}
    if unread:
        for request_id, url, clicks, machine in await repository.link_clicks(session, unread):
            found = after.setdefault((request_id, link_key(url)), [0, 0])
            found[0] += clicks
            found[1] += machine
    changes = []
    for (request_id, link), (clicks, machine) in added.items():
        if request_id in unread:
            now_clicks, now_machine = after[request_id, link]
            was_clicks, was_machine = now_clicks - clicks, now_machine - machine
        else:
            was_clicks, was_machine = before.get((request_id, link), (0, 0))
            now_clicks, now_machine = was_clicks + clicks, was_machine + machine
        changes.append(
            LinkChange(
                facts[request_id].topic_id,
                link,
                {"click_count": was_clicks, "machine_click_count": was_machine},
                {"click_count": now_clicks, "machine_click_count": now_machine},
            )
        )
    return changes


def _clicks_before(
    written: Sequence[RecentClick], unread: set[int]
) -> dict[tuple[int, str], tuple[int, int]]:
    """Each request's clicks of each link and a machine's as stored before the batch, from the
    clicks read (those of `unread` requests left out): a click re-judged now was a machine's
    unless it was unmasked."""
    before: dict[tuple[int, str], tuple[int, int]] = {}
    for click in written:
        if click.url is not None and click.request_id not in unread:
            key = (click.request_id, link_key(click.url))
            clicks, machine = before.get(key, (0, 0))
            before[key] = (clicks + 1, machine + (click.machine and not click.unmasked))
    return before


def _details(hit: Hit, verdict: Verdict) -> dict[str, object]:
    details: dict[str, object] = {"machine": verdict.machine, "reason": str(verdict.reason)}
    if hit.kind is EventType.CLICK:
        details["url"] = hit.url
    return details
