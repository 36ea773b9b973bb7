"""The HTTP server's own limits and its access log, on a real uvicorn over a real socket."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterator

import pytest
import uvicorn
from starlette.types import Receive, Scope, Send

from ses_sender.web.access_log import redact_access_log, redact_tokens
from ses_sender.web.server import MAX_HEADER_BYTES, GuardedHttpToolsProtocol, server_config
from tests.support.polling import wait_until

# Generous: a wait for the server to act, not a measurement.
CLOSED_WITHIN_S = 30.0


async def ok(scope: Scope, receive: Receive, send: Send) -> None:
    assert scope["type"] == "http"
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


class QuickHeaderDeadline(GuardedHttpToolsProtocol):
    header_timeout_s = 0.5


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


@pytest.fixture
async def port() -> AsyncIterator[int]:
    config = server_config(ok, host="127.0.0.1", port=0)
    config.http = QuickHeaderDeadline
    server = Server(config)
    task = asyncio.create_task(server.serve())

    async def started() -> bool:
        return server.started

    await wait_until(started, "the server listening")
    yield server.servers[0].sockets[0].getsockname()[1]
    server.should_exit = True
    await task


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


@pytest.mark.parametrize(
    ("path", "logged"),
    [
        ("/v1/events/open?t=abc.def", "/v1/events/open?t=[token]"),
        ("/v1/o/abc.def", "/v1/o/[token]"),
        ("/v1/c/abc.def?u=1", "/v1/c/[token]?u=1"),
        ("/v1/unsubscribe/abc.def", "/v1/unsubscribe/[token]"),
        ("/v1/x?a=1&token=abc.def&b=2", "/v1/x?a=1&token=[token]&b=2"),
        ("/v1/topics/abc.def", "/v1/topics/abc.def"),
    ],
)
def test_tokens_are_redacted(path: str, logged: str) -> None:
    assert redact_tokens(path) == logged


async def test_the_access_log_holds_no_token(port: int, caplog: pytest.LogCaptureFixture) -> None:
    redact_access_log()
    request = b"GET /v1/unsubscribe/secret-token HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"

    with caplog.at_level(logging.INFO, logger="uvicorn.access"):
        await answer_to(port, request)

    [line] = [r.getMessage() for r in caplog.records if r.name == "uvicorn.access"]
    assert "/v1/unsubscribe/[token]" in line
    assert "secret-token" not in line
