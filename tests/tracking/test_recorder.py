"""The hit recorder on a real database: hits gathered into one transaction, a full batch
written without waiting, `settle` never waiting for the window, and the redirect answered while
its click waits on the database."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from sqlalchemy import event, func, select

from ses_sender.composition import Runtime
from ses_sender.models import EventType, Request, Result
from ses_sender.tracking.classify import RequestShape
from ses_sender.tracking.recorder import HitRecorder
from ses_sender.tracking.service import Hit
from tests.support.rows import queue_emails, request_row, stored_results
from tests.support.tracking import DESKTOP_BROWSER, JUDGE, click_path, composed, tracked_links

PERSON = RequestShape("GET", DESKTOP_BROWSER, "203.0.113.7")
NEVER_S = 3_600.0  # a window no test waits out: the pytest timeout ends it first


def recorder(runtime: Runtime, *, max_batch: int = 64) -> HitRecorder:
    return HitRecorder(
        runtime.sessionmaker,
        judge=JUDGE,
        clock=runtime.clock,
        max_batch=max_batch,
        gather_window_s=NEVER_S,
    )


def open_of(runtime: Runtime, request_id: int) -> Hit:
    return Hit(EventType.OPEN, request_id, runtime.clock.now(), PERSON)


class Commits:
    """The transactions committed on an engine while watched."""

    def __init__(self) -> None:
        self.count = 0
        self.one = asyncio.Event()  # set at the first

    def committed(self, _connection: Any) -> None:
        self.count += 1
        self.one.set()


@contextmanager
def commits_counted(runtime: Runtime) -> Iterator[Commits]:
    commits = Commits()
    event.listen(runtime.engine.sync_engine, "commit", commits.committed)
    try:
        yield commits
    finally:
        event.remove(runtime.engine.sync_engine, "commit", commits.committed)


async def test_hits_gather_into_one_transaction_and_settle_writes_them_at_once(
    runtime: Runtime,
) -> None:
    request_ids = await queue_emails(runtime, ["a@example.com", "b@example.com"])
    hits = recorder(runtime)

    with commits_counted(runtime) as commits:
        hits.add(open_of(runtime, request_ids[0]))
        await asyncio.sleep(0)  # the writer starts gathering
        for request_id in [request_ids[1], request_ids[0]]:
            hits.add(open_of(runtime, request_id))
        await hits.settle()

    assert commits.count == 1
    assert [(row.request_id, row.status) for row in await stored_results(runtime)] == [
        (request_ids[0], "Open"),
        (request_ids[1], "Open"),
        (request_ids[0], "Open"),
    ]
    assert (await request_row(runtime, request_ids[0])).open_count == 2


async def test_a_full_batch_is_written_without_waiting_for_the_window(runtime: Runtime) -> None:
    request_ids = await queue_emails(runtime, ["a@example.com", "b@example.com", "c@example.com"])
    hits = recorder(runtime, max_batch=2)

    with commits_counted(runtime) as commits:
        hits.add(open_of(runtime, request_ids[0]))
        await asyncio.sleep(0)  # the writer starts gathering
        for request_id in request_ids[1:]:
            hits.add(open_of(runtime, request_id))
        await commits.one.wait()  # long before the window: the pytest timeout ends a wait
        written_before_settle = [row.request_id for row in await stored_results(runtime)]
        await hits.settle()

    assert written_before_settle == request_ids[:2]
    assert [row.request_id for row in await stored_results(runtime)] == request_ids
    assert commits.count == 2


async def test_a_redirect_is_answered_while_its_click_waits_on_the_database(
    anonymous_client: httpx.AsyncClient, runtime: Runtime
) -> None:
    html = '<html><body><p><a href="https://shop.example/sale">sale</a></p></body></html>'
    [request_id] = await queue_emails(runtime, ["jane@example.com"], html=html)
    [sale, _honeypot] = tracked_links((await composed(runtime, request_id)).html)
    await anonymous_client.get(click_path(sale))  # the content's links read and kept
    await runtime.hits.settle()

    async with runtime.sessionmaker() as blocker, blocker.begin():
        # The request locked (on SQLite, the whole database): recording waits for this.
        await blocker.execute(select(Request.id).where(Request.id == request_id).with_for_update())
        first = await anonymous_client.get(click_path(sale))
        settling = asyncio.create_task(runtime.hits.settle())
        second = await anonymous_client.get(click_path(sale))
        recorded_meanwhile = await blocker.scalar(select(func.count()).select_from(Result))
        settled_meanwhile = settling.done()
    await settling

    assert [first.status_code, second.status_code] == [302, 302]
    assert (recorded_meanwhile, settled_meanwhile) == (1, False)
    assert (await request_row(runtime, request_id)).click_count == 3
