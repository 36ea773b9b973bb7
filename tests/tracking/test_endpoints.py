from __future__ import annotations

import base64

import httpx
from sqlalchemy import select

from ses_sender.clock import SystemClock
from ses_sender.composition import Runtime, TransportChoice, open_runtime
from ses_sender.config import Settings, TransportKind
from ses_sender.models import Request, Result
from ses_sender.tracking.endpoints import PIXEL_PNG
from tests.support.rows import queue_emails


async def results(runtime: Runtime) -> list[Result]:
    async with runtime.sessionmaker() as session:
        return list((await session.scalars(select(Result))).all())


def assert_pixel(response: httpx.Response) -> None:
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"
    assert response.headers["cache-control"] == "no-cache, no-store, must-revalidate"
    assert response.content == PIXEL_PNG
    assert response.content.startswith(b"\x89PNG\r\n\x1a\n")


async def test_a_genuine_token_records_an_open(
    anonymous_client: httpx.AsyncClient, runtime: Runtime
) -> None:
    [request_id] = await queue_emails(runtime, ["a@example.com"])
    token = runtime.tokens.for_open(request_id)

    first = await anonymous_client.get("/v1/events/open", params={"t": token})
    second = await anonymous_client.get("/v1/events/open", params={"t": token})
    await runtime.hits.settle()

    assert_pixel(first)
    assert_pixel(second)
    async with runtime.sessionmaker() as session:
        row = (await session.scalars(select(Request))).one()
    assert row.open_count == 2
    assert row.first_opened_at == runtime.clock.now()
    logged = await results(runtime)
    assert [(r.request_id, r.status, r.source) for r in logged] == [
        (request_id, "Open", "tracking"),
        (request_id, "Open", "tracking"),
    ]


async def test_forged_or_missing_tokens_get_the_pixel_and_record_nothing(
    anonymous_client: httpx.AsyncClient, runtime: Runtime
) -> None:
    [request_id] = await queue_emails(runtime, ["a@example.com"])
    attempts = [
        {},
        {"t": ""},
        {"t": "garbage"},
        {"requestId": str(request_id)},  # the seed's guessable form
        {"t": base64.urlsafe_b64encode(b"x" * 36).decode()},
    ]
    for params in attempts:
        assert_pixel(await anonymous_client.get("/v1/events/open", params=params))

    await runtime.hits.settle()
    assert await results(runtime) == []


async def test_a_token_for_a_request_that_is_gone_is_ignored(
    anonymous_client: httpx.AsyncClient, runtime: Runtime
) -> None:
    response = await anonymous_client.get(
        "/v1/events/open", params={"t": runtime.tokens.for_open(999_999)}
    )

    assert_pixel(response)
    await runtime.hits.settle()
    assert await results(runtime) == []


async def test_the_generated_secret_is_shared_and_survives_restarts(
    settings: Settings, runtime: Runtime
) -> None:
    """Another replica (or the same service restarted) reads the same secret from the database."""
    token = runtime.tokens.for_open(42)
    choice = TransportChoice(TransportKind.OUTBOX, "tests")

    async with open_runtime(settings, transport=choice, clock=SystemClock()) as replica:
        assert replica.tokens.open_request_id(token) == 42


async def test_an_explicit_secret_wins(settings: Settings, runtime: Runtime) -> None:
    choice = TransportChoice(TransportKind.OUTBOX, "tests")
    explicit = settings.model_copy(update={"tracking_secret": "x" * 32})

    async with open_runtime(explicit, transport=choice) as configured:
        assert configured.tokens.open_request_id(runtime.tokens.for_open(1)) is None
        assert configured.tokens.open_request_id(configured.tokens.for_open(1)) == 1
