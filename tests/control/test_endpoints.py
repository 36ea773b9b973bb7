"""The control endpoints against a real database (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import httpx
import pytest

from ses_sender.composition import Runtime
from ses_sender.control import service as control
from ses_sender.control.repository import CANCELLED
from ses_sender.control.service import TopicHolds
from ses_sender.delivery import repository as delivery_repository
from ses_sender.models import Request, RequestStatus
from tests.support.clock import FakeClock
from tests.support.rows import add_requests, requests_by_id
from tests.support.workers import claimer_for

C, P, S, F, X = (
    RequestStatus.CREATED,
    RequestStatus.PROCESSING,
    RequestStatus.SENT,
    RequestStatus.FAILED,
    RequestStatus.STOPPED,
)


async def claim(runtime: Runtime) -> list[int]:
    """What a worker's claim hands it to send now, the topic pauses screening it."""
    claimer = claimer_for(runtime, [TopicHolds()])
    return [queued.request_id for queued, _content in await claimer.claim(1_000)]


async def claimable(runtime: Runtime, *, at: datetime) -> set[int]:
    """What a worker would claim at `at` (rolled back: nothing is claimed for real)."""
    async with runtime.sessionmaker() as session, session.begin():
        batch = await delivery_repository.claim_due(
            session, now=at, lease_until=at + timedelta(minutes=2), lease_token=1, limit=1_000
        )
        await session.rollback()
    return {queued.request_id for queued in batch}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v1/topics/t1/cancel"),
        ("POST", "/v1/topics/t1/pause"),
        ("POST", "/v1/topics/t1/resume"),
        ("POST", "/v1/topics/t1/reschedule"),
        ("POST", "/v1/topics/t1/retry"),
        ("GET", "/v1/requests/1"),
        ("POST", "/v1/requests/1/cancel"),
        ("POST", "/v1/requests/1/retry"),
    ],
)
async def test_every_control_route_needs_the_api_key(
    anonymous_client: httpx.AsyncClient, runtime: Runtime, method: str, path: str
) -> None:
    [queued] = await add_requests(runtime, [C])

    response = await anonymous_client.request(method, path.replace("/1", f"/{queued}"))

    assert response.status_code == 401
    assert (await requests_by_id(runtime))[queued].status == C


# -- cancel a topic ---------------------------------------------------------------------------


