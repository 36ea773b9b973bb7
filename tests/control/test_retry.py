"""Retrying Failed email: `POST /v1/topics/{topicId}/retry` and `POST /v1/requests/{id}/retry`
queue Failed requests again, attempts counted afresh; repeating changes nothing more.

Against a real database (SQLite and PostgreSQL), on a fake clock.
"""

from __future__ import annotations

import httpx

from ses_sender.composition import Runtime
from ses_sender.models import RequestStatus
from ses_sender.stats import service as stats
from tests.support.clock import FakeClock
from tests.support.rows import add_requests, requests_by_id

C, P, S, F, X = (
    RequestStatus.CREATED,
    RequestStatus.PROCESSING,
    RequestStatus.SENT,
    RequestStatus.FAILED,
    RequestStatus.STOPPED,
)


async def test_retrying_a_topic_queues_its_failed_requests_only(
    client: httpx.AsyncClient, runtime: Runtime, clock: FakeClock
) -> None:
    ids = await add_requests(runtime, [F, F, C, P, S, X])
    [other] = await add_requests(runtime, [F], topic="t2")
    clock.advance(60)

    response = await client.post("/v1/topics/t1/retry")

    assert response.status_code == 200
    assert response.json() == {"topicId": "t1", "requeued": 2}
    rows = await requests_by_id(runtime)
    assert [rows[i].status for i in ids] == [C, C, C, P, S, X]
    for request_id in ids[:2]:
        row = rows[request_id]
        assert (row.attempts, row.error, row.due_at) == (0, None, clock.now())
    assert rows[other].status == F
    async with runtime.sessionmaker() as session:
        assert (await stats.verify(session, None)).differences == []  # the counters followed
    assert (await client.get("/v1/topics/t1")).json()["request"]["failed"] == 0


async def test_retrying_a_topic_twice_requeues_nothing_more(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    await add_requests(runtime, [F, S])
    await client.post("/v1/topics/t1/retry")

    again = await client.post("/v1/topics/t1/retry")

    assert again.status_code == 200
    assert again.json() == {"topicId": "t1", "requeued": 0}


async def test_retrying_an_unknown_topic_is_not_found(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/topics/nothing-here/retry")

    assert response.status_code == 404
    assert response.json()["error"] == "topic 'nothing-here' not found"


async def test_retrying_a_topic_takes_the_last_segment(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    [failed] = await add_requests(runtime, [F], topic="a/retry")

    response = await client.post("/v1/topics/a/retry/retry")

    assert response.json() == {"topicId": "a/retry", "requeued": 1}
    assert (await requests_by_id(runtime))[failed].status == C


async def test_retrying_a_failed_request_queues_it(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    [failed, sibling] = await add_requests(runtime, [F, F])

    response = await client.post(f"/v1/requests/{failed}/retry")

    assert response.status_code == 200
    assert response.json() == {"id": failed, "status": C, "requeued": 1}
    rows = await requests_by_id(runtime)
    assert (rows[failed].status, rows[failed].attempts) == (C, 0)
    assert rows[sibling].status == F


async def test_retrying_a_request_that_is_not_failed_changes_nothing(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    ids = await add_requests(runtime, [C, P, S, X])

    answers = [(await client.post(f"/v1/requests/{i}/retry")).json() for i in ids]

    assert answers == [
        {"id": i, "status": status, "requeued": 0}
        for i, status in zip(ids, [C, P, S, X], strict=True)
    ]
    rows = await requests_by_id(runtime)
    assert [rows[i].status for i in ids] == [C, P, S, X]


async def test_retrying_an_unknown_request_is_not_found(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/requests/999999/retry")

    assert response.status_code == 404
    assert response.json()["error"] == "request 999999 not found"
