"""The HTTP server's own limits and its access log, on a real uvicorn over a real socket."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Iterator

import pytest
import uvicorn
from fastapi import FastAPI, Request
from starlette.types import ASGIApp, Receive, Scope, Send

from ses_sender.tracking.tokens import ClickToken, TrackingTokens
from ses_sender.web.access_log import SHORTEST_TOKEN_CHARS, redact_access_log, redact_tokens
from ses_sender.web.body import read_body
from ses_sender.web.edge import EdgeGuard
from ses_sender.web.errors import install_error_handlers
from ses_sender.web.server import MAX_HEADER_BYTES, GuardedHttpToolsProtocol, server_config
from tests.support.polling import wait_until

# Generous: a wait for the server to act, not a measurement.
CLOSED_WITHIN_S = 30.0


async def ok(scope: Scope, receive: Receive, send: Send) -> None:
    """200 "ok"; a PUT reads its body first, as a route taking JSON does."""
    assert scope["type"] == "http"
    if scope["method"] == "PUT":
        while (await receive()).get("more_body"):
            pass
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


class QuickDeadlines(GuardedHttpToolsProtocol):
    header_timeout_s = 0.5
    body_window_s = 0.5
    body_window_bytes = 100


class PatientBodyDeadline(GuardedHttpToolsProtocol):
    body_window_s = 3.0
    body_window_bytes = 1


class Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextlib.asynccontextmanager
async def connection(port: int) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        yield reader, writer
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def answer_to(port: int, request: bytes) -> bytes:
    """Everything the server writes back before it closes the connection."""
    async with connection(port) as (reader, writer):
        writer.write(request)
        with contextlib.suppress(ConnectionError):  # the server may answer before all is sent
            await writer.drain()
        return await asyncio.wait_for(reader.read(), CLOSED_WITHIN_S)


@contextlib.asynccontextmanager
async def serving(
    protocol: type[GuardedHttpToolsProtocol], app: ASGIApp = ok
) -> AsyncIterator[int]:
    config = server_config(app, host="127.0.0.1", port=0)
    config.http = protocol
    server = Server(config)
    task = asyncio.create_task(server.serve())

    async def started() -> bool:
        return server.started

    await wait_until(started, "the server listening")
    yield server.servers[0].sockets[0].getsockname()[1]
    server.should_exit = True
    await task


@pytest.fixture
async def port() -> AsyncIterator[int]:
    async with serving(QuickDeadlines) as port:
        yield port


def refusal(answer: bytes) -> tuple[bytes, dict[str, str], dict[str, str]]:
    """The status line, headers and JSON envelope of an answer from the protocol itself."""
    head, _, body = answer.partition(b"\r\n\r\n")
    status, *lines = head.decode().split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines)
    return status.encode(), headers, json.loads(body)


async def test_headers_that_never_finish_lose_the_connection(port: int) -> None:
    assert await answer_to(port, b"GET / HTTP/1.1\r\nHost: x\r\n") == b""  # no blank line


async def test_a_connection_that_says_nothing_is_closed(port: int) -> None:
    assert await answer_to(port, b"") == b""


async def test_headers_over_the_limit_are_refused(port: int) -> None:
    # As a client's bytes come: in many reads (the server counts them as they arrive).
    big = b"X-Big: " + b"a" * (64 * MAX_HEADER_BYTES) + b"\r\n"

    try:
        answer = await answer_to(port, b"GET / HTTP/1.1\r\nHost: x\r\n" + big + b"\r\n")
    except ConnectionResetError:
        return  # refused, and closed on bytes still unread: the 400 may be lost with them
    assert answer.startswith(b"HTTP/1.1 400 ")


async def test_headers_over_the_limit_in_one_read_are_refused_in_the_envelope(port: int) -> None:
    big = b"a" * (MAX_HEADER_BYTES + 600)
    head = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + big + b"\r\n\r\n"

    status, headers, envelope = refusal(await answer_to(port, head))

    assert status == b"HTTP/1.1 400 Bad Request"
    assert headers["content-type"] == "application/json"
    assert headers["x-content-type-options"] == "nosniff"
    assert envelope["error"] == f"request line and headers: at most {MAX_HEADER_BYTES} bytes"
    assert (envelope["path"], envelope["method"]) == ("/health", "")


async def test_many_header_lines_over_the_limit_in_one_read_are_refused(port: int) -> None:
    lines = b"".join(b"X-Filler-%d: %s\r\n" % (n, b"a" * 100) for n in range(200))

    answer = await answer_to(port, b"GET / HTTP/1.1\r\nHost: x\r\n" + lines + b"\r\n")

    assert answer.startswith(b"HTTP/1.1 400 ")


async def test_headers_just_under_the_limit_in_one_read_are_answered(port: int) -> None:
    head = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Big: "
    head += b"a" * (MAX_HEADER_BYTES - len(head) - 4) + b"\r\n\r\n"

    assert (await answer_to(port, head)).startswith(b"HTTP/1.1 200 ")


async def test_a_body_that_dribbles_is_answered_408_and_cut_off(port: int) -> None:
    async with connection(port) as (reader, writer):
        writer.write(b"PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n")
        answer = asyncio.ensure_future(reader.read())
        with contextlib.suppress(ConnectionError):
            while not answer.done():  # a byte at a time, far below the pace asked for
                writer.write(b"a")
                await writer.drain()
                await asyncio.sleep(0.05)
        status, headers, envelope = refusal(await asyncio.wait_for(answer, CLOSED_WITHIN_S))

    assert status == b"HTTP/1.1 408 Request Timeout"
    assert headers["x-content-type-options"] == "nosniff"
    assert envelope["error"] == "request body: too slow: at least 100 bytes every 0.5 s"
    assert (envelope["path"], envelope["method"]) == ("/", "PUT")


async def test_a_body_that_never_comes_is_answered_408(port: int) -> None:
    request = b"PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc"

    assert (await answer_to(port, request)).startswith(b"HTTP/1.1 408 ")


async def test_a_websocket_upgrade_is_answered_as_any_request(
    caplog: pytest.LogCaptureFixture,
) -> None:
    routes = FastAPI()
    install_error_handlers(routes)
    request = (
        b"GET /v1/live HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
        b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    )
    async with serving(QuickDeadlines, EdgeGuard(routes)) as port:
        with caplog.at_level(logging.INFO):
            status, headers, envelope = refusal(await answer_to(port, request))

    assert status == b"HTTP/1.1 404 Not Found"
    assert headers["content-type"] == "application/json"
    assert headers["x-content-type-options"] == "nosniff"
    assert envelope["path"] == "/v1/live"
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


async def test_a_body_cut_off_leaves_no_error_in_the_log(caplog: pytest.LogCaptureFixture) -> None:
    app = FastAPI()
    install_error_handlers(app)

    @app.post("/")
    async def take(request: Request) -> None:
        await read_body(request, 1000)

    request = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc"
    async with serving(QuickDeadlines, app) as port:
        with caplog.at_level(logging.INFO):
            assert (await answer_to(port, request)).startswith(b"HTTP/1.1 408 ")

    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


async def test_a_body_that_keeps_the_pace_is_answered() -> None:
    # One byte each 3 s is the pace asked here; pieces come every 0.5 s, for several windows.
    async with serving(PatientBodyDeadline) as port, connection(port) as (reader, writer):
        writer.write(b"PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 8\r\n\r\n")
        for _ in range(8):
            await asyncio.sleep(0.5)
            writer.write(b"a")
            await writer.drain()
        answer = await asyncio.wait_for(reader.readuntil(b"ok"), CLOSED_WITHIN_S)

    assert answer.startswith(b"HTTP/1.1 200 ")


async def test_many_small_header_lines_over_the_limit_are_refused(port: int) -> None:
    line = b"X-Filler: " + b"a" * 1000 + b"\r\n"

    async with connection(port) as (reader, writer):
        try:
            writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n")
            for _ in range(2 * MAX_HEADER_BYTES // len(line)):
                writer.write(line)
                await writer.drain()
            answer = await asyncio.wait_for(reader.read(), CLOSED_WITHIN_S)
        except ConnectionResetError:
            return  # refused, and closed on bytes still unread: the 400 may be lost with them
    assert answer.startswith(b"HTTP/1.1 400 ")


async def test_a_kept_alive_connection_answers_requests_sent_behind_one_another(
    port: int,
) -> None:
    pieces = [b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\n", b"Host: x\r\n"]
    pieces.append(b"Connection: close\r\n\r\n")

    async with connection(port) as (reader, writer):
        for piece in pieces:
            writer.write(piece)
            await writer.drain()
        answers = await asyncio.wait_for(reader.read(), CLOSED_WITHIN_S)

    assert answers.startswith(b"HTTP/1.1 200 ")
    assert answers.count(b"HTTP/1.1 200 ") == 2


async def test_a_body_larger_than_the_header_limit_is_no_header(port: int) -> None:
    body = b"a" * (4 * MAX_HEADER_BYTES)
    head = f"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\nConnection: close\r\n"

    answer = await answer_to(port, head.encode() + b"\r\n" + body)

    assert answer.startswith(b"HTTP/1.1 200 ")


async def test_a_request_in_time_is_answered(port: int) -> None:
    answer = await answer_to(port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")

    assert answer.startswith(b"HTTP/1.1 200 ")
    assert b"\r\nok\r\n" in answer


TOKENS = TrackingTokens("a tracking secret")
OPEN = TOKENS.for_open(2**63 - 1)
UNSUBSCRIBE = TOKENS.for_unsubscribe(1)
CLICK = TOKENS.for_click(ClickToken(1, 1, 0, 0))


# The tokens are filled in by the test: they differ at each making (a random nonce), and the
# test ids must be the same in every xdist worker.
@pytest.mark.parametrize(
    "path_shape",
    [
        "/v1/events/open?t={open}",
        "/v1/o/{open}",
        "/v1/c/{click}?u=1",
        "/v1/unsubscribe/{unsubscribe}",
        "/v1/x?a=1&token={open}&b=2",
        "/v1/events/open?T={open}",
        "//v1/c/{click}",
        "/V1/C/{click}",
        "/v1/events/open?t;={open}",
        "/v1/events/open?t%3D={open}",
        "/v1/events/open?t%3D{open}",
        # What matching the tokens' places missed:
        "/v1/events/open?+t={open}",
        "/v1/events/open?{open}",
        "/v1/events/open?utm=1;t={open}",
        "/./v1/c/{click}",
        "/v1/x/../c/{click}",
        "/v1/c;x/{click}",
        "/v1/events/click/{click}",
        "/dashboard/login?next=/v1/c/{click}",
        "/dashboard/login?next=%2Fv1%2Fc%2F{click}",
        "/v1/o/{open_percent_encoded}",
    ],
)
def test_tokens_are_redacted_wherever_they_are(path_shape: str) -> None:
    path = path_shape.format(
        open=OPEN,
        click=CLICK,
        unsubscribe=UNSUBSCRIBE,
        open_percent_encoded="".join(f"%{ord(c):02X}" for c in OPEN),
    )
    logged = redact_tokens(path)

    assert "[token]" in logged
    assert all(token not in logged for token in (OPEN, UNSUBSCRIBE, CLICK))
    assert logged.startswith(path[:4])  # the path's shape is kept


def test_the_shortest_token_is_redacted_and_the_rest_of_the_line_kept() -> None:
    assert min(len(OPEN), len(UNSUBSCRIBE), len(CLICK)) == SHORTEST_TOKEN_CHARS
    assert redact_tokens(f"/v1/c/{CLICK}?u=1") == "/v1/c/[token]?u=1"
    assert redact_tokens("/v1/topics/spring-sale?limit=5") == "/v1/topics/spring-sale?limit=5"
    assert redact_tokens("/v1/x?to=a&topic=b") == "/v1/x?to=a&topic=b"


async def test_the_access_log_holds_no_token(port: int, caplog: pytest.LogCaptureFixture) -> None:
    redact_access_log()
    request = f"GET /./v1/unsubscribe/{UNSUBSCRIBE} HTTP/1.1\r\nHost: x\r\n".encode()
    request += b"Connection: close\r\n\r\n"

    with caplog.at_level(logging.INFO, logger="uvicorn.access"):
        await answer_to(port, request)

    [line] = [r.getMessage() for r in caplog.records if r.name == "uvicorn.access"]
    assert "/v1/unsubscribe/[token]" in line
    assert UNSUBSCRIBE not in line