async def test_cancelling_a_topic_stops_what_is_not_sent_and_says_what_was(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    ids = await add_requests(runtime, [C, C, P, S, F, X])
    [other] = await add_requests(runtime, [C], topic="t2")

    response = await client.post("/v1/topics/t1/cancel")

    assert response.status_code == 200
    assert response.json() == {
        "topicId": "t1",
        "cancelled": 2,
        "inFlight": 1,
        "alreadySent": 1,
        "alreadyFailed": 1,
        "alreadyStopped": 1,
    }
    rows = await requests_by_id(runtime)
    assert [rows[i].status for i in ids] == [X, X, X, S, F, X]
    assert [rows[i].error for i in ids[:3]] == [CANCELLED] * 3
    assert rows[ids[4]].error == "MessageRejected"
    assert rows[other].status == C


async def test_cancelling_a_topic_twice_changes_nothing_more(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    await add_requests(runtime, [C, P, S])
    await client.post("/v1/topics/t1/cancel")

    again = await client.post("/v1/topics/t1/cancel")

    assert again.status_code == 200
    assert again.json() == {
        "topicId": "t1",
        "cancelled": 0,
        "inFlight": 0,
        "alreadySent": 1,
        "alreadyFailed": 0,
        "alreadyStopped": 2,
    }


async def test_cancelling_an_unknown_topic_answers_zeros(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/topics/nothing-here/cancel")

    assert response.status_code == 200
    assert response.json()["cancelled"] == 0


async def test_topic_actions_take_the_last_segment_so_any_topic_id_works(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    [plain] = await add_requests(runtime, [C], topic="a")
    [named_like_an_action] = await add_requests(runtime, [C], topic="a/cancel")
    [spaced] = await add_requests(runtime, [C], topic="spring sale/2024?")

    cancelled = await client.post("/v1/topics/a/cancel/cancel")
    paused = await client.post(f"/v1/topics/{quote('spring sale/2024?')}/pause")

    assert cancelled.json()["topicId"] == "a/cancel"
    assert paused.json()["topicId"] == "spring sale/2024?"
    rows = await requests_by_id(runtime)
    assert (rows[plain].status, rows[named_like_an_action].status) == (C, X)
    assert rows[spaced].held
    # GET keeps meaning the stats of the whole path.
    stats = await client.get("/v1/topics/a/cancel")
    assert stats.json()["request"]["stopped"] == 1


@pytest.mark.parametrize("topic", ["x" * 256, "tab%09in", "%20", "%20%20%20"])
async def test_a_topic_id_no_topic_can_have_is_refused(
    client: httpx.AsyncClient, runtime: Runtime, topic: str
) -> None:
    # As POST /v1/messages refuses it: a blank topic id names no topic.
    for action in ("cancel", "pause", "resume", "reschedule"):
        response = await client.post(f"/v1/topics/{topic}/{action}", json={"scheduledAt": ""})
        assert response.status_code == 400
        assert response.json()["error"] == (
            "topicId: 1 to 255 printable characters, not all spaces"
        )
    async with runtime.sessionmaker() as session:
        assert await control.topic_paused_at(session, " ") is None


async def test_a_topic_with_no_request_yet_can_be_paused(client: httpx.AsyncClient) -> None:
    # Deliberately not a 404 (README): a topic paused first holds what is posted to it later.
    response = await client.post("/v1/topics/not-posted-yet/pause")

    assert response.status_code == 200
    assert response.json()["paused"] is True


# -- cancel one request -----------------------------------------------------------------------


async def test_cancelling_a_queued_request_stops_it(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    [queued, neighbour] = await add_requests(runtime, [C, C])

    response = await client.post(f"/v1/requests/{queued}/cancel")

    assert response.status_code == 200
    assert response.json() == {"id": queued, "status": 4, "outcome": "cancelled"}
    rows = await requests_by_id(runtime)
    assert (rows[queued].status, rows[queued].error) == (X, CANCELLED)
    assert rows[neighbour].status == C

    again = await client.post(f"/v1/requests/{queued}/cancel")
    assert again.status_code == 200
    assert again.json() == {"id": queued, "status": 4, "outcome": "alreadyStopped"}


async def test_cancelling_a_request_in_flight_says_so(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    [claimed] = await add_requests(runtime, [P])

    response = await client.post(f"/v1/requests/{claimed}/cancel")

    assert response.json() == {"id": claimed, "status": 4, "outcome": "cancelledInFlight"}
    assert (await requests_by_id(runtime))[claimed].status == X


@pytest.mark.parametrize(("status", "name"), [(S, "sent"), (F, "failed")])
async def test_cancelling_a_finished_request_is_a_conflict_that_names_its_status(
    client: httpx.AsyncClient, runtime: Runtime, status: RequestStatus, name: str
) -> None:
    [finished] = await add_requests(runtime, [status])

    response = await client.post(f"/v1/requests/{finished}/cancel")

    assert response.status_code == 409
    body = response.json()
    assert body["error"] == f"request {finished} is already {name}: it cannot be cancelled"
    assert (body["id"], body["status"]) == (finished, int(status))
    assert body["path"] == f"/v1/requests/{finished}/cancel"
    assert (await requests_by_id(runtime))[finished].status == status


async def test_cancelling_an_unknown_request_is_not_found(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/requests/987654/cancel")

    assert response.status_code == 404
    assert response.json()["error"] == "request 987654 not found"


@pytest.mark.parametrize("request_id", ["abc", "0", "-1", str(2**63), "1.5"])
async def test_a_request_id_that_cannot_exist_is_refused_naming_the_field(
    client: httpx.AsyncClient, request_id: str
) -> None:
    for response in (
        await client.post(f"/v1/requests/{request_id}/cancel"),
        await client.post(f"/v1/requests/{request_id}/retry"),
        await client.get(f"/v1/requests/{request_id}"),
    ):
        assert response.status_code == 400
        assert response.json()["error"].startswith("request_id: ")


# -- look a request up ------------------------------------------------------------------------


async def test_a_request_can_be_looked_up(
    client: httpx.AsyncClient, runtime: Runtime, clock: FakeClock
) -> None:
    [sent] = await add_requests(runtime, [S], topic="spring/sale")

    response = await client.get(f"/v1/requests/{sent}")

    assert response.status_code == 200
    body = response.json()
    when = clock.now().isoformat().replace("+00:00", "Z")
    assert body == {
        "id": sent,
        "topicId": "spring/sale",
        "contentId": body["contentId"],
        "to": "spring.sale-0@example.com",
        "status": 2,
        "statusName": "sent",
        "topicPaused": False,
        "attempts": 1,
        "error": None,
        "scheduledAt": when,
        "messageId": "ses-spring/sale-0",
        "sentAt": when,
        "createdAt": when,
        "updatedAt": when,
        "summary": {
            "deliveredAt": None,
            "bouncedAt": None,
            "bounceType": None,
            "complainedAt": None,
            "complaintType": None,
            "rejectedAt": None,
            "delayedAt": None,
            "firstOpenedAt": None,
            "openCount": 0,
            "firstClickedAt": None,
            "clickCount": 0,
            "unsubscribedAt": None,
        },
    }
    assert (await client.get("/v1/requests/987654")).status_code == 404


# -- pause and resume -------------------------------------------------------------------------


async def test_a_paused_topic_is_not_claimed_until_resumed(
    client: httpx.AsyncClient, runtime: Runtime, clock: FakeClock
) -> None:
    paused_ids = await add_requests(runtime, [C, C, S])
    later = await add_requests(runtime, [C], scheduled_in_s=3600)
    [other] = await add_requests(runtime, [C], topic="t2")

    response = await client.post("/v1/topics/t1/pause")

    assert response.status_code == 200
    assert response.json() == {
        "topicId": "t1",
        "paused": True,
        "pausedAt": clock.now().isoformat().replace("+00:00", "Z"),
        "queued": 3,
    }
    rows = await requests_by_id(runtime)
    assert {rows[i].held for i in [*paused_ids[:2], *later]} == {True}
    assert await claimable(runtime, at=clock.now() + timedelta(hours=2)) == {other}
    details = (await client.get(f"/v1/requests/{paused_ids[0]}")).json()
    assert details["topicPaused"] is True

    clock.advance(60)
    resumed = await client.post("/v1/topics/t1/resume")

    assert resumed.json() == {"topicId": "t1", "paused": False, "pausedAt": None, "queued": 3}
    rows = await requests_by_id(runtime)
    # Due again when they were due: at once for those whose time has passed.
    assert {rows[i].held for i in [*paused_ids[:2], *later]} == {False}
    assert [rows[i].due_at for i in paused_ids[:2]] == [clock.now() - timedelta(seconds=60)] * 2
    assert rows[later[0]].due_at == rows[later[0]].scheduled_at
    assert await claimable(runtime, at=clock.now()) == {*paused_ids[:2], other}


async def test_pausing_and_resuming_twice_is_harmless(
    client: httpx.AsyncClient, runtime: Runtime, clock: FakeClock
) -> None:
    ids = await add_requests(runtime, [C])
    first = await client.post("/v1/topics/t1/pause")
    clock.advance(30)

    second = await client.post("/v1/topics/t1/pause")

    assert second.json() == first.json()  # paused since the first time
    assert (await client.post("/v1/topics/t1/resume")).json()["paused"] is False
    assert (await client.post("/v1/topics/t1/resume")).json()["paused"] is False
    assert (await client.post("/v1/topics/never-paused/resume")).status_code == 200
    assert await claimable(runtime, at=clock.now()) == set(ids)


async def test_requests_added_to_a_paused_topic_wait_too(
    client: httpx.AsyncClient, runtime: Runtime, clock: FakeClock
) -> None:
    await client.post("/v1/topics/t1/pause")
    accepted = await client.post(
        "/v1/messages",
        json={
            "messages": [
                {"topicId": "t1", "emails": ["a@example.com"], "subject": "S", "content": "<p>"}
            ]
        },
    )
    [new] = accepted.json()["messages"][0]["requestIds"]

    # The claim holds it at once, out of the claim's range: it is never sent meanwhile.
    assert await claim(runtime) == []
    assert (await requests_by_id(runtime))[new].held
    assert await claimable(runtime, at=clock.now()) == set()

    await client.post("/v1/topics/t1/resume")
    assert await claimable(runtime, at=clock.now()) == {new}


async def test_the_claim_holds_only_due_rows_of_paused_topics(
    client: httpx.AsyncClient, runtime: Runtime, clock: FakeClock
) -> None:
    await client.post("/v1/topics/t1/pause")
    [due, not_yet] = [
        *await add_requests(runtime, [C]),
        *await add_requests(runtime, [C], scheduled_in_s=600),
    ]
    [elsewhere] = await add_requests(runtime, [C], topic="t2")

    assert await claim(runtime) == [elsewhere]

    rows = await requests_by_id(runtime)
    assert (rows[due].status, rows[due].held, rows[due].attempts) == (C, True, 0)
    assert (rows[not_yet].held, rows[not_yet].due_at) == (
        False,
        clock.now() + timedelta(seconds=600),
    )


# -- reschedule -------------------------------------------------------------------------------


async def test_rescheduling_moves_the_queued_requests_only(
    client: httpx.AsyncClient, runtime: Runtime, clock: FakeClock
) -> None:
    queued = await add_requests(runtime, [C, C, S, P])
    [other] = await add_requests(runtime, [C], topic="t2")

    response = await client.post(
        "/v1/topics/t1/reschedule", json={"scheduledAt": "2026-01-06T09:00:00+09:00"}
    )

    assert response.status_code == 200
    assert response.json() == {
        "topicId": "t1",
        "scheduledAt": "2026-01-06T00:00:00Z",
        "rescheduled": 2,
        "paused": False,
    }
    rows = await requests_by_id(runtime)
    at = datetime(2026, 1, 6, tzinfo=UTC)
    assert {(rows[i].scheduled_at, rows[i].due_at) for i in queued[:2]} == {(at, at)}
    assert rows[queued[2]].scheduled_at == clock.now()
    assert rows[other].due_at == clock.now()
    assert await claimable(runtime, at=clock.now()) == {other}

    back = await client.post("/v1/topics/t1/reschedule", json={"scheduledAt": "2020-01-01T00:00Z"})
    assert back.status_code == 400  # no seconds: not RFC 3339
    now = await client.post(
        "/v1/topics/t1/reschedule", json={"scheduledAt": "2020-01-01T00:00:00Z"}
    )
    assert now.json()["scheduledAt"] == clock.now().isoformat().replace("+00:00", "Z")
    assert await claimable(runtime, at=clock.now()) == {*queued[:2], other}


async def test_rescheduling_keeps_a_later_retry_and_a_pause(
    client: httpx.AsyncClient, runtime: Runtime, clock: FakeClock
) -> None:
    [fresh, retried] = await add_requests(runtime, [C, C])
    backoff = clock.now() + timedelta(minutes=10)
    async with runtime.sessionmaker() as session, session.begin():
        row = await session.get(Request, retried)
        assert row is not None
        row.attempts, row.due_at = 2, backoff

    await client.post("/v1/topics/t1/reschedule", json={"scheduledAt": "2026-01-05T10:05:00Z"})

    rows = await requests_by_id(runtime)
    five_minutes = clock.now() + timedelta(minutes=5)
    assert (rows[fresh].due_at, rows[retried].due_at) == (five_minutes, backoff)

    await client.post("/v1/topics/t1/pause")
    rescheduled = await client.post(
        "/v1/topics/t1/reschedule", json={"scheduledAt": "2026-01-05T11:00:00Z"}
    )
    assert rescheduled.json()["paused"] is True
    rows = await requests_by_id(runtime)
    assert {rows[fresh].held, rows[retried].held} == {True}

    await client.post("/v1/topics/t1/resume")
    rows = await requests_by_id(runtime)
    assert {rows[fresh].due_at, rows[retried].due_at} == {clock.now() + timedelta(hours=1)}


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"", "invalid request body: it is empty"),
        (b"{}", "scheduledAt: Field required"),
        (b'{"scheduledAt": null}', "scheduledAt: Input should be a valid string"),
        (b'{"scheduledAt": 1735000000}', "scheduledAt: Input should be a valid string"),
        (b'{"scheduledAt": "tomorrow"}', "scheduledAt: invalid scheduledAt format"),
        (b'{"scheduledAt": "2026-02-30T10:00:00Z"}', "scheduledAt: invalid scheduledAt format"),
        (b"[1]", "invalid request body: expected a JSON object"),
        (b"{not json", "invalid request body"),
    ],
)
async def test_a_bad_reschedule_is_refused_naming_the_field(
    client: httpx.AsyncClient, runtime: Runtime, body: bytes, error: str
) -> None:
    [queued] = await add_requests(runtime, [C])
    before = (await requests_by_id(runtime))[queued].due_at

    response = await client.post(
        "/v1/topics/t1/reschedule", content=body, headers={"content-type": "application/json"}
    )

    assert response.status_code == 400
    assert response.json()["error"].startswith(error), response.json()
    assert (await requests_by_id(runtime))[queued].due_at == before


async def test_an_oversized_reschedule_body_is_refused(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/topics/t1/reschedule", content=b'{"scheduledAt": "' + b" " * 8192 + b'"}'
    )

    assert response.status_code == 413


async def test_the_control_routes_are_in_the_openapi_document(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    paths = document["paths"]

    for path in (
        "/v1/topics/{topic_id}/cancel",
        "/v1/topics/{topic_id}/pause",
        "/v1/topics/{topic_id}/resume",
        "/v1/topics/{topic_id}/reschedule",
        "/v1/requests/{request_id}",
        "/v1/requests/{request_id}/cancel",
        "/v1/topics/{topic_id}/retry",
        "/v1/requests/{request_id}/retry",
    ):
        assert path in paths, sorted(paths)
    reschedule = paths["/v1/topics/{topic_id}/reschedule"]["post"]
    body_schema = reschedule["requestBody"]["content"]["application/json"]["schema"]
    model = body_schema["$ref"].removeprefix("#/components/schemas/")
    assert document["components"]["schemas"][model]["required"] == ["scheduledAt"]
